"""With its own target as the reference, does the model close the volume gaps? (diagnosis)

Usage: python oracle-reference.py BIDS WORK CACHE DIRECTION [SUBJECT ...] [--model DIR]

For each subject of a prepared phantom (all if none): histogram matching and the default
output (seed 0) of the bundled model (or of DIR) with the site mates' pooled reference, as
``benchmarks/quality.py`` makes them, and both again with a reference made of the
subject's own registered target alone. That second reference is never a method (the app
never uses a subject's own target-field scan): it is the best reference there could be,
so the model's gap under it is the network's own and matching's is what a perfect
histogram leaves. Prints the mean CSF / GM / WM volume differences and the detail ratio,
as fractions of Original's.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402


def main(
    bids: str, work: str, cache: str, direction: str, subjects: list[str], model_dir: str | None
) -> None:
    from harmonize_bids.image.reference import TargetReference, brain_quantiles, match_to_reference
    from harmonize_bids.inference import InferenceSettings, harmonize
    from harmonize_bids.qc.metrics import TISSUES

    model, found = Q.research_cases(bids, work, cache, direction, subjects, model_dir=model_dir)
    settings = InferenceSettings.resolve(model, seed=0)
    rows: dict[str, list[dict]] = {}
    for case in found:
        own = TargetReference.pooled(
            Q.DIRECTIONS[direction].target, [brain_quantiles(case.target, case.mask)], ["own"]
        )
        images = {
            "Original": case.source,
            "matching, site mates": case.peers.histogram_matching(case.source, case.mask),
            "matching, own target": match_to_reference(case.source, case.mask, own.quantiles),
            "model, site mates": harmonize(
                model, case.source, case.mask, settings, reference=case.peers.reference
            ).image,
            "model, own target": harmonize(
                model, case.source, case.mask, settings, reference=own
            ).image,
        }
        for name, image in images.items():
            rows.setdefault(name, []).append(case.evaluate(np.asarray(image, np.float32)))
        print(f"{case.subject} done", file=sys.stderr, flush=True)
    original = {t: np.mean([r["volume_diff"][t] for r in rows["Original"]]) for t in TISSUES}
    print(f"{len(rows['Original'])} subjects of {Path(bids).name}, {direction}\n")
    print("| method, reference | CSF / GM / WM volume diff. (x Original) | detail / target's |")
    print("|---|---|---|")
    for name, results in rows.items():
        volume = " / ".join(
            f"{np.mean([r['volume_diff'][t] for r in results]) / original[t]:.3f}" for t in TISSUES
        )
        detail = np.mean([r["detail_ratio"] for r in results])
        print(f"| {name} | {volume} | {detail:.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("bids", "work", "cache", "direction"):
        parser.add_argument(name)
    parser.add_argument("subjects", nargs="*")
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    args = parser.parse_args()
    main(args.bids, args.work, args.cache, args.direction, args.subjects, args.model)
