"""Output calibration: a monotone intensity map a model folder may carry (calibration.json).

``harmonize-bids-train --calibrate-output`` fits it on the study's own travelling pairs:
at each output intensity x (on ``GRID``) it adds the mean, over the pairs, of the
target's minus the trained model's output intensity at the same brain quantile. A
fine-tuned model can keep a shift of a tissue boundary that its loss leaves in place on
its own training pairs; the map moves it back. It is monotone, so it moves no voxel past
another, and applied after the white-matter anchoring.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Quantile levels compared between output and target, and the output-intensity grid.
LEVELS = np.linspace(0.0, 1.0, 1001)
GRID = np.linspace(0.0, 1.0, 201)
FILE = "calibration.json"


def quantile_correction(output: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Target minus output at equal brain quantiles, as a function of output on GRID."""
    mask = np.asarray(mask) > 0
    output_q = np.maximum.accumulate(np.quantile(output[mask], LEVELS))
    return np.interp(GRID, output_q, np.quantile(target[mask], LEVELS)) - GRID


@dataclass(frozen=True)
class OutputCalibration:
    """A correction on ``GRID`` and the pairs it was fitted on."""

    correction: np.ndarray
    subjects: tuple[str, ...]

    def apply(self, output: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The calibrated output, kept in [0, 1] and zero outside the brain."""
        shifted = output + np.interp(output, GRID, self.correction)
        return np.where(np.asarray(mask) > 0, np.clip(shifted, 0.0, 1.0), 0.0).astype(np.float32)

    @property
    def sha256(self) -> str:
        """Identifies the calibration (its JSON form), in sidecars and benchmark records."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict:
        return {
            "method": "mean quantile correction on the travelling pairs",
            "subjects": list(self.subjects),
            "grid": GRID.round(6).tolist(),
            "correction": self.correction.round(6).tolist(),
        }

    @classmethod
    def from_json(cls, doc: dict) -> OutputCalibration:
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


def fit_calibration(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], subjects: Sequence[str]
) -> OutputCalibration:
    """The mean quantile correction over (output, target, mask) pairs, made monotone."""
    if not len(pairs):
        raise ValueError("an output calibration needs at least one pair.")
    mean = np.mean([quantile_correction(o, t, m) for o, t, m in pairs], axis=0)
    return OutputCalibration(np.maximum.accumulate(GRID + mean) - GRID, tuple(subjects))
