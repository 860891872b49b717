"""Smooth random fields built by separable Gaussian upsampling of a coarse random grid."""

from __future__ import annotations

import numpy as np


def _upsample_matrix(n: int, step: float, spacing: float) -> tuple[np.ndarray, int]:
    """Rows: fine voxels; columns: coarse nodes every ``spacing`` mm (with margin)."""
    extent = n * step
    m = int(np.ceil(extent / spacing)) + 3
    centres = (np.arange(m) - 1.0) * spacing
    x = (np.arange(n) + 0.5) * step
    w = np.exp(-0.5 * ((x[:, None] - centres[None, :]) / (0.6 * spacing)) ** 2)
    w /= np.sqrt((w**2).sum(axis=1, keepdims=True))  # unit variance for iid node values
    return w.astype(np.float32), m


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, ...], step: float, spacing: float
) -> np.ndarray:
    """Zero-mean, unit-variance random field with correlation length ~``spacing`` mm."""
    mats = [_upsample_matrix(n, step, spacing) for n in shape]
    out = rng.standard_normal(tuple(m for _, m in mats)).astype(np.float32)
    for axis, (w, _) in enumerate(mats):
        out = np.moveaxis(np.tensordot(w, np.moveaxis(out, axis, 0), axes=1), 0, axis)
    return np.ascontiguousarray(out, dtype=np.float32)
