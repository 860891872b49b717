"""Step 4: resampling to isotropic voxels on the same field of view."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from scipy import ndimage

from ._io import PathT, load_image, save_like, zooms_from_affine

LOGGER = logging.getLogger(__name__)


def isotropic_grid(
    affine: np.ndarray, shape: tuple[int, ...], spacing: float = 1.0
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of an isotropic grid covering the same field of view.

    Axis directions are kept; the new grid is centred on the old field-of-view centre,
    so the image stays aligned in world coordinates.
    """
    affine = np.asarray(affine, dtype=float)
    zooms = zooms_from_affine(affine)
    shape3 = np.asarray(shape[:3], dtype=float)
    new_shape = np.maximum(np.round(shape3 * zooms / spacing), 1).astype(int)
    new_affine = np.eye(4)
    new_affine[:3, :3] = affine[:3, :3] / zooms * spacing
    centre = affine[:3, :3] @ ((shape3 - 1) / 2) + affine[:3, 3]
    new_affine[:3, 3] = centre - new_affine[:3, :3] @ ((new_shape - 1) / 2)
    return new_affine, tuple(int(s) for s in new_shape)


def resample_to_1mm(
    in_file: PathT, out_file: PathT, *, interpolation: str = 'linear', spacing: float = 1.0
) -> Path:
    """Resample to isotropic ``spacing`` mm keeping field of view and world alignment.

    ``interpolation='nearest'`` is for masks/labels (uint8 when values fit). Images already
    on an isotropic ``spacing`` grid are copied unchanged (as float32 / uint8).
    """
    if interpolation not in ('linear', 'nearest'):
        raise ValueError(f"interpolation must be 'linear' or 'nearest', not {interpolation!r}")
    order = 1 if interpolation == 'linear' else 0
    img, data = load_image(in_file)
    is_label = order == 0 and data.min() >= 0 and data.max() <= 255 and np.all(data % 1 == 0)
    dtype = np.uint8 if is_label else np.float32
    if np.allclose(zooms_from_affine(img.affine), spacing, atol=1e-3):
        return save_like(data, img, out_file, dtype=dtype)
    new_affine, new_shape = isotropic_grid(img.affine, data.shape, spacing)
    # new voxel -> old voxel index mapping
    vox2vox = np.linalg.inv(img.affine) @ new_affine
    out = ndimage.affine_transform(
        data,
        vox2vox[:3, :3],
        offset=vox2vox[:3, 3],
        output_shape=new_shape,
        order=order,
        mode='constant',
        cval=0.0,
    )
    LOGGER.debug('%s: resampled %s -> %s', in_file, data.shape, new_shape)
    ref = img.__class__(np.zeros(new_shape, dtype=np.uint8), new_affine, img.header.copy())
    return save_like(out, ref, out_file, dtype=dtype)
