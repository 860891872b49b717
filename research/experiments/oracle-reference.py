"""With its own target as the reference, does the model close the volume gaps? (diagnosis)

Usage: python oracle-reference.py BIDS WORK CACHE DIRECTION [SUBJECT ...] [--model DIR]
                                  [--reference own|site-map]

For each subject of a prepared phantom (all if none): histogram matching and the default
output (seed 0) of the bundled model (or of DIR) with the site mates' pooled reference, as
``benchmarks/quality.py`` makes them, and both again with a reference made of the
subject's own registered target alone. That second reference is never a method (the app
never uses a subject's own target-field scan): it is the best reference there could be,
so the model's gap under it is the network's own and matching's is what a perfect
histogram leaves. With ``--reference site-map`` the second reference is instead the
subject's source mapped through its site mates' scanner map (their pooled source-field
quantiles to their pooled target-field ones; ``benchmarks/quality.py --reference
site-map``): a method, the target scanner's contrast with the subject's own proportions.
Prints the mean CSF / GM / WM volume differences, the within-site volume deviation errors
and the detail ratio, as fractions of Original's.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402


def main(
    bids: str,
    work: str,
    cache: str,
    direction: str,
    subjects: list[str],
    model_dir: str | None,
    second: str = "own",
) -> None:
    from harmonize_bids.image.reference import TargetReference, brain_quantiles, match_to_reference
    from harmonize_bids.inference import InferenceSettings, harmonize
    from harmonize_bids.qc.metrics import TISSUES

    field = Q.DIRECTIONS[direction].target
    site_of = Q.sites(Path(bids))

    def second_reference(case) -> np.ndarray:
        if second == "own":
            return brain_quantiles(case.target, case.mask)
        return case.peers.site_mapped_reference(case.source, case.mask).quantiles

    label = {"own": "own target", "site-map": "site-mapped source"}[second]
    model, found = Q.research_cases(bids, work, cache, direction, subjects, model_dir=model_dir)
    settings = InferenceSettings.resolve(model, seed=0)
    rows: dict[str, list[dict]] = {}
    for case in found:
        other = TargetReference.pooled(field, [second_reference(case)], [label])
        images = {
            "Original": case.source,
            "matching, site mates": case.peers.histogram_matching(case.source, case.mask),
            f"matching, {label}": match_to_reference(case.source, case.mask, other.quantiles),
            "model, site mates": harmonize(
                model, case.source, case.mask, settings, reference=case.peers.reference
            ).image,
            f"model, {label}": harmonize(
                model, case.source, case.mask, settings, reference=other
            ).image,
        }
        for name, image in images.items():
            row = case.evaluate(np.asarray(image, np.float32))
            rows.setdefault(name, []).append({**row, "site": site_of[case.subject]})
        print(f"{case.subject} done", file=sys.stderr, flush=True)
    original = {t: np.mean([r["volume_diff"][t] for r in rows["Original"]]) for t in TISSUES}
    within_original = Q.site_deviation_error(rows["Original"])
    print(f"{len(rows['Original'])} subjects of {Path(bids).name}, {direction}\n")
    print(
        "| method, reference | CSF / GM / WM volume diff. (x Original) "
        "| within-site error CSF / GM / WM (x Original's) | detail / target's |"
    )
    print("|---|---|---|---|")
    for name, results in rows.items():
        volume = " / ".join(
            f"{np.mean([r['volume_diff'][t] for r in results]) / original[t]:.3f}" for t in TISSUES
        )
        errors = Q.site_deviation_error(results)
        within = " / ".join(f"{errors[t] / within_original[t]:.3f}" for t in TISSUES)
        detail = np.mean([r["detail_ratio"] for r in results])
        print(f"| {name} | {volume} | {within} | {detail:.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("bids", "work", "cache", "direction"):
        parser.add_argument(name)
    parser.add_argument("subjects", nargs="*")
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--reference", choices=("own", "site-map"), default="own")
    args = parser.parse_args()
    main(
        args.bids,
        args.work,
        args.cache,
        args.direction,
        args.subjects,
        args.model,
        args.reference,
    )
