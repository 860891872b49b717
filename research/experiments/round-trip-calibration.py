"""Round-trip output calibration without pairs (see round-trip-calibration.md).

    python research/experiments/round-trip-calibration.py BIDS WORK CACHE DIRECTION OUT_DIR \
        --fit 01 02 03 04 --measure 05 06 07 08 [--json RESULTS.json]

Each --fit subject's target-field scan (registered to its source) is taken to the source
field by the other direction's bundled model and back by this direction's; both runs use
references pooled from the other --fit subjects only. The output calibration
(harmonize_bids.model.calibration) is fitted on (round trip, its source, the real scan)
and applied to the bundled model's default outputs of the --measure subjects (kept in
OUT_DIR/axis0), measured as benchmarks/quality.py does. Prints one line per method.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

from harmonize_bids.image.reference import TargetReference, brain_quantiles  # noqa: E402
from harmonize_bids.inference import InferenceSettings, harmonize  # noqa: E402
from harmonize_bids.model.calibration import OutputCalibration, fit_output_calibration  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
fewshot = __import__("fewshot-calibration")

ROUND_TRIP = "Ours + round-trip calibration"
MAP_ALONE = "Ours + round-trip map alone"


def run(model, image, mask, field, scans, names) -> np.ndarray:
    """``model``'s default output of ``image`` with ``scans`` pooled as its reference."""
    reference = TargetReference.pooled(field, [brain_quantiles(s, m) for s, m in scans], names)
    settings = InferenceSettings.resolve(model, seed=0)
    return harmonize(model, image, mask, settings, reference=reference).image


def round_trip(args, case, fit_cases) -> tuple[np.ndarray, np.ndarray]:
    """(source-field image, round-trip output) of ``case``'s target-field scan, kept."""
    kept = Path(args.out_dir) / "round_trip" / f"{case.subject}.npz"
    if not kept.is_file():
        direction = Q.DIRECTIONS[args.direction]
        reverse = next(d for name, d in Q.DIRECTIONS.items() if name != args.direction)
        others = [c for c in fit_cases if c.subject != case.subject]
        names = [c.subject for c in others]
        sources = [(c.source, c.mask) for c in others]
        targets = [(c.target, c.mask) for c in others]
        there = run(Q.load_model(reverse), case.target, case.mask, reverse.target, sources, names)
        back = run(Q.load_model(direction), there, case.mask, direction.target, targets, names)
        kept.parent.mkdir(parents=True, exist_ok=True)
        np.savez(kept, there=there, back=back)
    with np.load(kept) as saved:
        return saved["there"].astype(np.float32), saved["back"].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("bids", "work", "cache", "direction", "out_dir"):
        parser.add_argument(name)
    parser.add_argument("--fit", nargs="+", required=True)
    parser.add_argument("--measure", nargs="+", required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    _, found = Q.research_cases(args.bids, args.work, args.cache, args.direction, args.fit)
    fit_cases = list(found)
    pairs = []
    for case in fit_cases:
        there, back = round_trip(args, case, fit_cases)
        pairs.append((back, there, case.target, case.mask))
        print(f"{case.subject} round trip", file=sys.stderr, flush=True)
    calibration = fit_output_calibration(pairs, [c.subject for c in fit_cases])
    map_alone = OutputCalibration(calibration.output_map)
    print(f"change weight {calibration.change_weight:.3f}")

    outputs = Q.research_outputs(
        args.bids, args.work, args.cache, args.direction, args.out_dir, args.measure
    )
    results: dict[str, list[dict]] = {}
    for case, ours, matched in outputs:
        methods = [
            (Q.ORIGINAL, case.source),
            (Q.MATCHING, matched),
            ("Ours", ours),
            (ROUND_TRIP, calibration.apply(ours, case.source, case.mask)),
            (MAP_ALONE, map_alone.apply(ours, case.source, case.mask)),
        ]
        for name, image in methods:
            results.setdefault(name, []).append({**case.evaluate(image), "seconds": 0.0})
        print(f"{case.subject} measured", file=sys.stderr, flush=True)
    summary = Q.summarize(results)
    for name in results:
        print(fewshot.line(summary, name))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "calibration": calibration.to_json(),
                    "bars": {n: fewshot.bars(summary, n) for n in ("Ours", ROUND_TRIP)},
                    "summary": summary,
                }
            )
        )


if __name__ == "__main__":
    main()
