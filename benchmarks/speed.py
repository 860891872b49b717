"""Sampling speed and memory for one full-size 1 mm volume on this machine.

Volume: nilearn's brain-extracted ICBM152 2009a T1 template (197x233x189, 1 mm), RAS+,
clipped to its 0.1/99.9 brain percentiles and scaled to [0, 1]; mask = nonzero voxels.
Network: the default config (32-64-64-128, 2.88 M parameters) with random weights; speed
does not depend on the weights.  Each configuration runs in a fresh subprocess so its
peak resident memory (ru_maxrss) is its own.  Prints a Markdown table with wall time and
CPU time; on a shared machine CPU time / threads estimates the uncontended wall time.

    python benchmarks/speed.py            # dpm/ddim at 10 steps measured, others extrapolated
    python benchmarks/speed.py --full     # measure 20 and 50 steps too (slow)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REFERENCE_HOURS = 70.0  # ANCHORS.md: reference implementation, 1000 steps, 2-core CPU


def load_volume() -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib
    import nilearn

    path = (
        Path(nilearn.__file__).parent
        / "datasets"
        / "data"
        / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    )
    img = nib.as_closest_canonical(nib.load(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    mask = data > 0
    lo, hi = np.percentile(data[mask], [0.1, 99.9])
    volume = np.where(mask, np.clip((data - lo) / (hi - lo), 0, 1), 0).astype(np.float32)
    return volume, mask


def run_one(sampler: str, steps: int, precision: str, slices: int | None) -> None:
    """Child process: harmonize once, print a JSON line."""
    import torch

    from harmonize_bids.model import new_model, sample_volume

    volume, mask = load_volume()
    if slices:  # a central slab only (for the precision comparison)
        keep = np.zeros_like(mask)
        mid = mask.shape[0] // 2
        keep[mid - slices // 2 : mid - slices // 2 + slices] = True
        mask &= keep
    model = new_model("default", seed=0)
    start, cpu_start = time.perf_counter(), time.process_time()
    out = sample_volume(
        model,
        volume,
        mask,
        sampler=sampler,
        steps=steps,
        device="cpu",
        precision=precision,
        progress=False,
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    n_slices = int(mask.any(axis=(1, 2)).sum())
    np.save(os.environ["BENCH_OUT"], out[mask])
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "slices": n_slices,
                "threads": torch.get_num_threads(),
            }
        )
    )


def child(
    sampler: str,
    steps: int,
    precision: str = "auto",
    slices: int | None = None,
    out: str = "/tmp/speed_out.npy",
) -> dict:
    cmd = [sys.executable, __file__, "--one", sampler, str(steps), precision]
    if slices:
        cmd += ["--slices", str(slices)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=True, env={**os.environ, "BENCH_OUT": out}
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"# {sampler} {steps} steps ({precision}, slices={slices}): {result}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="measure 20 and 50 steps too")
    parser.add_argument("--one", nargs=3, metavar=("SAMPLER", "STEPS", "PRECISION"))
    parser.add_argument("--slices", type=int)
    args = parser.parse_args()
    if args.one:
        run_one(args.one[0], int(args.one[1]), args.one[2], args.slices)
        return
    load = os.getloadavg()
    rows: list[tuple] = []
    per_step: dict[str, float] = {}
    cpu_step: dict[str, float] = {}
    for sampler in ("dpm", "ddim"):
        for steps in (10, 20, 50):
            if steps == 10 or args.full:
                res = child(sampler, steps)
                per_step[sampler] = res["seconds"] / steps
                cpu_step[sampler] = res["cpu_seconds"] / steps
                rows.append(
                    (
                        sampler,
                        steps,
                        f"{res['seconds']:.0f}",
                        f"{res['cpu_seconds']:.0f}",
                        f"{res['cpu_seconds'] / res['threads']:.0f}",
                        f"{res['maxrss_mb']:.0f}",
                        "measured",
                    )
                )
                slices, threads = res["slices"], res["threads"]
                mem = f"{res['maxrss_mb']:.0f}"
            else:
                cpu = cpu_step[sampler] * steps
                rows.append(
                    (
                        sampler,
                        steps,
                        f"{per_step[sampler] * steps:.0f}",
                        f"{cpu:.0f}",
                        f"{cpu / threads:.0f}",
                        f"~{mem}",
                        f"extrapolated from measured {sampler} per-step cost",
                    )
                )
    ddpm, ddpm_cpu = per_step["ddim"] * 1000, cpu_step["ddim"] * 1000
    rows.append(
        (
            "ddpm",
            1000,
            f"{ddpm:.0f} ({ddpm / 3600:.2f} h)",
            f"{ddpm_cpu:.0f}",
            f"{ddpm_cpu / threads:.0f} ({ddpm_cpu / threads / 3600:.2f} h)",
            f"~{mem}",
            "extrapolated: 1000 x measured ddim per-step cost",
        )
    )
    rows.append(
        (
            "reference (ANCHORS.md)",
            1000,
            f"{REFERENCE_HOURS * 3600:.0f} (70 h)",
            "-",
            "-",
            "-",
            "guided-diffusion UNet 11.4 M, one slice at a time",
        )
    )

    # bf16 (the CPU default when supported) against fp32 on a 16-slice central slab
    bf16 = child("dpm", 10, "bf16", slices=16, out="/tmp/speed_bf16.npy")
    fp32 = child("dpm", 10, "fp32", slices=16, out="/tmp/speed_fp32.npy")
    diff = np.abs(np.load("/tmp/speed_bf16.npy") - np.load("/tmp/speed_fp32.npy"))

    print(
        f"Volume: ICBM152 2009a T1, 197x233x189 @ 1 mm, {slices} sagittal brain slices; "
        f"default network (2.88 M params, random weights); CPU, {threads} torch threads, "
        f"load average at start {load[0]:.1f} (CPU shared with other jobs)."
    )
    print()
    print(
        "| sampler | steps | wall time (s) | CPU time (s) | CPU time / threads (s) | "
        "peak RSS (MB) | note |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print()
    print(
        f"16 central slices, dpm 10 steps: bf16 {bf16['seconds']:.1f} s, fp32 "
        f"{fp32['seconds']:.1f} s; |bf16 - fp32| mean {diff.mean():.4f}, "
        f"max {diff.max():.4f} (random weights, [0, 1] scale)."
    )


if __name__ == "__main__":
    main()
