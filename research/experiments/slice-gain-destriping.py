"""Evening out the slice-to-slice variation of the output's low spatial frequencies.

The 1.5 T -> 3 T output is rougher across sagittal slices than its target, and smoothing
it across slices costs fine detail (slice-axis-smoothing.md). If the stripes are mostly
slowly varying brightness differences between slices, a correction can act on the
in-plane low-pass alone: with L = the brain-normalised in-plane Gaussian low-pass (sigma
``IN_PLANE`` mm) and S = smoothing across slices (sigma ``ACROSS`` slices),

- "out": output + S(L(output)) - L(output);
- "change": the same applied to the model's change only, output - source, so the
  source's own slice-to-slice variation is kept.

Measured on outputs kept by multi-planar.py (OUT_DIR/axis0, the sagittal default) with
benchmarks/quality.py's metrics (with the anisotropy across every axis's slices).

    python research/experiments/slice-gain-destriping.py \
        BIDS WORK CACHE DIRECTION OUT_DIR SUBJECT...
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

IN_PLANE = 4.0
ACROSS = 2.0


def _normalised(image, weight, sigma):
    num = ndimage.gaussian_filter(image * weight, sigma)
    return num / np.maximum(ndimage.gaussian_filter(weight, sigma), 1e-3)


def even_out(image: np.ndarray, mask: np.ndarray, axis: int = Q.SLICE_AXIS) -> np.ndarray:
    """``image`` with the slice-to-slice variation of its in-plane low-pass smoothed."""
    weight = mask.astype(np.float64)
    in_plane = [IN_PLANE] * 3
    in_plane[axis] = 0
    low = _normalised(image, weight, in_plane)
    across = [0.0] * 3
    across[axis] = ACROSS
    return np.where(mask, image + _normalised(low, weight, across) - low, 0.0)


def main(bids, work, cache, direction_name, out_dir, *subjects):
    bids, work, cache, out_dir = Path(bids), Path(work), Path(cache), Path(out_dir)
    direction = Q.DIRECTIONS[direction_name]
    rows = []
    chosen = Q.labelled(Q.pair_records(work, direction), subjects)
    for case in Q.cases(bids, work, direction, cache / direction_name, chosen):
        ours = np.load(out_dir / "axis0" / f"{case.subject}.npy").astype(np.float64)
        source = case.source.astype(np.float64)
        images = {
            Q.ORIGINAL: case.source,
            Q.MATCHING: case.peers.histogram_matching(case.source, case.mask),
            "Ours": ours,
            "Ours, evened out": even_out(ours, case.mask),
            "Ours, change evened out": source + even_out(ours - source, case.mask),
        }
        for name, image in images.items():
            image = np.clip(np.asarray(image, np.float32), 0, 1)
            row = case.evaluate(image)
            rows.append({**row, "subject": case.subject, "method": name})
            print(case.subject, name, json.dumps(row, default=float), flush=True)
    (out_dir / "destriped.json").write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main(*sys.argv[1:])
