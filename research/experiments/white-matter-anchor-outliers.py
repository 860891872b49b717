"""Prepared scans whose preprocessed brain looks mis-scaled, with the mixture behind it
and the level the phantom's true white matter ended at.

Usage: python white-matter-anchor-outliers.py BIDS WORK [BIDS WORK ...]: a phantom and its
work folder (``harmonize-bids-train --prepare-only``). Prints, per work folder, the mean
preprocessed intensity inside the true WM label over all scans (anchoring aims at 0.81),
and each scan whose preprocessed brain's 99th percentile is below ``MIN_SCALED_P99`` with
that mean and the 3-class mixture (means, weights) of its clipped-and-scaled brain before
white-matter anchoring.
"""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from harmonize_bids.image.intensity import (
    MIN_SCALED_P99,
    clip_and_scale_array,
    scaling_problem,
    tissue_mixture,
)
from harmonize_bids.qc.metrics import TISSUE_LABELS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402


def _array(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def _truth_wm_mean(bids: Path, preproc: Path, image: np.ndarray, mask: np.ndarray) -> float:
    # the benchmark's truth on a preprocessed grid; the scan's own name gives its session
    labels = Q.truth_labels(bids, {"inputs": [str(preproc)], "source": str(preproc)})
    return float(image[(labels == TISSUE_LABELS["WM"]) & mask].mean())


def main(args: list[str]) -> None:
    for bids, work in zip(args[::2], args[1::2], strict=True):
        scans = sorted(Path(work).glob("pairs/sub-*/ses-*/*_preproc.nii.gz"))
        levels, flagged = [], []
        for preproc in scans:
            image = _array(preproc)
            mask = _array(Path(str(preproc).replace("_preproc", "_mask"))) > 0
            level = _truth_wm_mean(Path(bids), preproc, image, mask)
            levels.append(level)
            problem = scaling_problem(image, mask)
            if problem is None:
                continue
            resampled = _array(Path(str(preproc).replace("_preproc", "_resampled")))
            means, weights = tissue_mixture(
                clip_and_scale_array(resampled, mask, white_matter=None), mask
            )
            flagged.append(
                f"  {preproc.relative_to(work)}: {problem}; true WM at {level:.3f}, class means "
                f"{np.round(means, 3).tolist()}, weights {np.round(weights, 3).tolist()}"
            )
        print(
            f"{work}: {len(scans)} preprocessed scans, true WM at {np.median(levels):.3f} "
            f"(median; {min(levels):.3f}-{max(levels):.3f}), {len(flagged)} below p99 "
            f"{MIN_SCALED_P99}"
        )
        for line in flagged:
            print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
