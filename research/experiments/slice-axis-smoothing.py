"""Smoothing the output across slices until its through-plane roughness is the input's.

The models harmonize sagittal slices one by one; on unseen scanners the 1.5 T -> 3 T
output is rougher across slices than its target (through-plane ratio 1.32 on the test
sites). This smooths the output along the slice axis (a Gaussian normalised to the brain
mask) with the smallest sigma (bisection in [0, 2] voxels) at which its through-plane
ratio falls to the input's, and measures it with benchmarks/quality.py's metrics next to
Original, histogram matching and the unsmoothed output.

    python research/experiments/slice-axis-smoothing.py \
        BIDS WORK CACHE DIRECTION OUT_DIR SUBJECT...

CACHE is a quality.py cache folder of the set (for the targets' segmentations); our
outputs are kept in OUT_DIR (npy) so a rerun only measures.
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

from harmonize_bids.qc import metrics  # noqa: E402


def smooth_slices(image: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return image
    weight = mask.astype(np.float64)
    num = ndimage.gaussian_filter1d(image * weight, sigma, axis=Q.SLICE_AXIS, mode="nearest")
    den = ndimage.gaussian_filter1d(weight, sigma, axis=Q.SLICE_AXIS, mode="nearest")
    return np.where(mask, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)


def destripe(image: np.ndarray, source: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    def ratio(x):
        return metrics.through_plane_consistency(x, mask, axis=Q.SLICE_AXIS)

    goal = ratio(source)
    if ratio(image) <= goal:
        return image, 0.0
    lo, hi = 0.0, 2.0
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ratio(smooth_slices(image, mask, mid)) > goal else (lo, mid)
    return smooth_slices(image, mask, hi), hi


def main(bids, work, cache, direction_name, out_dir, *subjects):
    import torch

    from harmonize_bids.inference import InferenceSettings, harmonize

    torch.set_num_threads(1)
    bids, work, cache, out_dir = Path(bids), Path(work), Path(cache), Path(out_dir)
    direction = Q.DIRECTIONS[direction_name]
    model = Q.load_model(direction)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    chosen = Q.labelled(Q.pair_records(work, direction), subjects)
    for case in Q.cases(bids, work, direction, cache / direction_name, chosen):
        saved = out_dir / f"{case.subject}.npy"
        if saved.is_file():
            ours = np.load(saved).astype(np.float32)
        else:
            settings = InferenceSettings.resolve(model, seed=0)
            ours = harmonize(
                model, case.source, case.mask, settings, reference=case.peers.reference
            ).image
            np.save(saved, ours)
        smoothed, sigma = destripe(ours, case.source, case.mask)
        images = {
            Q.ORIGINAL: case.source,
            Q.MATCHING: case.peers.histogram_matching(case.source, case.mask),
            "Ours": ours,
            "Ours, slices smoothed": smoothed,
        }
        for name, image in images.items():
            image = np.asarray(image, np.float32)
            row = case.evaluate(image)
            rows.append({**row, "subject": case.subject, "method": name, "sigma": sigma})
            print(
                case.subject,
                name,
                f"sigma {sigma:.2f}",
                json.dumps(row, default=float),
                flush=True,
            )
    (out_dir / "rows.json").write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main(*sys.argv[1:])
