"""Screen of dpm timestep schedules on a central sagittal slab, or on the whole brain.

See research/experiments/sampler-schedule-screen.md. Usage:

    python sampler-schedule-screen.py DIRECTION VARIANT STEPS HELDOUT_BIDS HELDOUT_WORK
        [sub-01,sub-02] [--brain CACHE]

``--brain CACHE``: sample the whole brain and add the benchmark's own evaluation
(quality.evaluate: Atropos volumes, Dice, HD95, lesion contrast) of Original and the
variant; the target's segmentation is cached in CACHE.
"""

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality
from diffusers import DPMSolverMultistepScheduler

from harmonize_bids.image.intensity import anchor_white_matter
from harmonize_bids.model import sampling as S
from harmonize_bids.model.folder import load_model_folder
from harmonize_bids.model.schedulers import dpm_timesteps, sampling_scheduler
from harmonize_bids.participant import bundled_model_dir
from harmonize_bids.qc import metrics

#: Overrides of the app's own dpm scheduler (harmonize_bids.model.schedulers), as plain
#: DPM-Solver++; "base" is the trailing spacing shipped until 2026-12-03.
OVERRIDES = {
    "base": {"timestep_spacing": "trailing"},
    "karras": {"use_karras_sigmas": True, "timestep_spacing": "linspace"},
    "linspace": {"timestep_spacing": "linspace"},
}


def make(variant, config):
    """The app's dpm scheduler, changed as ``variant`` says (``endN``: last call at t=N)."""
    shipped = sampling_scheduler(config, "dpm")
    if not variant.startswith("end"):
        return DPMSolverMultistepScheduler.from_config(shipped.config, **OVERRIDES[variant])
    last = int(variant[3:])

    class Ending(DPMSolverMultistepScheduler):
        def set_timesteps(self, num_inference_steps=None, device=None, **_):
            super().set_timesteps(
                device=device,
                timesteps=dpm_timesteps(config["num_train_timesteps"], num_inference_steps, last),
            )

    return Ending.from_config(shipped.config)


def central_slab(mask, half_width=20):
    """The brain mask restricted to ``2 * half_width`` central sagittal slices."""
    idx = np.flatnonzero(mask.any(axis=(1, 2)))
    mid = idx[len(idx) // 2]
    slab = np.zeros_like(mask)
    slab[mid - half_width : mid + half_width] = True
    return mask & slab


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("direction")
parser.add_argument("variant")
parser.add_argument("steps", type=int)
parser.add_argument("bids", type=Path)
parser.add_argument("work", type=Path)
parser.add_argument("subjects", nargs="?", type=lambda text: text.split(","))
parser.add_argument("--brain", dest="brain_cache", type=Path)
cli = parser.parse_args()
direction, variant, steps, brain_cache = cli.direction, cli.variant, cli.steps, cli.brain_cache
bids, work, subjects = cli.bids, cli.work, cli.subjects
torch.set_num_threads(1)
sf, tf = quality.DIRECTIONS[direction]
model = load_model_folder(bundled_model_dir(sf, tf), source_field=sf, target_field=tf)
S.sampling_scheduler = lambda config, sampler: make(variant, config)
out = Path(f"{direction}_{variant}{steps}{'_brain' if brain_cache else ''}.jsonl")
lines = out.read_text().splitlines() if out.exists() else []
done = {json.loads(line)["subject"] for line in lines}
level = float(model.preprocessing["white_matter_level"])
for r in quality._pairs(work, direction):
    sub = r["subject"]
    if sub in done or (subjects and sub not in subjects):
        continue
    src, tgt = quality._load(r["source"]), quality._load(r["target"])
    mask = quality._load(r["mask"]) > 0
    m = mask if brain_cache else central_slab(mask)
    t0 = time.perf_counter()
    raw = S.harmonize_volume(model, src, m, sampler="dpm", steps=steps, seed=0, progress=False)
    dt = time.perf_counter() - t0
    anc = anchor_white_matter(raw, m, level=level)
    oa, om = metrics.ahd(src, tgt, m), metrics.mse(src, tgt, m)
    row = dict(
        subject=sub,
        seconds=dt,
        original_ahd=oa,
        original_mse=om,
        ahd_raw=metrics.ahd(raw, tgt, m),
        ahd=metrics.ahd(anc, tgt, m),
        mse=metrics.mse(anc, tgt, m),
        tp=metrics.through_plane_consistency(anc, m) / metrics.through_plane_consistency(tgt, m),
    )
    if brain_cache:
        truth = quality._truth_labels(bids, r)
        target_seg = quality._target_segmentation(
            brain_cache / direction / sub / "target_dseg.nii.gz",
            tgt,
            m,
            quality.nib.load(r["source"]).affine,
        )
        reference = quality.target_reference(tgt, m, truth, quality.SLICE_AXIS)
        row["original"] = quality._cached(
            brain_cache / direction / sub / "original.json",
            partial(
                quality.evaluate, src, tgt, m, target_seg, truth, reference, quality.SLICE_AXIS
            ),
        )
        row["variant"] = quality.evaluate(
            anc, tgt, m, target_seg, truth, reference, quality.SLICE_AXIS
        )
        np.save(brain_cache / direction / sub / f"{variant}{steps}.npy", anc.astype(np.float16))
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(
        sub,
        f"{dt:.0f}s AHD {row['ahd'] / oa:.3f} raw {row['ahd_raw'] / oa:.3f}",
        f"MSE {row['mse'] / om:.3f} tp {row['tp']:.3f}",
        flush=True,
    )
