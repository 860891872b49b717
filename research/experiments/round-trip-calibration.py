"""Round-trip output calibration without pairs (see round-trip-calibration.md).

    python research/experiments/round-trip-calibration.py BIDS WORK CACHE DIRECTION OUT_DIR \
        (--fit 01 02 03 04 | --site-mates) --measure 05 06 07 08 [--json RESULTS.json]

Each --fit subject's target-field scan (registered to its source) is taken to the source
field by the other direction's bundled model and back by this direction's; both runs use
references pooled from the other --fit subjects only. The output calibration
(harmonize_bids.model.calibration) is fitted on (round trip, its source, the real scan)
and applied to the bundled model's default outputs of the --measure subjects (kept in
OUT_DIR/axis0), measured as benchmarks/quality.py does. Prints one line per method.
With --site-mates instead of --fit, each measured subject's calibration is fitted on the
round trips of all its site mates (each referencing the others but itself and the
measured subject), as a participant job would fit it.
"""

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

from harmonize_bids.inference import InferenceSettings, harmonize  # noqa: E402
from harmonize_bids.model.calibration import OutputCalibration, fit_output_calibration  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
fewshot = __import__("fewshot-calibration")

ROUND_TRIP = "Ours + round-trip calibration"
MAP_ALONE = "Ours + round-trip map alone"


@functools.cache
def bundled(direction):
    """The direction's bundled model, loaded once."""
    return Q.load_model(direction)


def run(direction, image, mask, scans, names) -> np.ndarray:
    """The bundled model's default output of ``image`` with ``scans`` pooled as its
    reference (as benchmarks/quality.py pools site mates)."""
    model = bundled(direction)
    reference = Q.SitePeers(scans, names, direction.target).reference
    settings = InferenceSettings.resolve(model, seed=0)
    return harmonize(model, image, mask, settings, reference=reference).image


def round_trip(args, case, others) -> tuple[np.ndarray, np.ndarray]:
    """(source-field image, round-trip output) of ``case``'s target-field scan, with
    ``others`` as the references of both runs, kept."""
    names = [c.subject for c in others]
    kept = Path(args.out_dir) / "round_trip" / f"{case.subject}_from_{'_'.join(names)}.npz"
    if not kept.is_file():
        direction = Q.DIRECTIONS[args.direction]
        reverse = next(d for name, d in Q.DIRECTIONS.items() if name != args.direction)
        sources = [(c.source, c.mask) for c in others]
        targets = [(c.target, c.mask) for c in others]
        there = run(reverse, case.target, case.mask, sources, names)
        back = run(direction, there, case.mask, targets, names)
        kept.parent.mkdir(parents=True, exist_ok=True)
        np.savez(kept, there=there, back=back)
    with np.load(kept) as saved:
        return saved["there"].astype(np.float32), saved["back"].astype(np.float32)


def fit_round_trips(args, fit_cases) -> OutputCalibration:
    """The output calibration fitted on the round trips of ``fit_cases``, each referencing
    the others."""
    pairs = []
    for case in fit_cases:
        others = [c for c in fit_cases if c.subject != case.subject]
        there, back = round_trip(args, case, others)
        pairs.append((back, there, case.target, case.mask))
        print(f"{case.subject} round trip", file=sys.stderr, flush=True)
    return fit_output_calibration(pairs, [c.subject for c in fit_cases])


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("bids", "work", "cache", "direction", "out_dir"):
        parser.add_argument(name)
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("--fit", nargs="+")
    choice.add_argument("--site-mates", action="store_true")
    parser.add_argument("--measure", nargs="+", required=True)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--checks",
        choices=("unseen", "in-distribution"),
        help="also print these acceptance bars for Ours and the round-trip calibration",
    )
    args = parser.parse_args()

    site_of = Q.sites(Path(args.bids))
    labels = args.fit or [s.removeprefix("sub-") for s in site_of]
    _, found = Q.research_cases(args.bids, args.work, args.cache, args.direction, labels)
    fit_cases = list(found)
    if args.fit:
        calibrations = dict.fromkeys(args.measure, fit_round_trips(args, fit_cases))
    else:
        calibrations = {}
        for label in args.measure:
            sub = f"sub-{label}"
            mates = [
                c for c in fit_cases if c.subject != sub and site_of[c.subject] == site_of[sub]
            ]
            calibrations[label] = fit_round_trips(args, mates)
    for label, calibration in calibrations.items():
        print(f"sub-{label} change weight {calibration.change_weight:.3f}")

    outputs = Q.research_outputs(
        args.bids, args.work, args.cache, args.direction, args.out_dir, args.measure
    )
    results: dict[str, list[dict]] = {}
    for case, ours, matched in outputs:
        calibration = calibrations[case.subject.removeprefix("sub-")]
        map_alone = OutputCalibration(calibration.output_map)
        methods = [
            (Q.ORIGINAL, case.source),
            (Q.MATCHING, matched),
            (Q.NYUL, case.peers.nyul(case.source, case.mask)),
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
    if args.checks:
        acceptance = {
            "unseen": Q.acceptance_unseen,
            "in-distribution": Q.acceptance_in_distribution,
        }
        for name in ("Ours", ROUND_TRIP):
            print(f"{name}, {args.checks} bars:")
            for check, measured, met in acceptance[args.checks](summary, name):
                print(f"  {check}: {measured}: {'met' if met else 'NOT met'}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "calibrations": {k: c.to_json() for k, c in calibrations.items()},
                    "bars": {n: fewshot.bars(summary, n) for n in ("Ours", ROUND_TRIP)},
                    "summary": summary,
                }
            )
        )


if __name__ == "__main__":
    main()
