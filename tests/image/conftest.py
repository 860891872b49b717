"""Tiny synthetic volumes for the image tests."""

import os

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS', '1')

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import ndimage  # noqa: E402


def blob_phantom(shape=(32, 32, 32), seed=0) -> np.ndarray:
    """Smooth 'brain-like' object: an ellipsoid with a few inner structures, bg = 0."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    centre = (np.asarray(shape) - 1) / 2
    radii = np.asarray(shape) * 0.38
    r = np.sqrt((((grid.T - centre) / radii) ** 2).sum(-1)).T
    data = np.where(r < 1, 100.0, 0.0)
    for _ in range(6):
        c = centre + rng.uniform(-0.5, 0.5, 3) * radii
        d = np.sqrt(((grid.T - c) ** 2).sum(-1)).T
        data += np.where((d < rng.uniform(2, 5)) & (r < 1), rng.uniform(-60, 60), 0)
    return ndimage.gaussian_filter(data, 1.0).astype(np.float32) * (r < 1)


@pytest.fixture
def phantom():
    return blob_phantom


@pytest.fixture
def save(tmp_path):
    def _save(data, affine=None, name='img.nii.gz'):
        path = tmp_path / name
        nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine).to_filename(
            path
        )
        return path

    return _save
