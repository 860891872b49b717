"""Evening out slow brightness changes between slices keeps the detail within them."""

import numpy as np
import pytest
from scipy import ndimage

from harmonize_bids.image.destripe import even_out_slices
from harmonize_bids.qc.metrics import detail_energy, through_plane_consistency


def _brain(shape=(40, 48, 44), seed=0):
    """A ball of smooth anatomy plus fine texture, in [0, 1]."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    centre = (np.asarray(shape) - 1) / 2
    r = np.sqrt((((grid.T - centre) / (np.asarray(shape) * 0.42)) ** 2).sum(-1)).T
    mask = r < 1
    anatomy = 0.5 + 0.2 * ndimage.gaussian_filter(rng.normal(size=shape), 4) / 0.02
    texture = 0.03 * rng.normal(size=shape)
    return np.where(mask, np.clip(anatomy + texture, 0, 1), 0).astype(np.float32), mask


def test_slow_brightness_stripes_are_removed_and_the_detail_kept():
    clean, mask = _brain()
    gains = 1 + 0.06 * np.where(np.arange(clean.shape[0]) % 2, 1, -1)
    striped = np.where(mask, clean * gains[:, None, None], 0).astype(np.float32)
    evened = even_out_slices(striped, mask, axis=0)
    assert through_plane_consistency(striped, mask) > 1.3 * through_plane_consistency(clean, mask)
    assert through_plane_consistency(evened, mask) == pytest.approx(
        through_plane_consistency(clean, mask), rel=0.08
    )
    assert detail_energy(evened, mask) == pytest.approx(detail_energy(clean, mask), rel=0.08)
    assert evened.dtype == np.float32 and np.all(evened[~mask] == 0)


def test_only_the_given_axis_is_evened_out():
    clean, mask = _brain(seed=1)
    gains = 1 + 0.06 * np.where(np.arange(clean.shape[2]) % 2, 1, -1)
    striped = np.where(mask, clean * gains[None, None, :], 0).astype(np.float32)
    across_sagittal = even_out_slices(striped, mask, axis=0)
    across_axial = even_out_slices(striped, mask, axis=2)
    rough = through_plane_consistency(striped, mask, axis=2)
    assert through_plane_consistency(across_sagittal, mask, axis=2) == pytest.approx(
        rough, rel=0.05
    )
    assert through_plane_consistency(across_axial, mask, axis=2) < 0.85 * rough


def test_a_uniform_brain_stays_uniform_up_to_its_edge():
    _, mask = _brain()
    flat = np.where(mask, 0.6, 0).astype(np.float32)
    assert np.allclose(even_out_slices(flat, mask, axis=0)[mask], 0.6, atol=1e-5)
