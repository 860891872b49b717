"""Calibrating the output's tissue-class means to the study's target reference (issue 34.3).

Histogram matching to the study's target-field scans transfers their tissue *proportions*
as well as their contrast: a subject with more atrophy than its site mates gets their CSF
fraction. The class means of a 3-class mixture do not depend on the proportions. This maps
an image piecewise-linearly through (0, 0) and its CSF, GM and WM means onto the
reference's (the reference's mixture fitted on its pooled quantiles), extrapolating above
WM with the GM-WM slope, and measures it after our model ("Ours + class means") and on the
source alone ("Class means"), next to Original, histogram matching and Ours, with
benchmarks/quality.py's metrics and peers (site mates' target-field scans).

    python research/experiments/class-mean-calibration.py SET_NAME BIDS WORK DIRECTION OUT_DIR

Our model's outputs are kept in OUT_DIR (npy) so a rerun only measures.
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

from harmonize_bids.image.intensity import tissue_mixture  # noqa: E402


def class_mean_map(image: np.ndarray, mask: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    means, _ = tissue_mixture(image, mask)
    ref, _ = tissue_mixture(np.asarray(quantiles), np.ones(len(quantiles), bool))
    xp, fp = np.r_[0.0, means], np.r_[0.0, ref]
    slope = (fp[3] - fp[2]) / (xp[3] - xp[2])
    out = np.where(image <= xp[3], np.interp(image, xp, fp), fp[3] + slope * (image - xp[3]))
    return np.where(mask, np.clip(out, 0.0, 1.0), 0.0).astype(np.float32)


def main(set_name, bids, work, direction_name, out_dir):
    import torch

    from harmonize_bids.inference import InferenceSettings, harmonize

    torch.set_num_threads(2)
    bids, work, out_dir = Path(bids), Path(work), Path(out_dir)
    direction = Q.DIRECTIONS[direction_name]
    model = Q.load_model(direction)
    settings = InferenceSettings.resolve(model, sampler="dpm", steps=2, seed=0)
    results = {}
    for case in Q.cases(bids, work, direction, out_dir / set_name / direction_name):
        saved = out_dir / set_name / direction_name / f"{case.subject}_ours.npy"
        if saved.is_file():
            ours = np.load(saved)
        else:
            ours = harmonize(
                model, case.source, case.mask, settings, reference=case.peers.reference
            ).image
            saved.parent.mkdir(parents=True, exist_ok=True)
            np.save(saved, ours)
        quantiles = case.peers.reference.quantiles
        images = {
            Q.ORIGINAL: case.source,
            Q.MATCHING: case.peers.histogram_matching(case.source, case.mask),
            "Class means": class_mean_map(case.source, case.mask, quantiles),
            "Ours (dpm, 2 steps)": ours,
            "Ours + class means": class_mean_map(ours, case.mask, quantiles),
        }
        for name, image in images.items():
            result = case.evaluate(image)
            result["seconds"] = 0.0
            result["subject"] = case.subject
            results.setdefault(name, []).append(result)
        print(f"{set_name} {direction_name} {case.subject} done", file=sys.stderr, flush=True)
    summary = Q.summarize(results)
    about = {
        "set": set_name,
        "phantom": bids.name,
        "subjects": len(results[Q.ORIGINAL]),
        "sites": 2,
        "model": {
            "path": str(model.path),
            "weights_sha256": model.weights_sha256,
            "iterations_total": model.meta.get("iterations_total"),
        },
    }
    checks = Q.acceptance_unseen(summary, "Ours + class means")
    text = Q.tables(f"{set_name}: {direction}", summary, about, checks)
    (out_dir / f"{set_name}_{direction_name}.md").write_text(text)
    (out_dir / f"{set_name}_{direction_name}.json").write_text(json.dumps(summary, indent=1))
    print(text)


if __name__ == "__main__":
    main(*sys.argv[1:])
