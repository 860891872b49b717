"""Experiment for issue 5: does an intensity calibration of the output fix the CSF volume?

On the held-out 3 T -> 1.5 T pairs, mapping each output's intensity quantiles onto its own
target's (an oracle: it needs the target) brings the CSF volume difference from 0.5 x to
0.04 x Original: the output's anatomy is right and its intensities are not. This script
tests calibrations that do not need the target, fitted on separate calibration pairs:

- global: one monotone map, output quantile -> target quantile, averaged over the pairs;
- source-conditioned: the map's correction at each output intensity x is
  a(x) + b(x) * s, with s the source's 5th brain percentile (its dark, CSF end), fitted
  by least squares over the pairs. It is meant for outputs that follow the source's CSF
  level too closely: the darker the source's CSF, the more the output's must be lifted.

    # fit both maps on calibration pairs (quality.py --save-images caches)
    python output-calibration.py fit CALIB_WORK CALIB_CACHE [CALIB_WORK CALIB_CACHE ...] \\
        --output CALIBRATION.json
    # store the global calibration in a model folder (how the bundled one was made)
    python output-calibration.py store MODEL_DIR CALIB_WORK CALIB_CACHE [...] --dataset NAME
    # the quality metrics of the calibrated held-out outputs (one JSON line each)
    python output-calibration.py evaluate HELDOUT_BIDS HELDOUT_WORK CACHE CALIBRATION.json > E
    # quality.py's tables, one "method" per calibration (Original read from CACHE)
    python output-calibration.py summarize CACHE E

CACHE folders are ``quality.py --cache`` folders of runs with ``--save-images``; the
outputs of "Ours (dpm, 10 steps)" are read from them (float16). seconds in evaluate's
lines is the calibration's own wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality  # noqa: E402
from harmonize_bids.model.output_calibration import (  # noqa: E402
    GRID,
    fit_calibration,
    quantile_correction,
)

DIRECTION = "3T-to-1.5T"
METHOD = "Ours (dpm, 10 steps)"
SOURCE_PERCENTILE = 5


def _output(cache: Path, record: dict) -> np.ndarray:
    return quality.cached_output(cache, DIRECTION, record["subject"], METHOD)


def source_level(source: np.ndarray, mask: np.ndarray) -> float:
    return float(np.percentile(source[mask], SOURCE_PERCENTILE))


def calibrate(
    output: np.ndarray, mask: np.ndarray, calibration: dict, level: float | None
) -> np.ndarray:
    """Apply the global map (level None) or the source-conditioned one at source level."""
    if level is None:
        shift = np.asarray(calibration["global"])
    else:
        shift = np.asarray(calibration["intercept"]) + np.asarray(calibration["slope"]) * level
    mapped = output + np.interp(output, GRID, shift)
    return np.where(mask, np.clip(mapped, 0.0, 1.0), 0.0).astype(np.float32)


def fit(args: argparse.Namespace) -> None:
    if len(args.folders) % 2:
        sys.exit("fit takes pairs of CALIB_WORK CALIB_CACHE")
    levels, corrections, subjects = [], [], []
    for work, cache in zip(args.folders[::2], args.folders[1::2], strict=True):
        for record in quality._pairs(work, DIRECTION):
            mask = quality._load(record["mask"]) > 0
            levels.append(source_level(quality._load(record["source"]), mask))
            corrections.append(
                quantile_correction(_output(cache, record), quality._load(record["target"]), mask)
            )
            subjects.append(f"{work.name}/{record['subject']}")
    levels, corrections = np.asarray(levels), np.asarray(corrections)
    design = np.stack([np.ones_like(levels), levels], axis=1)
    (intercept, slope), *_ = np.linalg.lstsq(design, corrections, rcond=None)
    residual = corrections - design @ np.stack([intercept, slope])
    inside = (GRID >= 0.15) & (GRID <= 0.9)
    calibration = {
        "direction": DIRECTION,
        "subjects": subjects,
        "source_percentile": SOURCE_PERCENTILE,
        "source_levels": levels.round(4).tolist(),
        "grid": GRID.tolist(),
        "global": corrections.mean(0).tolist(),
        "intercept": intercept.tolist(),
        "slope": slope.tolist(),
        "rms_correction_0.15-0.9": float(np.sqrt((corrections[:, inside] ** 2).mean())),
        "rms_residual_0.15-0.9": float(np.sqrt((residual[:, inside] ** 2).mean())),
    }
    args.output.write_text(json.dumps(calibration))
    at = [0.25, 0.4, 0.5, 0.6]
    print(
        json.dumps(
            {
                k: calibration[k]
                for k in (
                    "subjects",
                    "source_levels",
                    "rms_correction_0.15-0.9",
                    "rms_residual_0.15-0.9",
                )
            }
        )
    )
    for sub, level, row in zip(subjects, levels, corrections, strict=True):
        print(
            f"{sub}: source p{SOURCE_PERCENTILE} {level:.3f}, correction at {at}: "
            + " ".join(f"{v:+.3f}" for v in np.interp(at, GRID, row))
        )


def store(args: argparse.Namespace) -> None:
    """Store the global calibration of the cached outputs in MODEL_DIR (the bundled
    model's calibration.json was made so; harmonize-bids-train --calibrate fits the same
    from fresh outputs)."""
    from harmonize_bids.model.folder import load_model_folder, save_model_folder

    triples, subjects = [], []
    for work, cache in zip(args.folders[::2], args.folders[1::2], strict=True):
        for record in quality._pairs(work, DIRECTION):
            mask = quality._load(record["mask"]) > 0
            triples.append((_output(cache, record), quality._load(record["target"]), mask))
            subjects.append(record["subject"])
    model = load_model_folder(args.model_dir, source_field=3.0, target_field=1.5)
    model.calibration = fit_calibration(triples)
    save_model_folder(
        model,
        args.model_dir,
        meta={
            "output_calibration": {
                "dataset": args.dataset,
                "subjects": sorted(set(subjects)),
                "pairs": len(triples),
                "phantom_seeds": args.phantom_seeds,
                "sampler": "dpm",
                "steps": 10,
                "seed": 0,
                "fitted_from": "quality.py --save-images cached outputs (float16), by "
                "research/experiments/output-calibration.py store",
            }
        },
    )
    print(f"{args.model_dir}: output calibration from {len(triples)} pairs")


def evaluate(args: argparse.Namespace) -> None:
    calibration = json.loads(args.calibration.read_text())
    for record in quality._pairs(args.work, DIRECTION):
        sub = record["subject"]
        source, target = quality._load(record["source"]), quality._load(record["target"])
        mask = quality._load(record["mask"]) > 0
        truth = quality._truth_labels(args.bids, record)
        target_seg = quality._load(args.cache / DIRECTION / sub / "target_dseg.nii.gz")
        reference = quality.target_reference(target, mask, truth, quality.SLICE_AXIS)
        output = _output(args.cache, record)
        for variant in ("global", "source-conditioned"):
            start = time.perf_counter()
            level = source_level(source, mask) if variant == "source-conditioned" else None
            image = calibrate(output, mask, calibration, level)
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
                json.dumps({"subject": sub, "variant": variant, **result, "seconds": seconds}),
                flush=True,
            )


def summarize(args: argparse.Namespace) -> None:
    results: dict[str, list[dict]] = {}
    for line in args.results.read_text().splitlines():
        row = json.loads(line)
        results.setdefault(f"Ours, {row['variant']} calibration", []).append(row)
    subjects = sorted(row["subject"] for row in next(iter(results.values())))
    cached = {
        name: [
            {
                **json.loads(
                    next(
                        path
                        for path in sorted(
                            (args.cache / DIRECTION / sub).glob(f"{quality._slug(name)}*.json")
                        )
                        if "_cal" not in path.stem
                    ).read_text()
                ),
                "subject": sub,
            }
            for sub in subjects
        ]
        for name in ("Histogram matching", "Nyul", METHOD)
    }  # uncalibrated, as evaluated
    results = quality.with_cached_original({**cached, **results}, args.cache, DIRECTION)
    print(
        quality.tables(
            DIRECTION,
            quality.summarize(results),
            default=METHOD,
            about={"heldout_seeds": args.heldout_seeds},
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fi = commands.add_parser("fit")
    fi.add_argument("folders", type=Path, nargs="+")
    fi.add_argument("--output", type=Path, required=True)
    st = commands.add_parser("store")
    st.add_argument("model_dir", type=Path)
    st.add_argument("folders", type=Path, nargs="+")
    st.add_argument("--dataset", required=True, help="the calibration BIDS dataset's name")
    st.add_argument("--phantom-seeds", type=int, nargs="+", default=[])
    ev = commands.add_parser("evaluate")
    ev.add_argument("bids", type=Path)
    ev.add_argument("work", type=Path)
    ev.add_argument("cache", type=Path)
    ev.add_argument("calibration", type=Path)
    su = commands.add_parser("summarize")
    su.add_argument("cache", type=Path)
    su.add_argument("results", type=Path)
    su.add_argument(
        "--heldout-seeds", type=int, nargs="+", default=[2000], help="for the tables' heading"
    )
    args = parser.parse_args()
    {"fit": fit, "store": store, "evaluate": evaluate, "summarize": summarize}[args.command](args)


if __name__ == "__main__":
    main()
