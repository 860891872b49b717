"""Experiment for issue 5: does restoring the model's lost fine detail fix the CSF volume?

The 3 T -> 1.5 T output carries 14-22 % less high-pass signal than its registered target
(csf-volume-sign.md), which turns thin sulcal CSF into grey matter. This script sharpens
the cached model outputs of ``benchmarks/quality.py --save-images`` with an unsharp mask
inside the brain, ``out = image + gain * (image - blur_sigma(image))``, where the blur is
normalised to the brain mask so that the brain edge is not sharpened against the zero
background.

    # the gain that matches the output's high-pass sd to the target's, on calibration pairs
    python detail-restoration.py calibrate CALIB_WORK CALIB_CACHE
    # the quality metrics of the sharpened outputs, on held-out pairs
    python detail-restoration.py evaluate HELDOUT_BIDS HELDOUT_WORK CACHE --gain G [G ...] > E
    # quality.py's tables, one "method" per gain (Original read from CACHE)
    python detail-restoration.py summarize CACHE E [E ...]
    # where the Atropos CSF/GM boundary lies, and how many voxels lie below the target's
    python detail-restoration.py diagnose HELDOUT_WORK CACHE --gain G [G ...]

CACHE is a ``quality.py --cache`` folder of a run with ``--save-images``; the outputs of
"Ours (dpm, 10 steps)" are read from it. evaluate prints one JSON line per subject and
gain (seconds: the sharpening's wall time); summarize prints quality.py's tables of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality  # noqa: E402

DIRECTION = "3T-to-1.5T"
METHOD = "Ours (dpm, 10 steps)"
SIGMA = 1.0


def masked_blur(image: np.ndarray, mask: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """Gaussian blur of the brain only (normalised convolution), zero outside."""
    weight = ndimage.gaussian_filter(mask.astype(np.float32), sigma)
    blurred = ndimage.gaussian_filter(np.where(mask, image, 0.0).astype(np.float32), sigma)
    return np.where(mask, blurred / np.maximum(weight, 1e-6), 0.0)


def restore_detail(image: np.ndarray, mask: np.ndarray, gain: float) -> np.ndarray:
    sharpened = image + gain * (image - masked_blur(image, mask))
    return np.where(mask, np.clip(sharpened, 0.0, 1.0), 0.0).astype(np.float32)


def high_pass_sd(image: np.ndarray, mask: np.ndarray) -> float:
    """sd of the image minus its blur, in the brain eroded by 3 voxels."""
    core = ndimage.binary_erosion(mask, iterations=3)
    return float((image - masked_blur(image, mask))[core].std())


def _output(cache: Path, record: dict) -> np.ndarray:
    return quality.cached_output(cache, DIRECTION, record["subject"], METHOD)


def calibrate(args: argparse.Namespace) -> None:
    """The gain at which the outputs' mean high-pass sd equals the targets' (bisection)."""
    pairs = []
    for record in quality._pairs(args.work, DIRECTION):
        mask = quality._load(record["mask"]) > 0
        pairs.append((_output(args.cache, record), quality._load(record["target"]), mask))
    target_sd = np.mean([high_pass_sd(t, m) for _, t, m in pairs])

    def excess(gain: float) -> float:
        return (
            np.mean([high_pass_sd(restore_detail(o, m, gain), m) for o, _, m in pairs]) - target_sd
        )

    low, high = 0.0, 2.0
    for _ in range(20):
        mid = (low + high) / 2
        low, high = (mid, high) if excess(mid) < 0 else (low, mid)
    print(
        json.dumps(
            {
                "subjects": len(pairs),
                "target_high_pass_sd": round(target_sd, 5),
                "output_high_pass_sd": round(target_sd + excess(0.0), 5),
                "gain": round((low + high) / 2, 4),
            }
        )
    )


def evaluate(args: argparse.Namespace) -> None:
    for record in quality._pairs(args.work, DIRECTION):
        sub = record["subject"]
        target, mask = quality._load(record["target"]), quality._load(record["mask"]) > 0
        truth = quality._truth_labels(args.bids, record)
        target_seg = quality._load(args.cache / DIRECTION / sub / "target_dseg.nii.gz")
        reference = quality.target_reference(target, mask, truth, quality.SLICE_AXIS)
        output = _output(args.cache, record)
        for gain in args.gain:
            start = time.perf_counter()
            image = restore_detail(output, mask, gain) if gain else output
            seconds = time.perf_counter() - start
            result = quality.evaluate(
                image,
                target,
                mask,
                target_seg.astype(np.uint8),
                truth,
                reference,
                quality.SLICE_AXIS,
            )
            print(
                json.dumps(
                    {
                        "subject": sub,
                        "gain": gain,
                        "high_pass_sd": round(high_pass_sd(image, mask), 5),
                        "target_high_pass_sd": round(high_pass_sd(target, mask), 5),
                        **result,
                        "seconds": seconds,
                    }
                ),
                flush=True,
            )


def _csf_boundary(image: np.ndarray, labels: np.ndarray) -> float:
    """The top of Atropos's CSF class: the 99th percentile of its intensities."""
    return float(np.percentile(image[labels == 1], 99))


