import gzip

import nibabel as nib
import numpy as np
import pytest

from harmonize_bids.image import ImageError, conform


def test_squeezes_singleton_4d(save, tmp_path):
    data = np.random.default_rng(0).random((6, 7, 8, 1)).astype(np.float32)
    out = nib.load(conform(save(data), tmp_path / 'out.nii.gz'))
    assert out.shape == (6, 7, 8)
    assert out.get_data_dtype() == np.float32
    np.testing.assert_allclose(out.get_fdata(), data[..., 0], rtol=1e-6)


def test_rejects_true_4d(save, tmp_path):
    path = save(np.ones((4, 4, 4, 3)), name='bold.nii.gz')
    with pytest.raises(ImageError, match='bold.nii.gz'):
        conform(path, tmp_path / 'out.nii.gz')


def test_reorients_to_ras_keeping_world_coordinates(save, tmp_path):
    # LPI-like storage with a permutation, anisotropic voxels and an offset
    affine = np.array(
        [
            [0.0, -2.0, 0.0, 40.0],
            [-1.5, 0.0, 0.0, 25.0],
            [0.0, 0.0, -3.0, 60.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    data = np.ones((9, 10, 11), dtype=np.float32)
    data[2, 7, 4] = 100.0
    world_in = affine @ np.array([2, 7, 4, 1.0])
    out = nib.load(conform(save(data, affine), tmp_path / 'out.nii.gz'))
    assert nib.aff2axcodes(out.affine) == ('R', 'A', 'S')
    marked = np.unravel_index(np.argmax(out.get_fdata()), out.shape)
    world_out = out.affine @ np.array([*marked, 1.0])
    np.testing.assert_allclose(world_out, world_in, atol=1e-5)
    assert sorted(out.shape) == sorted(data.shape)


def test_non_finite_replaced(save, tmp_path):
    data = np.ones((5, 5, 5), dtype=np.float32)
    data[1, 1, 1] = np.nan
    data[2, 2, 2] = np.inf
    data[3, 3, 3] = -np.inf
    out = nib.load(conform(save(data), tmp_path / 'out.nii.gz')).get_fdata()
    assert np.isfinite(out).all()
    assert out[1, 1, 1] == 0 and out[2, 2, 2] == 0 and out[3, 3, 3] == 0
    assert out[0, 0, 0] == 1


def test_corrupt_file_raises(tmp_path, save):
    garbage = tmp_path / 'garbage.nii.gz'
    garbage.write_bytes(gzip.compress(b'not a nifti file at all' * 20))
    with pytest.raises(ImageError, match='garbage.nii.gz'):
        conform(garbage, tmp_path / 'out.nii.gz')
    good = save(np.random.default_rng(0).random((20, 20, 20)), name='trunc.nii.gz')
    truncated = tmp_path / 'truncated.nii.gz'
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageError, match='truncated.nii.gz'):
        conform(truncated, tmp_path / 'out.nii.gz')


def test_all_zero_raises(save, tmp_path):
    with pytest.raises(ImageError, match='all zeros'):
        conform(save(np.zeros((5, 5, 5))), tmp_path / 'out.nii.gz')
