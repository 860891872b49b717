"""Evening out the slow brightness changes between the slices of a slice-by-slice output.

A 2D model maps each slice on its own, so neighbouring slices of its output differ a little
in overall brightness: stripes across the slice axis. Most of that lies in the slow
(low spatial frequency) part of each slice, so only that part is smoothed across slices;
the detail above it is kept as it is.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: In-plane Gaussian sigma (mm, voxels of the 1 mm grid) of the slow part of a slice.
IN_PLANE_SIGMA = 4.0
#: Gaussian sigma (slices) of the smoothing across slices.
ACROSS_SIGMA = 2.0


def _smooth_in_mask(image: np.ndarray, weight: np.ndarray, sigma: list[float]) -> np.ndarray:
    """Gaussian smoothing normalised by the mask's, so the background does not bleed in."""
    num = ndimage.gaussian_filter(image * weight, sigma)
    return num / np.maximum(ndimage.gaussian_filter(weight, sigma), 1e-3)


def even_out_slices(
    image: np.ndarray,
    mask: np.ndarray,
    axis: int,
    *,
    in_plane_sigma: float = IN_PLANE_SIGMA,
    across_sigma: float = ACROSS_SIGMA,
) -> np.ndarray:
    """``image`` with the slice-to-slice changes of its in-plane low-pass smoothed across
    ``axis``; zero outside ``mask``, clipped to [0, 1], float32."""
    mask = np.asarray(mask, bool)
    weight = mask.astype(np.float64)
    data = np.asarray(image, np.float64)
    in_plane = [in_plane_sigma] * 3
    in_plane[axis] = 0.0
    across = [0.0] * 3
    across[axis] = across_sigma
    slow = _smooth_in_mask(data, weight, in_plane)
    out = data + _smooth_in_mask(slow, weight, across) - slow
    return np.where(mask, np.clip(out, 0.0, 1.0), 0.0).astype(np.float32)
