"""Where the grey-matter volume gap to histogram matching lives: coarse or fine scales.

Our output and histogram matching to the same reference are split at one Gaussian scale
(SIGMA voxels) and recombined each way, and histogram matching is blurred to our output's
detail level. Measured with benchmarks/quality.py's metrics on our default output
(sagittal), kept in OUT_DIR/axis0 as multi-planar.py keeps it.

    python research/experiments/gm-gap-frequency.py BIDS WORK CACHE DIRECTION OUT_DIR SUBJECT...
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

SIGMA = 1.0
BLURS = (0.6, 1.0)


def main(bids, work, cache, direction_name, out_dir, *subjects):
    rows = []
    for case, ours, matched in Q.research_outputs(
        bids, work, cache, direction_name, out_dir, subjects
    ):
        low_ours, low_matched = (ndimage.gaussian_filter(x, SIGMA) for x in (ours, matched))
        images = {Q.MATCHING: matched, "Ours": ours}
        for sigma in BLURS:
            images[f"Histogram matching blurred {sigma}"] = ndimage.gaussian_filter(matched, sigma)
        images["Ours + matching's fine scales"] = ours + matched - low_matched
        images["Matching's coarse scales + ours' fine"] = low_matched + ours - low_ours
        for name, image in images.items():
            row = case.evaluate(np.where(case.mask, image, 0).astype(np.float32))
            rows.append({**row, "subject": case.subject, "method": name})
            print(case.subject, name, json.dumps(row, default=float), flush=True)
    (Path(out_dir) / "gm-gap-frequency.json").write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main(*sys.argv[1:])
