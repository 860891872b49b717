"""Prepared scans whose preprocessed brain looks mis-scaled, with the mixture behind it.

Usage: python white-matter-anchor-outliers.py WORK_DIR [WORK_DIR ...]   (prepared by
``harmonize-bids-train --prepare-only``). Prints, per work folder, each scan whose
preprocessed brain's 99th percentile is below ``MIN_SCALED_P99`` with the 3-class mixture
(means, weights) of its clipped-and-scaled brain before white-matter anchoring.
"""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from harmonize_bids.image.intensity import (
    MIN_SCALED_P99,
    clip_and_scale_array,
    tissue_mixture,
)


def _array(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def main(work_dirs: list[str]) -> None:
    for work in work_dirs:
        scans = sorted(Path(work).glob("pairs/sub-*/ses-*/*_preproc.nii.gz"))
        flagged = 0
        for preproc in scans:
            mask = _array(Path(str(preproc).replace("_preproc", "_mask"))) > 0
            p99 = float(np.percentile(_array(preproc)[mask], 99))
            if p99 >= MIN_SCALED_P99:
                continue
            flagged += 1
            resampled = _array(Path(str(preproc).replace("_preproc", "_resampled")))
            scaled = clip_and_scale_array(resampled, mask, white_matter=None)
            means, weights = tissue_mixture(scaled, mask)
            print(
                f"  {preproc.relative_to(work)}: p99 {p99:.2f}, class means "
                f"{np.round(means, 3).tolist()}, weights {np.round(weights, 3).tolist()}"
            )
        print(f"{work}: {len(scans)} preprocessed scans, {flagged} below p99 {MIN_SCALED_P99}")


if __name__ == "__main__":
    main(sys.argv[1:])