def diagnose(args: argparse.Namespace) -> None:
    """Per subject: Atropos CSF boundary and CSF mean of target and output, and the
    volume (ml) at or below the target's boundary in the target and each sharpened output."""
    from harmonize_bids.qc import metrics

    for record in quality._pairs(args.work, DIRECTION):
        sub = record["subject"]
        target, mask = quality._load(record["target"]), quality._load(record["mask"]) > 0
        target_seg = quality._load(args.cache / DIRECTION / sub / "target_dseg.nii.gz")
        output = _output(args.cache, record)
        output_seg = metrics.segment_tissues(output, mask)
        boundary = _csf_boundary(target, target_seg)
        below = {
            str(gain): round(
                float(
                    ((restore_detail(output, mask, gain) if gain else output) <= boundary)[
                        mask
                    ].sum()
                )
                / 1000,
                1,
            )
            for gain in args.gain
        }
        print(
            json.dumps(
                {
                    "subject": sub,
                    "csf_boundary": {
                        "target": round(boundary, 3),
                        "output": round(_csf_boundary(output, output_seg), 3),
                    },
                    "csf_mean": {
                        "target": round(float(target[target_seg == 1].mean()), 3),
                        "output": round(float(output[output_seg == 1].mean()), 3),
                    },
                    "csf_ml": {
                        "target": round(float((target_seg == 1).sum()) / 1000, 1),
                        "output": round(float((output_seg == 1).sum()) / 1000, 1),
                    },
                    "ml_below_target_boundary": {
                        "target": round(float((target <= boundary)[mask].sum()) / 1000, 1),
                        "output_by_gain": below,
                    },
                }
            ),
            flush=True,
        )


def summarize(args: argparse.Namespace) -> None:
    """quality.py's tables, with one "method" per gain and Original read from the cache."""
    results: dict[str, list[dict]] = {}
    for path in args.results:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            results.setdefault(f"gain {row['gain']:g}", []).append(row)
    results = quality.with_cached_original(dict(sorted(results.items())), args.cache, DIRECTION)
    print(
        quality.tables(
            DIRECTION,
            quality.summarize(results),
            default="",
            about={"heldout_seeds": args.heldout_seeds},
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cal = commands.add_parser("calibrate")
    cal.add_argument("work", type=Path)
    cal.add_argument("cache", type=Path)
    ev = commands.add_parser("evaluate")
    ev.add_argument("bids", type=Path)
    ev.add_argument("work", type=Path)
    ev.add_argument("cache", type=Path)
    ev.add_argument("--gain", type=float, nargs="+", required=True)
    su = commands.add_parser("summarize")
    su.add_argument("cache", type=Path)
    su.add_argument("results", type=Path, nargs="+")
    su.add_argument(
        "--heldout-seeds", type=int, nargs="+", default=[2000], help="for the tables' heading"
    )
    di = commands.add_parser("diagnose")
    di.add_argument("work", type=Path)
    di.add_argument("cache", type=Path)
    di.add_argument("--gain", type=float, nargs="+", required=True)
    args = parser.parse_args()
    {"calibrate": calibrate, "evaluate": evaluate, "summarize": summarize, "diagnose": diagnose}[
        args.command
    ](args)


if __name__ == "__main__":
    main()
