"""Does the out-of-domain check warn where the model moves tissue volumes away from the target?

Usage: python domain-warnings.py NAME BIDS WORK CACHE DIRECTION [SUBJECT ...]: for each
subject of a prepared phantom (all if none), the bundled model's default output with the
site mates' reference (as ``benchmarks/quality.py`` makes it, seed 0), the warnings the app
would record in its sidecar (``DomainWarnings``), and the CSF / GM / WM volume differences
to the target of the output as fractions of the source's.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402


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


if __name__ == "__main__":
    main(*sys.argv[1:])
