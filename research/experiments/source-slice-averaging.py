"""The source averaged across neighbouring slices before the model (issue 34, through-plane).

The 2D models harmonize sagittal slices one by one. A 1.5 T source is much noisier than
its 3 T target (detail energy 2-5 x the target's on the unseen-scanner sets); the model
denoises each slice on its own, so what it keeps of the noise differs from slice to slice
and the output is rougher across slices than within them. This arm gives the model the
source averaged along the slice axis with weights 1/4, 1/2, 1/4 (inside the brain mask,
normalised to it): less noise that differs between neighbouring slices, at the price of a
slight blur across slices. Nothing else changes (reference, anchoring, sampler, seed).

    python research/experiments/source-slice-averaging.py BIDS WORK CACHE DIRECTION OUT_DIR
    python research/experiments/source-slice-averaging.py verdict BIDS=OUT_DIR ...

OUT_DIR is the folder of output-reference-matching.py's runs of the same set and direction
(the default outputs are kept in OUT_DIR/axis0); the arm's in OUT_DIR/slice-averaged.
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

OURS = "Ours (dpm, 2 steps)"
ARM = "Ours, source averaged across slices"
RECORD = "source-slice-averaging.json"
WEIGHTS = np.array([0.25, 0.5, 0.25])


def average_slices(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` averaged along the slice axis with WEIGHTS, normalised to ``mask``."""
    inside = mask.astype(np.float64)
    num = ndimage.convolve1d(image * inside, WEIGHTS, axis=Q.SLICE_AXIS, mode="constant")
    den = ndimage.convolve1d(inside, WEIGHTS, axis=Q.SLICE_AXIS, mode="constant")
    return np.where(mask, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)


def main(bids, work, cache, direction_name, out_dir):
    results = {name: [] for name in (Q.ORIGINAL, Q.MATCHING, OURS, ARM)}
    site_of = Q.sites(Path(bids))
    model, found = Q.research_cases(bids, work, cache, direction_name, [])
    for case in found:
        ours = case.ours(model, Path(out_dir) / "axis0" / f"{case.subject}.npy")
        averaged = case._replace(source=average_slices(case.source, case.mask))
        arm = averaged.ours(model, Path(out_dir) / "slice-averaged" / f"{case.subject}.npy")
        images = {
            Q.ORIGINAL: case.source,
            Q.MATCHING: case.peers.histogram_matching(case.source, case.mask),
            OURS: ours,
            ARM: arm,
        }
        for name, image in images.items():
            row = {**case.evaluate(np.asarray(image, np.float32)), "seconds": float("nan")}
            results[name].append({**row, "subject": case.subject, "site": site_of[case.subject]})
            print(case.subject, name, json.dumps(row, default=float), file=sys.stderr, flush=True)
    Path(out_dir, RECORD).write_text(json.dumps(results, indent=1, default=float))
    summary = Q.summarize(results)
    about = {"subjects": len(results[OURS]), "phantom": Path(bids).name}
    for name in (OURS, ARM):
        shown = {k: summary[k] for k in (Q.ORIGINAL, Q.MATCHING, name)}
        checks = Q.acceptance_unseen(summary, name)
        print(Q.tables(f"{Path(bids).name}: {direction_name}, {name}", shown, about, checks))
        print(f"bars met: {sum(ok for _, _, ok in checks)} of {len(checks)}\n")


def verdict(*runs):
    """Per ``BIDS=OUT_DIR`` run: the bars each of ours and the arm meets, the bars the arm
    loses, its per-axis through-plane ratios and the within-site error (x Original's)."""
    for run in runs:
        bids, out_dir = run.split("=", 1)
        summary = Q.summarize(json.loads(Path(out_dir, RECORD).read_text()))
        original = summary[Q.ORIGINAL]["site_deviation_error"]
        checks = {name: Q.acceptance_unseen(summary, name) for name in (OURS, ARM)}
        met = {name: {c for c, _, ok in rows if ok} for name, rows in checks.items()}
        print(run)
        for name in (OURS, ARM):
            error = summary[name]["site_deviation_error"]
            print(
                f"  {name}: bars {len(met[name])} of {len(checks[name])};"
                f" anisotropy {summary[name].get('anisotropy_ratios')};"
                " within-site CSF / GM / WM "
                + " / ".join(f"{error[t] / original[t]:.3f}" for t in Q.metrics.TISSUES)
            )
        print(f"  lost: {sorted(met[OURS] - met[ARM])}; gained: {sorted(met[ARM] - met[OURS])}")


if __name__ == "__main__":
    if sys.argv[1] == "verdict":
        verdict(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
