"""Few-shot output calibration on the travelling pairs (see fewshot-calibration.md).

    python research/experiments/fewshot-calibration.py BIDS WORK CACHE DIRECTION OUT_DIR \
        MODEL_DIR --fit 01 02 --measure 05 06 07 08 [--json RESULTS.json]

MODEL_DIR's default outputs (kept in OUT_DIR/axis0) of the --fit subjects fit the output
calibration (harmonize_bids.model.quantile_map) onto their targets. The --measure
subjects' Original, histogram matching, output and calibrated output, and their source put
through the same kind of map fitted from the --fit subjects' sources to their targets (no
model), are then measured as benchmarks/quality.py does. Prints one line per method:
fractions of Original and the few-shot bars met. CACHE must be a folder of this set only.
With --paired-reference, the model's output with that mapped source as its reference
joins them. With --oracles, two maps that read each measured subject's own target do: its
own quantile map, and the monotone map of least squared error (isotonic regression): what
the best monotone map could do for MSE and for the volumes. With --per-subject, the sixth
rule's candidates join them: our output quantile-matched to the subject's own source put
through the pairs' source map, and the calibrated output shrunk towards the source by the
weight of least squared error on the pairs.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

from harmonize_bids.model.quantile_map import GRID, fit_quantile_map  # noqa: E402
from harmonize_bids.qc import metrics  # noqa: E402

CALIBRATED = "Ours + pair calibration"
SOURCE_MAPPED = "Source + pair map"
PAIRED_REFERENCE = "Ours, paired reference"
OWN_MAPPED_SOURCE = "Ours matched to its own mapped source"
SHRUNK = "Ours + pair calibration, shrunk to the source"
QUANTILE_ORACLE = "Ours + own quantile map (oracle)"
LEAST_SQUARES_ORACLE = "Ours + own least-squares monotone map (oracle)"


def least_squares_map(output: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The monotone map of the output with the lowest squared error to its own target."""
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(out_of_bounds="clip").fit(output[mask], target[mask])
    return np.where(mask, fitted.predict(output.ravel()).reshape(output.shape), 0).astype(
        np.float32
    )


def bars(summary: dict, name: str) -> list[bool]:
    ours, hm = summary[name], summary[Q.MATCHING]
    return [ours["mse"] < hm["mse"]] + [
        ours["volume_diff"][t] < hm["volume_diff"][t] for t in metrics.TISSUES
    ]


def line(summary: dict, name: str) -> str:
    orig, row = summary[Q.ORIGINAL], summary[name]
    vol = " / ".join(
        f"{row['volume_diff'][t] / orig['volume_diff'][t]:.3f}" for t in metrics.TISSUES
    )
    dice = " / ".join(f"{row['dice'][t]:.3f}" for t in metrics.TISSUES)
    text = (
        f"{name}: MSE {row['mse'] / orig['mse']:.3f}, AHD {row['ahd'] / orig['ahd']:.3f}, "
        f"CSF/GM/WM {vol}, Dice {dice}, lesion {row['lesion_contrast_ratio']:.3f}, "
        f"detail {row['detail_ratio']:.3f}"
    )
    if name not in (Q.ORIGINAL, Q.MATCHING):
        text += f", bars met {sum(bars(summary, name))} of 4"
    return text


def shrink_weight(pairs: list[tuple[np.ndarray, ...]]) -> float:
    """The weight w in [0, 1] of least squared error, over the pairs' brains, of
    source + w (calibrated output - source) to the target."""
    num = den = 0.0
    for calibrated, source, target, mask in pairs:
        step, gap = (calibrated - source)[mask > 0], (target - source)[mask > 0]
        num, den = num + float(step @ gap), den + float(step @ step)
    return float(np.clip(num / den, 0.0, 1.0)) if den else 1.0


