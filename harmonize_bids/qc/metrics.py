"""Image-quality metrics on arrays: the paper's paired metrics and group QC measures.

Pure functions on NumPy arrays (no nipype, no files), shared by the group level and
the benchmarks. Images are preprocessed T1w volumes on the [0, 1] scale, masks are
boolean arrays on the same grid, label images use :data:`TISSUE_LABELS`.

Paired metrics follow Durrer et al. (MIDL 2023), Appendix D:

- :func:`mse`: mean squared difference over the brain voxels. Equation 6 of the paper
  writes a sum, but the magnitudes it reports (1.85e-3 on the [0, 1] scale) are means.
- :func:`ahd`: sum over 255 bins on [0, 1] of the absolute difference of the brain
  voxel histograms, in voxel counts (equation 7).
- :func:`segment_tissues` (Atropos's 3-class k-means-initialised MRF model), then
  :func:`tissue_volumes`, :func:`dice` and :func:`hausdorff95` (MONAI) per class.

Group measures: :func:`through_plane_consistency` (stripes from slice-wise 2D
sampling) and :func:`robust_z` (median / MAD) for outlier flags.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .segmentation import mrf_segmentation

#: Histogram bins on [0, 1] (the paper's AHD).
HISTOGRAM_BINS = 255
#: Tissue classes, darkest first on T1w, and their label values in a segmentation.
TISSUES = ("CSF", "GM", "WM")
TISSUE_LABELS = {"CSF": 1, "GM": 2, "WM": 3}
#: Normal-consistency factor for the median absolute deviation.
MAD_SCALE = 1.4826


def _check_same_shape(*arrays: np.ndarray) -> None:
    shapes = {np.shape(array) for array in arrays}
    if len(shapes) != 1:
        raise ValueError(f"arrays must share one grid, got shapes {sorted(shapes)}")


def mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared difference of two images over the voxels in ``mask``."""
    _check_same_shape(a, b, mask)
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("the mask is empty")
    diff = np.asarray(a, np.float64)[mask] - np.asarray(b, np.float64)[mask]
    return float(np.mean(diff * diff))


def brain_histogram(
    image: np.ndarray, mask: np.ndarray, *, bins: int = HISTOGRAM_BINS
) -> np.ndarray:
    """Voxel counts of the brain intensities in ``bins`` equal bins on [0, 1].

    Values outside [0, 1] are clipped into the end bins, so every brain voxel counts.
    """
    _check_same_shape(image, mask)
    values = np.clip(np.asarray(image, np.float64)[np.asarray(mask, bool)], 0.0, 1.0)
    counts, _ = np.histogram(values, bins=bins, range=(0.0, 1.0))
    return counts.astype(np.float64)


def histogram_distance(h1: np.ndarray, h2: np.ndarray) -> float:
    """Sum over bins of ``|h1 - h2|`` (the AHD of two histograms)."""
    if np.shape(h1) != np.shape(h2):
        raise ValueError(f"histograms differ in bins: {np.shape(h1)} vs {np.shape(h2)}")
    return float(np.abs(np.asarray(h1, np.float64) - np.asarray(h2, np.float64)).sum())


def ahd(
    a: np.ndarray,
    b: np.ndarray,
    mask: np.ndarray,
    mask_b: np.ndarray | None = None,
    *,
    bins: int = HISTOGRAM_BINS,
) -> float:
    """Absolute histogram difference of two images' brain voxels (counts, 255 bins).

    ``mask`` selects the voxels of ``a`` (and of ``b`` unless ``mask_b`` is given).
    """
    return histogram_distance(
        brain_histogram(a, mask, bins=bins),
        brain_histogram(b, mask if mask_b is None else mask_b, bins=bins),
    )


def ahd_to_reference(histogram: np.ndarray, reference: np.ndarray) -> float:
    """AHD of one image's histogram to a reference distribution, in the image's counts.

    ``reference`` is any non-negative histogram (e.g. pooled counts over many images); it
    is rescaled to the image's total voxel count first, so images of different brain
    sizes compare on the same footing: ``sum |h - N * p_ref|`` with ``N = sum h``.
    """
    reference = np.asarray(reference, np.float64)
    total = reference.sum()
    if total <= 0:
        raise ValueError("the reference histogram is empty")
    histogram = np.asarray(histogram, np.float64)
    return histogram_distance(histogram, reference * (histogram.sum() / total))


def segment_tissues(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    iterations: int = 5,
    mrf: float = 0.1,
) -> np.ndarray:
    """Three-class tissue segmentation (CSF, GM, WM) inside ``mask``: Atropos's k-means
    initialised Gaussian classes with an MRF prior of weight ``mrf`` (radius 1 voxel) and
    at most ``iterations`` iterations (:mod:`harmonize_bids.qc.segmentation`); the same
    input gives the same labels. Classes are relabelled by their mean intensity: darkest
    = CSF (1), then GM (2), brightest = WM (3); 0 outside the mask.
    """
    _check_same_shape(image, mask)
    full_mask = np.asarray(mask, bool)
    if full_mask.sum() < 3:
        raise ValueError("the mask holds fewer than 3 voxels; nothing to segment")
    # on the mask's bounding box (one voxel of margin for the MRF): same labels,
    # a fraction of the voxels
    where = np.argwhere(full_mask)
    lows, highs = where.min(0), where.max(0)
    box = tuple(slice(max(lo - 1, 0), hi + 2) for lo, hi in zip(lows, highs, strict=True))
    mask = full_mask[box]
    data = np.where(mask, np.asarray(image, np.float32)[box], 0).astype(np.float32)
    raw = mrf_segmentation(data, mask, spacing=spacing, mrf=mrf, iterations=iterations)
    labels = np.zeros(data.shape, np.uint8)
    classes = [value for value in np.unique(raw[mask]) if value > 0]
    means = [float(data[mask & (raw == value)].mean()) for value in classes]
    for rank, index in enumerate(np.argsort(means)):
        labels[mask & (raw == classes[index])] = rank + 1
    full = np.zeros(full_mask.shape, np.uint8)
    full[box] = labels
    return full


