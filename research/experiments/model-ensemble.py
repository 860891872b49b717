"""The mean output of several independently trained models of one direction.

Models trained along different paths err in opposite directions on the grey-matter
volume from one unseen site pair to the next (from-scratch-sites.md), so their mean may
carry less of each one's error. Averaging also smooths, so a second combination keeps
the first member's fine scales: the mean plus the high-pass part (above a Gaussian of
SIGMA voxels, the split of gm-gap-frequency.py) of the first member's difference from it.
Each member harmonizes every subject at the default
setting (its output kept in OUT_DIR/<member>/axis0, as multi-planar.py keeps it); the
members and both combinations are measured with benchmarks/quality.py's metrics and
issue 34's bars, and the tables are printed as markdown.

    python research/experiments/model-ensemble.py BIDS WORK CACHE DIRECTION OUT_DIR \
        NAME=MODEL_DIR [NAME=MODEL_DIR ...]

MODEL_DIR ``bundled`` is the direction's bundled model. On the real scans of
benchmarks/real_scans.py (3 T -> 1.5 T: the real 3 T scan harmonized to the real 1.5 T
one), with that benchmark's measures:

    python research/experiments/model-ensemble.py real SCAN_1P5T SCAN_3T WORK \
        NAME=MODEL_DIR [NAME=MODEL_DIR ...]
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

ENSEMBLE = "Mean of the members"
ENSEMBLE_FINE = "Mean of the members, first member's fine scales"
SIGMA = 1.0


def load_members(direction, members: tuple[str, ...]) -> dict:
    """``NAME=MODEL_DIR`` arguments as name -> model (``bundled``: the bundled model)."""
    models = {}
    for item in members:
        name, folder = item.split("=", 1)
        models[name] = Q.load_model(direction, None if folder == "bundled" else Path(folder))
    return models


def combinations(images: dict, members: list[str], mask: np.ndarray) -> dict:
    """The members' mean, and the mean with the first member's fine scales."""
    mean = np.mean([images[name] for name in members], axis=0)
    change = images[members[0]] - mean
    fine = mean + change - ndimage.gaussian_filter(change, SIGMA)
    return {ENSEMBLE: mean, ENSEMBLE_FINE: np.where(mask, fine, 0)}


def real(scan_1p5T, scan_3T, work, *members):
    import real_scans as R

    from harmonize_bids.image.reference import (
        TargetReference,
        brain_quantiles,
        match_to_reference,
    )
    from harmonize_bids.inference import InferenceSettings, harmonize

    direction = Q.DIRECTIONS["3T-to-1.5T"]
    image, mask = R.preprocess(Path(scan_3T), Path(work))
    target, target_mask = R.preprocess(Path(scan_1p5T), Path(work))
    reference = TargetReference.pooled(
        direction.target, [brain_quantiles(target, target_mask)], ["real target-field scan"]
    )
    images = {
        Q.ORIGINAL: image,
        Q.MATCHING: match_to_reference(image, mask, reference.quantiles),
    }
    models = load_members(direction, members)
    for name, model in models.items():
        settings = InferenceSettings.resolve(model)
        images[name] = harmonize(model, image, mask, settings, reference=reference).image
    images.update(combinations(images, list(models), mask))
    hist = R.metrics.brain_histogram(target, target_mask)
    goal = R.fractions(target, target_mask)
    print("target fractions", json.dumps(goal))
    for name, out in images.items():
        row = R.measure(np.asarray(out, np.float32), mask, image, hist, goal)
        print(name, json.dumps(row, default=float), flush=True)


def main(bids, work, cache, direction_name, out_dir, *members):
    direction = Q.DIRECTIONS[direction_name]
    models = load_members(direction, members)
    combined = [*models, ENSEMBLE, ENSEMBLE_FINE]
    results = {name: [] for name in [Q.ORIGINAL, Q.MATCHING, *combined]}
    site_of = Q.sites(Path(bids))
    measured = set()
    for case in Q.cases(Path(bids), Path(work), direction, Path(cache) / direction_name):
        measured.add(site_of[case.subject])
        images = {
            Q.ORIGINAL: case.source,
            Q.MATCHING: case.peers.histogram_matching(case.source, case.mask),
        }
        for name, model in models.items():
            kept = Path(out_dir) / name / "axis0" / f"{case.subject}.npy"
            images[name] = case.ours(model, kept)
        images.update(combinations(images, list(models), case.mask))
        for name, image in images.items():
            row = {**case.evaluate(np.asarray(image, np.float32)), "seconds": float("nan")}
            results[name].append(row)
            print(case.subject, name, json.dumps(row, default=float), file=sys.stderr, flush=True)
    Path(out_dir, "ensemble.json").write_text(json.dumps(results, indent=1, default=float))
    summary = Q.summarize(results)
    about = {
        "subjects": len(results[ENSEMBLE]),
        "sites": len(measured),
        "phantom": Path(bids).name,
    }
    for name in combined:
        shown = {k: summary[k] for k in (Q.ORIGINAL, Q.MATCHING, name)}
        checks = Q.acceptance_unseen(summary, name)
        print(Q.tables(f"{Path(bids).name}: {direction_name}, {name}", shown, about, checks))


if __name__ == "__main__":
    if sys.argv[1] == "real":
        real(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
