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


#: In a brain scaled at its 99.9th percentile the 99th lies near the top (0.9-0.95 in
#: T1w MPRAGE); far lower means a small set of voxels much brighter than white matter,
#: e.g. scalp fat left inside the brain mask, set the scale and darkened the brain.
MIN_SCALED_P99 = 0.75


def scaling_problem(scaled: np.ndarray, mask: np.ndarray, *,
                    min_p99: float = MIN_SCALED_P99) -> str | None:
    """Why a clipped-and-scaled brain looks mis-scaled, or None if it looks right."""
    mask = np.asarray(mask) > 0
    if not mask.any():
        return 'the brain mask is empty'
    p99 = float(np.percentile(np.asarray(scaled)[mask], 99))
    if p99 < min_p99:
        return (f'its 99th brain percentile is {p99:.2f} of the scale (expected >= '
                f'{min_p99}): voxels far brighter than white matter (e.g. scalp fat left '
                'by skull stripping) set the 99.9th-percentile scaling')
    return None
