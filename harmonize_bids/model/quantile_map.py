"""A monotone intensity map fitted on travelling pairs: at each intensity x (on ``GRID``) it
adds the mean, over the pairs, of the target's minus the image's intensity at the same
brain quantile. The two images of a pair show one anatomy, so the map carries the
scanners' contrast, not the subjects' tissue proportions; it is monotone, so it moves no
voxel past another.

Fitted on a trained model's outputs of its travelling subjects it is the first step of the
model folder's output calibration (:mod:`.calibration`);
fitted on their source scans it is the paired baseline of the cross-validation report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Quantile levels compared between image and target, and the intensity grid of the map.
LEVELS = np.linspace(0.0, 1.0, 1001)
GRID = np.linspace(0.0, 1.0, 201)


def quantile_correction(image: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Target minus image at equal brain quantiles, as a function of the image on GRID."""
    mask = np.asarray(mask) > 0
    image_q = np.maximum.accumulate(np.quantile(image[mask], LEVELS))
    return np.interp(GRID, image_q, np.quantile(target[mask], LEVELS)) - GRID


@dataclass(frozen=True)
class QuantileMap:
    """A correction on ``GRID`` and the pairs it was fitted on."""

    correction: np.ndarray
    subjects: tuple[str, ...]

    def apply(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The mapped image, kept in [0, 1] and zero outside the brain."""
        shifted = image + np.interp(image, GRID, self.correction)
        return np.where(np.asarray(mask) > 0, np.clip(shifted, 0.0, 1.0), 0.0).astype(np.float32)

    def to_json(self) -> dict:
        return {
            "method": "mean quantile correction over travelling pairs",
            "subjects": list(self.subjects),
            "grid": GRID.round(6).tolist(),
            "correction": self.correction.round(6).tolist(),
        }

    @classmethod
    def from_json(cls, doc: dict) -> QuantileMap:
        """Raises ValueError (naming the problem) on a document this version cannot use."""
        try:
            grid = np.asarray(doc["grid"], float)
            correction = np.asarray(doc["correction"], float)
            subjects = tuple(str(s) for s in doc["subjects"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"it lacks a valid grid, correction or subjects ({exc}).") from None
        if grid.shape != GRID.shape or not np.allclose(grid, GRID, atol=1e-6):
            raise ValueError(
                f"its grid has {grid.size} points; this harmonize_bids uses "
                f"{GRID.size} evenly spaced in [0, 1]."
            )
        if correction.shape != GRID.shape or not np.isfinite(correction).all():
            raise ValueError("its correction must hold one finite value per grid point.")
        if np.any(np.diff(GRID + correction) < -1e-5):  # rounding to 6 decimals
            raise ValueError("its map is not monotone.")
        return cls(correction, subjects)


def fit_quantile_map(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], subjects: Sequence[str]
) -> QuantileMap:
    """The mean quantile correction over (image, target, mask) pairs, made monotone."""
    if not len(pairs):
        raise ValueError("a quantile map needs at least one pair.")
    mean = np.mean([quantile_correction(o, t, m) for o, t, m in pairs], axis=0)
    return QuantileMap(np.maximum.accumulate(GRID + mean) - GRID, tuple(subjects))
