"""Step 5: robust clipping inside the brain and scaling to [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._io import PathT, check_same_grid, load_image, save_like
from .errors import ImageError


def clip_and_scale_array(data: np.ndarray, mask: np.ndarray, *, lower: float = 0.1,
                         upper: float = 99.9) -> np.ndarray:
    """Clip ``data`` at the [lower, upper] percentiles inside ``mask``, scale to [0, 1].

    Voxels outside the mask are 0. Returns float32.
    """
    mask = np.asarray(mask) > 0
    if not mask.any():
        raise ImageError('brain mask is empty. Check the skull-stripping step.')
    lo, hi = np.percentile(data[mask], [lower, upper])
    if not hi > lo:
        raise ImageError('intensities inside the brain mask are constant. Check the input.')
    out = np.clip((data - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    out[~mask] = 0.0
    return out


def clip_and_scale(in_file: PathT, mask_file: PathT, out_file: PathT, *, lower: float = 0.1,
                   upper: float = 99.9) -> Path:
    """File variant of :func:`clip_and_scale_array`; mask and image must share a grid."""
    img, data = load_image(in_file)
    mask_img, mask = load_image(mask_file)
    check_same_grid(mask_img, img, mask_file, in_file)
    try:
        out = clip_and_scale_array(data, mask, lower=lower, upper=upper)
    except ImageError as exc:
        raise ImageError(f'{in_file}: {exc}') from None
    return save_like(out, img, out_file)
