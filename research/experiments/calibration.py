"""How much of a target scan's tissue intensities can any model of the source predict?

    python benchmarks/calibration.py TRAIN_BIDS TRAIN_WORK [HELDOUT_BIDS HELDOUT_WORK ...]
        [--directions 1.5T-to-3T 3T-to-1.5T]

Each argument pair is a phantom dataset and its ``harmonize-bids-train --prepare-only``
work folder (the inputs of benchmarks/quality.py). For every prepared pair and direction
it measures the mean intensity of the eroded true tissue cores (CSF, GM, WM; 2 voxels in
from every boundary, so partial volume and registration barely matter) in the
preprocessed source and in the registered preprocessed target. The target's value varies
from subject to subject (the session's transmit field, noise and receive bias, and the
0.1 / 99.9 percentile scaling of preprocessing). A linear fit, leave-one-subject-out,
predicts it from the source's own core value and from a global source feature (its 1st
brain percentile); pairs that harmonize-bids-train leaves out are left out. What stays
unexplained is a per-session intensity calibration that no
function of the source can recover, and it shifts the whole tissue peak of the
histogram (1 bin of the paper's 255-bin AHD = 0.0039).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).parent))
import quality  # noqa: E402 - benchmarks/ is not a package

from harmonize_bids.qc.metrics import TISSUE_LABELS, TISSUES  # noqa: E402

CORE_EROSION = 2


def usable(record: dict) -> bool:
    """Leave out the pairs harmonize-bids-train leaves out (a broken intensity scale)."""
    from harmonize_bids.training_data import PreparedPair, scaling_problems

    pair = PreparedPair(
        record["subject"].removeprefix("sub-"),
        *(Path(record[key]) for key in ("source", "target", "mask")),
    )
    problem = scaling_problems(pair, pair.load())
    if problem:
        print(f"leaving out {problem}", file=sys.stderr)
    return problem is None


def tissue_cores(
    truth: np.ndarray, mask: np.ndarray, erosion: int = CORE_EROSION
) -> dict[str, np.ndarray]:
    """Each true tissue class eroded by ``erosion`` voxels, inside the brain mask."""
    return {
        tissue: ndi.binary_erosion(truth == TISSUE_LABELS[tissue], iterations=erosion) & mask
        for tissue in TISSUES
    }


def core_means(record: dict, bids: Path) -> dict[str, tuple[float, float]]:
    """(source, target) mean intensity of each eroded tissue core of one prepared pair."""
    source, target = quality._load(record["source"]), quality._load(record["target"])
    mask = quality._load(record["mask"]) > 0
    truth = quality._truth_labels(bids, record)
    means = {
        tissue: (float(source[core].mean()), float(target[core].mean()))
        for tissue, core in tissue_cores(truth, mask).items()
    }
    means["p1"] = (float(np.percentile(source[mask], 1)), float("nan"))
    return means


def loo_residual_sd(features: np.ndarray, y: np.ndarray) -> float:
    """Standard deviation of leave-one-out residuals of a linear fit (with intercept).

    Subjects with a missing value are dropped; NaN when too few remain for the fit.
    """
    finite = np.isfinite(features).all(axis=1) & np.isfinite(y)
    features, y = features[finite], y[finite]
    if len(y) < features.shape[1] + 3:
        return float("nan")
    design = np.column_stack([features, np.ones(len(y))])
    residuals = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        coef = np.linalg.lstsq(design[keep], y[keep], rcond=None)[0]
        residuals.append(y[i] - design[i] @ coef)
    return float(np.std(residuals))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "datasets",
        nargs="+",
        type=Path,
        help="pairs of BIDS_DIR WORK_DIR (phantom and its prepared pairs)",
    )
    parser.add_argument(
        "--directions",
        nargs="+",
        choices=list(quality.DIRECTIONS),
        default=list(quality.DIRECTIONS),
    )
    parser.add_argument(
        "--keep-all-pairs",
        action="store_true",
        help="also use the pairs harmonize-bids-train would leave out",
    )
    args = parser.parse_args(argv)
    if len(args.datasets) % 2:
        parser.error("give BIDS_DIR WORK_DIR pairs")
    datasets = list(zip(args.datasets[::2], args.datasets[1::2], strict=True))
    print(
        "| direction | tissue | subjects | target sd | unexplained sd, from the source "
        "core | from the core and source p1 | in AHD bins |"
    )
    print("|---|---|---|---|---|---|---|")
    for direction in args.directions:
        rows = [
            core_means(record, bids)
            for bids, work in datasets
            for record in quality._pairs(work, direction)
            if args.keep_all_pairs or usable(record)
        ]
        p1 = np.array([row["p1"][0] for row in rows])
        for tissue in TISSUES:
            source = np.array([row[tissue][0] for row in rows])
            target = np.array([row[tissue][1] for row in rows])
            alone = loo_residual_sd(source[:, None], target)
            both = loo_residual_sd(np.column_stack([source, p1]), target)
            print(
                f"| {direction} | {tissue} | {len(rows)} | {target.std():.4f} | {alone:.4f} | "
                f"{both:.4f} | {both * 255:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
