"""qc.metrics on tiny synthetic volumes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from harmonize_bids.qc import metrics


def _cube(shape=(20, 20, 20), lo=5, hi=15) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[lo:hi, lo:hi, lo:hi] = True
    return mask


def _three_tissues(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A nested-box 'brain': WM (0.75) outside, GM (0.45), CSF (0.15) in the core."""
    rng = np.random.default_rng(seed)
    image = np.zeros((30, 32, 28), np.float32)
    mask = np.zeros(image.shape, bool)
    mask[3:27, 3:29, 3:25] = True
    image[mask] = 0.75
    image[8:22, 9:23, 8:20] = 0.45
    image[12:18, 13:19, 11:17] = 0.15
    image += rng.normal(0, 0.02, image.shape).astype(np.float32)
    image[~mask] = 0
    return image, mask


def test_mse_is_the_mean_inside_the_mask():
    mask = _cube()
    a = np.zeros(mask.shape)
    b = np.where(mask, 0.1, 5.0)  # differences outside the mask must not count
    b[5, 5, 5] = 0.5
    expected = ((mask.sum() - 1) * 0.1**2 + 0.5**2) / mask.sum()
    assert metrics.mse(a, b, mask) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="empty"):
        metrics.mse(a, b, np.zeros_like(mask))
    with pytest.raises(ValueError, match="grid"):
        metrics.mse(a, b[:-1], mask)


def test_ahd_counts_voxels_in_255_bins():
    mask = _cube()
    a = np.where(mask, 0.1, 0.0)
    b = np.where(mask, 0.9, 0.0)
    n = mask.sum()
    assert metrics.brain_histogram(a, mask).shape == (255,)
    assert metrics.brain_histogram(a, mask).sum() == n
    assert metrics.ahd(a, b, mask) == 2 * n  # all voxels move to another bin
    assert metrics.ahd(a, a + 1e-4, mask) == 0  # same bin
    c = np.where(mask, 1.7, 0.0)  # above 1: clipped into the last bin, still counted
    assert metrics.brain_histogram(c, mask)[-1] == n


def test_ahd_to_reference_rescales_the_reference():
    h = np.array([10.0, 30.0, 0.0])
    assert metrics.ahd_to_reference(h, h * 7) == 0
    assert metrics.ahd_to_reference(h, np.array([1.0, 0.0, 1.0])) == pytest.approx(
        abs(10 - 20) + 30 + 20
    )
    with pytest.raises(ValueError):
        metrics.ahd_to_reference(h, np.zeros(3))


def test_segmentation_orders_classes_by_intensity_and_is_deterministic():
    image, mask = _three_tissues()
    labels = metrics.segment_tissues(image, mask)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert not labels[~mask].any()
    means = [image[labels == value].mean() for value in (1, 2, 3)]
    assert means[0] < means[1] < means[2]  # CSF darkest, WM brightest
    truth = np.where(mask, 3, 0)
    truth[8:22, 9:23, 8:20] = 2
    truth[12:18, 13:19, 11:17] = 1
    assert (labels == truth)[mask].mean() > 0.97
    assert np.array_equal(labels, metrics.segment_tissues(image, mask))
    volumes = metrics.tissue_volumes(labels, voxel_volume=2.0)
    assert sum(volumes.values()) == 2.0 * mask.sum()
    assert volumes["CSF"] == pytest.approx(2.0 * 6 * 6 * 6, rel=0.1)


def test_dice_and_hausdorff95_of_a_shifted_cube():
    a = np.where(_cube(), 2, 0)
    b = np.roll(a, 2, axis=0)  # GM cube shifted by 2 voxels
    scores = metrics.dice(a, b)
    assert scores["GM"] == pytest.approx(2 * 8 * 100 / 2000)
    assert np.isnan(scores["CSF"]) and np.isnan(scores["WM"])
    distances = metrics.hausdorff95(a, b)
    assert distances["GM"] == pytest.approx(2.0)
    assert metrics.hausdorff95(a, b, spacing=(1.5, 1.0, 1.0))["GM"] == pytest.approx(3.0)
    assert metrics.hausdorff95(a, a)["GM"] == 0
    assert np.isnan(distances["WM"])


def test_through_plane_consistency_sees_stripes():
    image, mask = _three_tissues()
    smooth = metrics.through_plane_consistency(image, mask)
    striped = image + np.where(mask, 0.05, 0) * (np.arange(image.shape[0]) % 2)[:, None, None]
    assert metrics.through_plane_consistency(striped, mask) > 1.5 * smooth
    # stripes across another axis do not count as through-plane
    across_y = image + np.where(mask, 0.05, 0) * (np.arange(image.shape[1]) % 2)[None, :, None]
    assert metrics.through_plane_consistency(across_y, mask) < smooth


def test_robust_z_flags_the_outlier_only():
    z = metrics.robust_z([10.0, 11.0, 9.0, 10.5, 9.5, 30.0, np.nan])
    assert z[5] > 3.5 and np.all(np.abs(z[:5]) < 3.5) and np.isnan(z[6])
    z = metrics.robust_z([1.0, 1.0, 1.0, 1.0, 5.0])  # MAD 0: mean absolute deviation scales
    assert z[4] > 3.5 and np.all(z[:4] == 0)
    assert np.all(metrics.robust_z([2.0, 2.0, 2.0]) == 0)
