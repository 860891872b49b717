"""Prepared scans whose white-matter anchor the bright-tail refit moves, and where the
phantom's true white matter ends up before and after.

Usage: python white-matter-anchor-outliers.py BIDS WORK [BIDS WORK ...]: a phantom and its
work folder (``harmonize-bids-train --prepare-only``). For each prepared scan, from its
resampled image and brain mask: the white-matter level of the first 3-class mixture of the
clipped-and-scaled brain (the anchor before the refit) and that of ``white_matter_level``
(after), and the mean of the anchored brain inside the true WM label (anchoring aims at
0.81) for each. Prints per work folder the true-WM means after the refit (median, range),
and each scan whose anchor moved or whose anchored brain fails ``scaling_problem``, with
the first mixture's class means and weights.
"""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from harmonize_bids.image.intensity import (
    anchor_white_matter,
    clip_and_scale_array,
    scaling_problem,
    tissue_mixture,
    white_matter_level,
)
from harmonize_bids.qc.metrics import TISSUE_LABELS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402


def _array(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def main(args: list[str]) -> None:
    for bids, work in zip(args[::2], args[1::2], strict=True):
        scans = sorted(Path(work).glob("pairs/sub-*/ses-*/*_preproc.nii.gz"))
        after_levels, lines = [], []
        for preproc in scans:
            mask = _array(Path(str(preproc).replace("_preproc", "_mask"))) > 0
            resampled = _array(Path(str(preproc).replace("_preproc", "_resampled")))
            scaled = clip_and_scale_array(resampled, mask, white_matter=None)
            means, weights = tissue_mixture(scaled, mask)
            # the benchmark's truth on a preprocessed grid; the scan's name gives its session
            labels = Q.truth_labels(Path(bids), {"inputs": [str(preproc)], "source": str(preproc)})
            wm = (labels == TISSUE_LABELS["WM"]) & mask
            anchors, true_wm, problems = [], [], []
            for level in (means[-1], white_matter_level(scaled, mask)):
                anchored = anchor_white_matter(scaled, mask, current=level)
                anchors.append(level)
                true_wm.append(float(anchored[wm].mean()))
                problems.append(scaling_problem(anchored, mask))
            after_levels.append(true_wm[1])
            if anchors[0] != anchors[1] or any(problems):
                lines.append(
                    f"  {preproc.relative_to(work)}: anchor {anchors[0]:.3f} -> {anchors[1]:.3f}, "
                    f"true WM {true_wm[0]:.3f} -> {true_wm[1]:.3f}, flagged "
                    f"{problems[0] is not None} -> {problems[1] is not None}; first mixture "
                    f"means {np.round(means, 3).tolist()}, weights {np.round(weights, 3).tolist()}"
                )
        print(
            f"{work}: {len(scans)} scans, true WM after refit at {np.median(after_levels):.3f} "
            f"(median; {min(after_levels):.3f}-{max(after_levels):.3f}), {len(lines)} moved or "
            "flagged"
        )
        for line in lines:
            print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
