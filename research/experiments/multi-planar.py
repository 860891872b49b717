"""Harmonizing along all three slice axes and averaging (issue 34, through-plane ratio).

The models harmonize sagittal slices one at a time, and on unseen scanners the 1.5 T -> 3 T
output is rougher across sagittal slices than its target. This runs the same 2D model
along the coronal and axial axes too (the network is convolutional, so any slice shape
fits) and measures each axis alone and the means of the three and of the two non-sagittal
ones, next to Original and histogram matching, with benchmarks/quality.py's metrics,
among them each image's anisotropy across every axis's slices relative to its target's
(``anisotropy_ratios``: a slice-by-slice output has its stripes across whichever axis it
was sliced on).

    python research/experiments/multi-planar.py \
        BIDS WORK CACHE DIRECTION OUT_DIR SUBJECT...

CACHE is a quality.py cache folder of the set (for the targets' segmentations); outputs
are kept in OUT_DIR/axisN (npy), so a rerun only measures.
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

from harmonize_bids.choices import SLICE_PLANES  # noqa: E402

AXES = tuple(SLICE_PLANES.values())


def main(bids, work, cache, direction_name, out_dir, *subjects):
    model, found = Q.research_cases(bids, work, cache, direction_name, subjects)
    out_dir = Path(out_dir)
    rows = []
    for case in found:
        outputs = {
            axis: case.ours(
                model, out_dir / f"axis{axis}" / f"{case.subject}.npy", slice_planes=[plane]
            )
            for plane, axis in SLICE_PLANES.items()
        }
        images = {
            Q.ORIGINAL: case.source,
            Q.MATCHING: case.peers.histogram_matching(case.source, case.mask),
            **{f"Ours, axis {axis}": outputs[axis] for axis in AXES},
            "Ours, mean of 3 axes": np.mean([outputs[a] for a in AXES], axis=0),
            "Ours, mean of axes 1 and 2": np.mean([outputs[1], outputs[2]], axis=0),
        }
        for name, image in images.items():
            row = case.evaluate(np.asarray(image, np.float32))
            rows.append({**row, "subject": case.subject, "method": name})
            print(case.subject, name, json.dumps(row, default=float), flush=True)
    (out_dir / "rows.json").write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main(*sys.argv[1:])
