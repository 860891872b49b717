"""Step 1: load, squeeze, reorient to RAS+, sanitize intensities."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from ._io import PathT, load_image, save_like
from .errors import ImageError

LOGGER = logging.getLogger(__name__)


def conform(in_file: PathT, out_file: PathT) -> Path:
    """Write a 3-D, RAS+ canonical, finite, float32 copy of ``in_file``.

    A singleton 4th dimension is dropped; a true 4-D series is an error. Reorientation
    only permutes/flips voxel axes (``nib.as_closest_canonical``), so every voxel keeps
    its world (mm) coordinate exactly. NaN and +-inf become 0.
    """
    img, data = load_image(in_file)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    elif data.ndim != 3:
        raise ImageError(
            f'{in_file}: expected a 3-D T1w image, got shape {data.shape}. '
            'Split the series and pass a single volume.'
        )
    # Rebuild a 3-D image with the original affine, then reorient (exact permutation/flip).
    header = img.header.copy() if isinstance(img, nib.Nifti1Image) else None
    img3 = nib.Nifti1Image(data, img.affine, header)
    canon = nib.as_closest_canonical(img3)
    data = np.asarray(canon.dataobj, dtype=np.float32)
    n_bad = int(np.count_nonzero(~np.isfinite(data)))
    if n_bad:
        LOGGER.warning('%s: replacing %d non-finite voxels with 0', in_file, n_bad)
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    if not np.any(data):
        raise ImageError(f'{in_file}: image is all zeros. Check the conversion from DICOM.')
    return save_like(data, canon, out_file)
