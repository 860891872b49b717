"""Which way each method's Atropos tissue volumes miss the target's, next to the phantom's
true volumes (diagnostic; see fewshot-recipe.md).

    python research/experiments/volume-sign.py BIDS WORK CACHE DIRECTION OUT_DIR MODEL_DIR \
        SUBJECT...

For each subject it prints one JSON line: CSF / GM / WM volumes in ml of the target's
segmentation and of the source, histogram matching and our output (the folder MODEL_DIR,
kept in OUT_DIR/axis0), each segmented as benchmarks/quality.py segments them, and of the
phantom's true labels (lesions counted as WM), and of the target blurred by a Gaussian of
each of BLURS voxels with its detail energy as a fraction of the target's (how far
smoothness alone moves the segmentation). CACHE must be a folder of this set only.
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

from harmonize_bids.qc import metrics  # noqa: E402

BLURS = (0.6, 1.0)


def millilitres(labels: np.ndarray) -> list[float]:
    return [round(v / 1000, 1) for v in metrics.tissue_volumes(labels).values()]


def main(bids, work, cache, direction_name, out_dir, model_dir, *subjects):
    outputs = Q.research_outputs(
        bids, work, cache, direction_name, out_dir, subjects, model_dir=model_dir
    )
    for case, ours, matched in outputs:
        truth = Q.truth_tissues(case.truth, case.mask)
        row = {"subject": case.subject, "target": millilitres(case.target_seg)}
        for name, image in (("source", case.source), (Q.MATCHING, matched), ("ours", ours)):
            row[name] = millilitres(metrics.segment_tissues(image, case.mask))
        row["truth"] = millilitres(truth)
        target_detail = metrics.detail_energy(case.target, case.mask)
        for sigma in BLURS:
            blurred = np.where(case.mask, ndimage.gaussian_filter(case.target, sigma), 0)
            blurred = blurred.astype(np.float32)
            row[f"target blurred {sigma}"] = millilitres(
                metrics.segment_tissues(blurred, case.mask)
            )
            detail = metrics.detail_energy(blurred, case.mask) / target_detail
            row[f"target blurred {sigma} detail"] = round(float(detail), 3)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