def tissue_volumes(labels: np.ndarray, *, voxel_volume: float = 1.0) -> dict[str, float]:
    """Volume of each tissue class in mm^3 (voxel count times ``voxel_volume``)."""
    return {
        tissue: float(np.count_nonzero(labels == value) * voxel_volume)
        for tissue, value in TISSUE_LABELS.items()
    }


def dice(labels_a: np.ndarray, labels_b: np.ndarray) -> dict[str, float]:
    """Dice overlap of each tissue class between two label images (nan if both empty)."""
    _check_same_shape(labels_a, labels_b)
    scores = {}
    for tissue, value in TISSUE_LABELS.items():
        a, b = labels_a == value, labels_b == value
        total = np.count_nonzero(a) + np.count_nonzero(b)
        scores[tissue] = float(2 * np.count_nonzero(a & b) / total) if total else float("nan")
    return scores


def hausdorff95(
    labels_a: np.ndarray, labels_b: np.ndarray, *, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> dict[str, float]:
    """95th-percentile Hausdorff distance (mm) of each tissue class (MONAI).

    Symmetric: the larger of the two directed 95th percentiles of surface-to-surface
    distances (``monai.metrics.compute_hausdorff_distance(..., percentile=95)``);
    nan when a class is empty in either image.
    """
    import torch
    from monai.metrics import compute_hausdorff_distance

    _check_same_shape(labels_a, labels_b)
    values = list(TISSUE_LABELS.values())
    a = torch.from_numpy(np.stack([labels_a == v for v in values])[None])
    b = torch.from_numpy(np.stack([labels_b == v for v in values])[None])
    import warnings

    with warnings.catch_warnings():  # MONAI warns on empty classes; we return nan
        warnings.simplefilter("ignore")
        distances = compute_hausdorff_distance(
            a, b, include_background=True, percentile=95, spacing=[float(s) for s in spacing]
        )[0]
    return {
        tissue: float(distance)
        for tissue, distance in zip(TISSUES, distances.tolist(), strict=True)
    }


def through_plane_consistency(image: np.ndarray, mask: np.ndarray, *, axis: int = 0) -> float:
    """Adjacent-slice roughness across ``axis`` relative to that within the slices.

    With ``D_k`` the mean of ``|I[i+1] - I[i]|`` along axis ``k`` over neighbour pairs
    whose two voxels are both in ``mask``, the result is
    ``D_axis / mean(D_k for the two other axes)``. Volumes harmonized slice by slice
    along the sagittal axis (axis 0 of a RAS image) and stacked show stripes there: the
    ratio rises above that of the input. A smooth, isotropic image gives about 1.
    """
    _check_same_shape(image, mask)
    data = np.asarray(image, np.float64)
    mask = np.asarray(mask, bool)
    if data.ndim != 3:
        raise ValueError(f"expected a 3-D volume, got {data.ndim} dimensions")

    def roughness(k: int) -> float:
        n = data.shape[k]
        lo, hi = [slice(None)] * 3, [slice(None)] * 3
        lo[k], hi[k] = slice(0, n - 1), slice(1, n)
        pairs = mask[tuple(lo)] & mask[tuple(hi)]
        if not pairs.any():
            return float("nan")
        return float(np.abs(data[tuple(hi)] - data[tuple(lo)])[pairs].mean())

    in_plane = np.mean([roughness(k) for k in range(3) if k != axis])
    across = roughness(axis)
    return float(across / in_plane) if in_plane > 0 else float("nan")


def detail_energy(image: np.ndarray, mask: np.ndarray, *, erosion: int = 2) -> float:
    """Fine-detail (high-frequency) energy: the RMS of the image's Laplacian inside the
    brain mask eroded by ``erosion`` voxels (away from the brain's edge)."""
    from scipy import ndimage

    _check_same_shape(image, mask)
    core = ndimage.binary_erosion(np.asarray(mask, bool), iterations=erosion)
    if not core.any():
        return float("nan")
    laplacian = ndimage.laplace(np.asarray(image, np.float64))
    return float(np.sqrt(np.mean(laplacian[core] ** 2)))


def gradient_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of two images' gradient magnitudes inside ``mask``: how much of
    one image's edges and detail the other keeps."""
    from scipy import ndimage

    _check_same_shape(a, b, mask)
    mask = np.asarray(mask, bool)
    ga, gb = (
        ndimage.generic_gradient_magnitude(np.asarray(x, np.float64), ndimage.sobel)
        for x in (a, b)
    )
    return float(np.corrcoef(ga[mask], gb[mask])[0, 1])


def robust_z(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Robust z-scores: ``(x - median) / (1.4826 * MAD)``, ignoring nans.

    When the MAD is 0 (more than half the values equal), the mean absolute deviation
    times 1.2533 scales instead (both estimate one standard deviation for normal
    data); when that is 0 too, every finite score is 0. Nans stay nan.
    """
    x = np.asarray(values, np.float64)
    finite = np.isfinite(x)
    z = np.full(x.shape, np.nan)
    if not finite.any():
        return z
    centre = np.median(x[finite])
    deviation = np.abs(x[finite] - centre)
    scale = MAD_SCALE * np.median(deviation)
    if scale == 0:
        scale = 1.2533 * deviation.mean()
    z[finite] = (x[finite] - centre) / scale if scale > 0 else 0.0
    return z
