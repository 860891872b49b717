import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from harmonize_bids.image import (
    WHITE_MATTER_LEVEL,
    preprocess_t1w,
    register_arrays,
    register_pair,
    white_matter_level,
)


def test_register_pair_recovers_shift(save, tmp_path, phantom):
    fixed = phantom((32, 32, 32), seed=3)
    moving = ndimage.shift(fixed, (2.5, -2.0, 1.5), order=1)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    f, m = save(fixed, affine, 'fixed.nii.gz'), save(moving, affine, 'moving.nii.gz')
    out1 = register_pair(f, m, tmp_path / 'reg1.nii.gz', sloppy=True)
    out2 = register_pair(f, m, tmp_path / 'reg2.nii.gz', sloppy=True)
    reg = nib.load(out1)
    assert reg.shape == fixed.shape and np.allclose(reg.affine, affine)
    mse_before = np.mean((moving - fixed) ** 2)
    mse_after = np.mean((reg.get_fdata() - fixed) ** 2)
    assert mse_after < mse_before / 10
    np.testing.assert_array_equal(reg.get_fdata(), nib.load(out2).get_fdata())  # seeded


def test_preprocess_t1w_chain(save, tmp_path, phantom):
    data = phantom((20, 24, 16)) + 5.0 * (phantom((20, 24, 16)) > 0)
    affine = np.diag([-1.2, 1.0, 1.5, 1.0])  # LAS storage, anisotropic
    out = preprocess_t1w(
        save(data, affine, 'sub-01_T1w.nii.gz'), tmp_path / 'work', skull_strip='none', sloppy=True
    )
    pre, mask = nib.load(out['preproc']), nib.load(out['mask'])
    assert out['preproc'].name == 'sub-01_T1w_preproc.nii.gz'
    np.testing.assert_allclose(pre.header.get_zooms(), (1, 1, 1), atol=1e-6)
    assert nib.aff2axcodes(pre.affine) == ('R', 'A', 'S')
    assert pre.shape == mask.shape and np.allclose(pre.affine, mask.affine)
    x, m = pre.get_fdata(), mask.get_fdata() > 0
    assert x.min() == 0 and x.max() <= 1 and np.all(x[~m] == 0)
    assert white_matter_level(x, m) == pytest.approx(WHITE_MATTER_LEVEL, abs=0.01)
    assert {'conformed', 'brain', 'brain_mask', 'n4', 'resampled'} <= set(out)


def test_register_rejects_unseeded():
    x = np.ones((4, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match='seed'):
        register_arrays(x, x, np.eye(4), np.eye(4), seed=0)


def test_register_rejects_unknown_transform():
    x = np.ones((4, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match='transform'):
        register_arrays(x, x, np.eye(4), np.eye(4), transform='affine')


@pytest.mark.parametrize(
    ('transform', 'contrast', 'bound'), [('rigid', 'inverted', -0.85), ('syn', 'same', 0.9)]
)
def test_register_arrays_recovers_rotation(phantom, transform, contrast, bound):
    """A rotated, shifted copy comes back (rigid: even with its intensities inverted)."""
    fixed = phantom((40, 40, 40), seed=5)
    moved = ndimage.rotate(fixed, 6.0, axes=(0, 1), reshape=False, order=1)
    moved = ndimage.shift(moved, (1.5, -2.0, 1.0), order=1)
    if contrast == 'inverted':
        moved = np.where(moved > 0, 1.2 * moved.max() - moved, 0).astype(np.float32)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    out = register_arrays(fixed, moved, affine, affine, transform=transform)
    brain = fixed > 0
    corr_before = np.corrcoef(fixed[brain], moved[brain])[0, 1]
    corr_after = np.corrcoef(fixed[brain], out[brain])[0, 1]
    if contrast == 'inverted':  # aligned means anti-correlated
        corr_before, corr_after, bound = -corr_before, -corr_after, -bound
    assert corr_before < 0.7 and corr_after > bound