def paired_reference_output(args, case, source_map) -> np.ndarray:
    """The model's default output with the mapped source as its reference (kept)."""
    from harmonize_bids.image.reference import TargetReference, brain_quantiles
    from harmonize_bids.inference import InferenceSettings, harmonize

    kept = Path(args.out_dir) / "paired" / f"{case.subject}.npy"
    if not kept.is_file():
        direction = Q.DIRECTIONS[args.direction]
        model = Q.load_model(direction, Path(args.model_dir))
        mapped = source_map.apply(case.source, case.mask)
        reference = TargetReference(
            direction.target, brain_quantiles(mapped, case.mask), [], "paired map"
        )
        settings = InferenceSettings.resolve(model, seed=0)
        image = harmonize(model, case.source, case.mask, settings, reference=reference).image
        kept.parent.mkdir(parents=True, exist_ok=True)
        np.save(kept, image)
    return np.load(kept).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("bids", "work", "cache", "direction", "out_dir", "model_dir"):
        parser.add_argument(name)
    parser.add_argument("--fit", nargs="+", required=True)
    parser.add_argument("--measure", nargs="+", required=True)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--paired-reference",
        action="store_true",
        help="also harmonize each measured subject with its source put through the pairs' "
        "source map as the model's reference (kept in OUT_DIR/paired)",
    )
    parser.add_argument(
        "--per-subject",
        action="store_true",
        help="also measure the two per-subject candidates of the sixth rule",
    )
    parser.add_argument(
        "--oracles",
        action="store_true",
        help="also measure the monotone maps that read each subject's own target",
    )
    args = parser.parse_args()

    outputs = Q.research_outputs(
        args.bids,
        args.work,
        args.cache,
        args.direction,
        args.out_dir,
        [*args.fit, *args.measure],
        model_dir=args.model_dir,
    )
    fitted, sources, measured = [], [], []
    for case, ours, matched in outputs:
        if case.subject.removeprefix("sub-") in args.fit:
            fitted.append((ours, case.target, case.mask))
            sources.append((case.source, case.target, case.mask))
        else:
            measured.append((case, ours, matched))
    calibration = fit_quantile_map(fitted, args.fit)
    source_map = fit_quantile_map(sources, args.fit)
    weight = shrink_weight(
        [
            (calibration.apply(o, m), s, t, m)
            for (o, t, m), (s, _, _) in zip(fitted, sources, strict=True)
        ]
    )
    print(f"shrink weight {weight:.3f}")
    at = [0.3, 0.45, 0.6, 0.7, 0.8]
    values = np.interp(at, GRID, calibration.correction)
    print(f"correction at {at}: " + " ".join(f"{v:+.3f}" for v in values))
    results: dict[str, list[dict]] = {}
    for case, ours, matched in measured:
        methods = [
            (Q.ORIGINAL, case.source),
            (Q.MATCHING, matched),
            ("Ours", ours),
            (CALIBRATED, calibration.apply(ours, case.mask)),
            (SOURCE_MAPPED, source_map.apply(case.source, case.mask)),
        ]
        if args.per_subject:
            mapped = source_map.apply(case.source, case.mask)
            own = fit_quantile_map([(ours, mapped, case.mask)], [case.subject])
            calibrated = calibration.apply(ours, case.mask)
            shrunk = np.where(case.mask > 0, case.source + weight * (calibrated - case.source), 0)
            methods += [
                (OWN_MAPPED_SOURCE, own.apply(ours, case.mask)),
                (SHRUNK, shrunk.astype(np.float32)),
            ]
        if args.paired_reference:
            methods.append((PAIRED_REFERENCE, paired_reference_output(args, case, source_map)))
        if args.oracles:
            own = fit_quantile_map([(ours, case.target, case.mask)], [case.subject])
            methods += [
                (QUANTILE_ORACLE, own.apply(ours, case.mask)),
                (LEAST_SQUARES_ORACLE, least_squares_map(ours, case.target, case.mask)),
            ]
        for name, image in methods:
            results.setdefault(name, []).append({**case.evaluate(image), "seconds": 0.0})
        print(f"{case.subject} measured", file=sys.stderr, flush=True)
    summary = Q.summarize(results)
    for name in results:
        print(line(summary, name))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"calibration": calibration.to_json(), "shrink_weight": weight, "summary": summary}
            )
        )


if __name__ == "__main__":
    main()
