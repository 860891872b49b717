"""Does re-anchoring the model's output at the white-matter level help or hurt?

    python benchmarks/output_anchoring.py HELDOUT_BIDS HELDOUT_WORK --direction 1.5T-to-3T
        [--model DIR] [--subjects sub-01 sub-02] [--steps 10] [--cache DIR]

The app rescales every harmonized volume so that the brightest class of a 3-class
Gaussian mixture of its brain intensities sits at the model's ``white_matter_level``
(``harmonize_anchored``), as preprocessing does for every source and training target.
The model was trained on anchored targets, so its raw output is already on that scale
up to the model's error, while the mixture's white-matter mean depends on the shape of
the histogram (peak widths, overlap of grey and white matter), which differs between a
model output and a scanned image. This script samples the model (default: the bundled
one) once per held-out subject (dpm, seed 0) and measures the raw and the anchored output
against the registered target, as benchmarks/quality.py does: AHD and MSE as fractions of
Original's, and the mean of the eroded true tissue cores of each image. (The Atropos
tissue volumes do not change: a global rescaling does not move its classes.) Raw outputs
(.npy) and per-subject results (.json) are cached.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import quality  # noqa: E402 - benchmarks/ is not a package
from calibration import tissue_cores  # noqa: E402

from harmonize_bids.qc import metrics  # noqa: E402

VARIANTS = ("raw", "anchored")
#: One voxel in from every boundary (calibration.py's cores are two in).
CORE_EROSION = 1


def _peaks(image: np.ndarray, cores: dict[str, np.ndarray]) -> dict[str, list[float]]:
    return {
        t: [round(float(image[c].mean()), 4), round(float(image[c].std()), 4)]
        for t, c in cores.items()
    }


def measure_subject(record: dict, args: argparse.Namespace, model) -> dict[str, dict]:
    """Raw and anchored output of one subject, measured against its target (cached)."""
    from harmonize_bids.image.intensity import anchor_white_matter, white_matter_level
    from harmonize_bids.model.sampling import sample_volume

    sub, direction = record["subject"], args.direction
    stem = args.cache / f"{direction}_{sub}"
    files = {v: Path(f"{stem}_{v}{args.steps}_measured.json") for v in VARIANTS}
    if all(f.is_file() for f in files.values()):
        return {v: json.loads(f.read_text()) for v, f in files.items()}
    source, target = quality._load(record["source"]), quality._load(record["target"])
    mask = quality._load(record["mask"]) > 0
    raw_file = Path(f"{stem}_raw{args.steps}.npy")
    if raw_file.is_file():
        raw = np.load(raw_file).astype(np.float32)
    else:
        start = time.perf_counter()
        raw = sample_volume(
            model, source, mask, sampler="dpm", steps=args.steps, seed=0, progress=False
        )
        np.save(raw_file, raw)  # float32: float16 steps (5e-4) move voxels across AHD bins
        print(f"{sub}: sampled in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    cores = tissue_cores(quality._truth_labels(args.heldout_bids, record), mask, CORE_EROSION)
    original_ahd = metrics.ahd(source, target, mask)
    original_mse = metrics.mse(source, target, mask)
    shared = {
        "target_peaks": _peaks(target, cores),
        "target_gmmWM": float(white_matter_level(target, mask)),
        "original_ahd": original_ahd,
        "original_mse": original_mse,
    }
    level = float(model.preprocessing["white_matter_level"])
    images = {"raw": raw, "anchored": anchor_white_matter(raw, mask, level=level)}
    results = {}
    for variant, image in images.items():
        results[variant] = {
            "ahd": metrics.ahd(image, target, mask) / original_ahd,
            "mse": metrics.mse(image, target, mask) / original_mse,
            "peaks": _peaks(image, cores),
            "gmmWM": float(white_matter_level(image, mask)),
            **shared,
        }
        files[variant].write_text(json.dumps(results[variant]))
    return results


def table(rows: dict[str, dict[str, dict]]) -> str:
    """Per-subject and overall figures (overall: ratio of means, as quality.py)."""
    lines = [
        "| subject | AHD raw / anchored (x Original) | MSE raw / anchored | "
        "WM core: target / raw / anchored | GM core: target / raw / anchored | "
        "mixture WM mean: target / raw |",
        "|---|---|---|---|---|---|",
    ]
    for sub, r in rows.items():
        raw, anc = r["raw"], r["anchored"]
        lines.append(
            f"| {sub} | {raw['ahd']:.3f} / {anc['ahd']:.3f} | {raw['mse']:.3f} / "
            f"{anc['mse']:.3f} | {raw['target_peaks']['WM'][0]:.3f} / {raw['peaks']['WM'][0]:.3f}"
            f" / {anc['peaks']['WM'][0]:.3f} | {raw['target_peaks']['GM'][0]:.3f} / "
            f"{raw['peaks']['GM'][0]:.3f} / {anc['peaks']['GM'][0]:.3f} | "
            f"{raw['target_gmmWM']:.3f} / {raw['gmmWM']:.3f} |"
        )
    overall, values = [], list(rows.values())
    for variant in VARIANTS:
        ahd = sum(r[variant]["ahd"] * r[variant]["original_ahd"] for r in values) / sum(
            r[variant]["original_ahd"] for r in values
        )
        mse = sum(r[variant]["mse"] * r[variant]["original_mse"] for r in values) / sum(
            r[variant]["original_mse"] for r in values
        )
        overall.append(f"{variant}: AHD {ahd:.3f} x, MSE {mse:.3f} x Original")
    return "\n".join(lines + ["", f"All {len(rows)} subjects: " + "; ".join(overall) + "."])


def main(argv: list[str] | None = None) -> int:
    import torch

    from harmonize_bids.model.folder import bundled_model_dir, load_model_folder

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("heldout_bids", type=Path)
    parser.add_argument("heldout_work", type=Path)
    parser.add_argument("--direction", choices=list(quality.DIRECTIONS), required=True)
    parser.add_argument("--model", type=Path, help="model folder; default: the bundled one")
    parser.add_argument("--subjects", nargs="+", help="default: all prepared pairs")
    parser.add_argument("--steps", type=int, default=10, help="dpm steps (default 10)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path("anchoring-cache"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    source_field, target_field = quality.DIRECTIONS[args.direction]
    model = load_model_folder(
        args.model or bundled_model_dir(source_field, target_field),
        source_field=source_field,
        target_field=target_field,
    )
    records = [
        r
        for r in quality._pairs(args.heldout_work, args.direction)
        if not args.subjects or r["subject"] in args.subjects
    ]
    rows = {r["subject"]: measure_subject(r, args, model) for r in records}
    print(
        f"{args.direction}, model weights {model.weights_sha256[:12]}, dpm {args.steps} "
        "steps, seed 0\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
