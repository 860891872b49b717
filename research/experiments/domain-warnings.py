"""Does the out-of-domain check warn where the model moves tissue volumes away from the target?

Usage: python domain-warnings.py NAME BIDS WORK CACHE DIRECTION [SUBJECT ...]: for each
subject of a prepared phantom (all if none), the bundled model's default output with the
site mates' reference (as ``benchmarks/quality.py`` makes it, seed 0), the warnings the app
would record in its sidecar (``DomainWarnings``), and the CSF / GM / WM volume differences
to the target of the output as fractions of the source's.

``python domain-warnings.py gaps BIDS WORK DIRECTION OUT_DIR RECORD [...]``: for default
outputs kept by output-reference-matching.py (OUT_DIR/axis0, its RECORD's per-subject
volumes), how far the output's tissue profile lies from its site mates' pooled target
reference (largest class-weight and contrast difference), next to the output's largest
volume error (fraction of the target's brain), and their rank correlation over all runs.
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

OURS = "Ours (dpm, 2 steps)"


def main(name: str, bids: str, work: str, cache: str, direction: str, *subjects: str) -> None:
    from harmonize_bids.inference import InferenceSettings, harmonize

    model, found = Q.research_cases(bids, work, cache, direction, list(subjects))
    settings = InferenceSettings.resolve(model, seed=0)
    print(f"## {name}: {direction}\n")
    print("| subject | CSF / GM / WM volume difference (x source's) | warnings |")
    print("|---|---|---|")
    for case in found:
        result = harmonize(model, case.source, case.mask, settings, reference=case.peers.reference)
        before = case.evaluate(case.source)["volume_diff"]
        after = case.evaluate(result.image)["volume_diff"]
        ratios = " / ".join(f"{after[t] / before[t]:.2f}" for t in ("CSF", "GM", "WM"))
        warnings = "; ".join(result.provenance["DomainWarnings"]) or "none"
        print(f"| {case.subject} | {ratios} | {warnings} |", flush=True)


def gaps(*runs: str) -> None:
    from scipy.stats import spearmanr

    from harmonize_bids.image.domain import (
        CONTRAST_KEYS,
        WEIGHT_KEYS,
        contrast_profile,
        quantile_profile,
    )
    from harmonize_bids.image.reference import brain_quantiles, pool_quantiles

    found = []
    for bids, work, direction, out_dir, record in zip(*[iter(runs)] * 5, strict=True):
        site_of = Q.sites(Path(bids))
        ours = {r["subject"]: r for r in json.loads(Path(out_dir, record).read_text())[OURS]}
        pairs = {r["subject"]: r for r in Q.pair_records(Path(work), Q.DIRECTIONS[direction])}
        masks = {s: Q.load(r["mask"]) > 0 for s, r in pairs.items()}
        targets = {s: brain_quantiles(Q.load(r["target"]), masks[s]) for s, r in pairs.items()}
        for subject in pairs:
            mates = Q.site_mates(subject, pairs, site_of)
            reference = quantile_profile(pool_quantiles([targets[s] for s in mates]))
            output = np.load(Path(out_dir, "axis0", f"{subject}.npy"))
            profile = contrast_profile(output, masks[subject])
            row = ours[subject]
            brain = sum(row["target_volumes"].values())
            found.append(
                (
                    max(abs(profile[k] - reference[k]) for k in WEIGHT_KEYS),
                    max(abs(profile[k] - reference[k]) for k in CONTRAST_KEYS),
                    max(
                        abs(row["volumes"][t] - row["target_volumes"][t]) / brain
                        for t in row["volumes"]
                    ),
                )
            )
            print(bids, direction, subject, " ".join(f"{v:.3f}" for v in found[-1]), flush=True)
    weight, contrast, error = np.array(found).T
    print(
        f"{len(found)} outputs: Spearman rho with the largest volume error: weight gap "
        f"{spearmanr(weight, error)[0]:.2f}, contrast gap {spearmanr(contrast, error)[0]:.2f}"
    )


if __name__ == "__main__":
    if sys.argv[1] == "gaps":
        gaps(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
