"""Output calibration: a monotone intensity correction a model folder may carry.

A diffusion model's output can have the right anatomy and slightly wrong intensities,
and Atropos then moves its tissue boundaries: the bundled 3 T -> 1.5 T model's raw
output loses 13-34 ml of CSF to grey matter on every held-out phantom subject
(docs/experiments/output-calibration.md). The calibration is fitted on pairs the
network did not train on: at each output intensity x (on ``GRID``) it adds the mean,
over the pairs, of the target's minus the output's intensity at the same brain quantile.
It is a fixed monotone map, so it moves no voxel past another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

#: Quantile levels compared between output and target, and the output-intensity grid.
LEVELS = np.linspace(0.0, 1.0, 1001)
GRID = np.linspace(0.0, 1.0, 201)
FILE = "calibration.json"
MIN_PAIRS = 3


def quantile_correction(output: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """target minus output at equal brain quantiles, as a function of output on GRID."""
    output_q = np.maximum.accumulate(np.quantile(output[mask], LEVELS))
    return np.interp(GRID, output_q, np.quantile(target[mask], LEVELS)) - GRID


@dataclass(frozen=True)
class OutputCalibration:
    correction: np.ndarray  # on GRID
    pairs: int

    def apply(self, output: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The calibrated output, kept in [0, 1] and zero outside the brain."""
        shifted = output + np.interp(output, GRID, self.correction)
        return np.where(mask, np.clip(shifted, 0.0, 1.0), 0.0).astype(np.float32)

    @property
    def sha256(self) -> str:
        """Identifies the calibration (of its JSON form), e.g. in benchmark records."""
        return hashlib.sha256(json.dumps(self.to_json()).encode()).hexdigest()

    def to_json(self) -> dict:
        return {
            "method": "mean quantile correction",
            "pairs": self.pairs,
            "grid": GRID.round(6).tolist(),
            "correction": self.correction.round(6).tolist(),
        }

    @classmethod
    def from_json(cls, doc: dict) -> OutputCalibration:
        """Raises ValueError (naming the problem) on a document this version cannot use."""
        try:
            grid = np.asarray(doc["grid"], float)
            correction = np.asarray(doc["correction"], float)
            pairs = int(doc["pairs"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"it lacks a valid grid, correction or pairs ({exc}).") from None
        if grid.shape != GRID.shape or not np.allclose(grid, GRID, atol=1e-6):
            raise ValueError(
                f"its grid has {grid.size} points; this harmonize_bids uses "
                f"{GRID.size} evenly spaced in [0, 1]."
            )
        if correction.shape != GRID.shape or not np.isfinite(correction).all():
            raise ValueError("its correction must hold one finite value per grid point.")
        if np.any(np.diff(GRID + correction) < -1e-5):  # rounding to 6 decimals
            raise ValueError("its map is not monotone.")
        return cls(correction, pairs)


def fit_calibration(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> OutputCalibration:
    """The mean quantile correction over (output, target, mask) pairs."""
    if len(pairs) < MIN_PAIRS:
        raise ValueError(
            f"an output calibration needs at least {MIN_PAIRS} pairs, got {len(pairs)}."
        )
    corrections = np.stack([quantile_correction(o, t, m) for o, t, m in pairs])
    mapped = np.maximum.accumulate(GRID + corrections.mean(0))
    return OutputCalibration(mapped - GRID, len(pairs))
