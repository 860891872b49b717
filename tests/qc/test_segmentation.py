"""qc.segmentation: Atropos's model, checked against ANTs Atropos itself."""

from __future__ import annotations

import numpy as np
import pytest

from harmonize_bids.qc.segmentation import mrf_segmentation


def _noisy_brain(noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A blurred sphere-in-sphere 'brain' (CSF core, GM shell, WM rim) with noise."""
    from scipy import ndimage

    grid = np.indices((40, 44, 36)).astype(np.float32)
    radius = np.sqrt(((grid - np.array([20, 22, 18])[:, None, None, None]) ** 2).sum(0))
    mask = radius < 17
    image = np.select([radius < 6, radius < 12], [0.2, 0.5], 0.8).astype(np.float32)
    image = ndimage.gaussian_filter(image, 1.0)
    image += np.random.default_rng(seed).normal(0, noise, image.shape).astype(np.float32)
    return np.where(mask, image, 0).astype(np.float32), mask


def _atropos(image: np.ndarray, mask: np.ndarray, mrf: float) -> np.ndarray:
    import ants

    result = ants.atropos(
        a=ants.from_numpy(image),
        x=ants.from_numpy(mask.astype(np.float32)),
        i="KMeans[3]",
        m=f"[{mrf},1x1x1]",
        c="[5,0]",
        r=0,
    )
    return result["segmentation"].numpy().astype(np.int8)


def test_the_volumes_match_ants_atropos():
    image, mask = _noisy_brain(noise=0.08)
    ours = mrf_segmentation(image, mask, mrf=0.1)
    theirs = _atropos(image, mask, mrf=0.1)
    for label in (1, 2, 3):
        gap = abs(int((ours == label).sum()) - int((theirs == label).sum()))
        assert gap < 0.002 * mask.sum(), (label, gap)
    assert (ours == theirs)[mask].mean() > 0.99
    assert not ours[~mask].any()


def test_the_mrf_smooths_noisy_labels():
    image, mask = _noisy_brain(noise=0.15)
    smooth = mrf_segmentation(image, mask, mrf=0.3)
    plain = mrf_segmentation(image, mask, mrf=0.0)

    def isolated(labels):
        from scipy import ndimage

        same = sum(
            ndimage.shift(labels, shift, order=0, mode="nearest") == labels
            for shift in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))
        )
        return int(((same == 0) & mask).sum())

    assert isolated(smooth) < isolated(plain) / 2


def test_an_image_without_three_intensities_is_refused():
    image, mask = _noisy_brain(noise=0.0)
    with pytest.raises(ValueError, match="tissue class is empty"):
        mrf_segmentation(np.where(mask, 0.5, 0).astype(np.float32), mask)
