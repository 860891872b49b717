"""A model folder's output calibration (calibration.json, ``harmonize-bids-train
--calibrate-output``), fitted on a study's travelling pairs in two steps:

1. a :class:`~.quantile_map.QuantileMap` of the model's outputs of the pairs onto their
   targets (the scanners' contrast as the model misses it);
2. a change weight ``w`` in [0, 1]: of the mapped output's change to its source, the
   fraction with the least squared error to the targets over the pairs' brains. An image
   is then ``source + w (mapped output - source)``: where the pairs show the model moving
   their images further than their targets are from their sources, it moves less.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .quantile_map import QuantileMap, fit_quantile_map


@dataclass(frozen=True)
class OutputCalibration:
    """The map of the outputs and the weight of their change to the source."""

    output_map: QuantileMap
    change_weight: float = 1.0

    @property
    def subjects(self) -> tuple[str, ...]:
        return self.output_map.subjects

    def apply(self, output: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The calibrated output of ``source``, zero outside the brain."""
        mapped = self.output_map.apply(output, mask)
        if self.change_weight == 1.0:
            return mapped
        moved = source + self.change_weight * (mapped - source)
        return np.where(np.asarray(mask) > 0, np.clip(moved, 0.0, 1.0), 0.0).astype(np.float32)

    @property
    def sha256(self) -> str:
        """Identifies the calibration (its JSON form), in sidecars and benchmark records."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict:
        return {**self.output_map.to_json(), "change_weight": round(self.change_weight, 6)}

    @classmethod
    def from_json(cls, doc: dict) -> OutputCalibration:
        """Raises ValueError (naming the problem) on a document this version cannot use.
        Documents without a change weight (written before it existed) keep the whole
        change."""
        output_map = QuantileMap.from_json(doc)
        try:
            weight = float(doc.get("change_weight", 1.0))
        except (TypeError, ValueError):
            weight = math.nan
        if not 0.0 <= weight <= 1.0:
            raise ValueError("its change_weight must be a number in [0, 1].")
        return cls(output_map, weight)


def change_weight(
    mapped: Sequence[np.ndarray],
    sources: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
) -> float:
    """The w in [0, 1] minimising, over the brains, the squared error of
    ``source + w (mapped - source)`` to the target (1 where the outputs equal the sources)."""
    along = across = 0.0
    for image, source, target, mask in zip(mapped, sources, targets, masks, strict=True):
        inside = np.asarray(mask) > 0
        change = (image - source)[inside].astype(np.float64)
        along += float(change @ (target - source)[inside])
        across += float(change @ change)
    return float(np.clip(along / across, 0.0, 1.0)) if across else 1.0


def fit_output_calibration(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    subjects: Sequence[str],
) -> OutputCalibration:
    """Fit both steps on (output, source, target, mask) of the travelling pairs."""
    output_map = fit_quantile_map([(o, t, m) for o, _, t, m in pairs], subjects)
    weight = change_weight(
        [output_map.apply(o, m) for o, _, _, m in pairs],
        [s for _, s, _, _ in pairs],
        [t for _, _, t, _ in pairs],
        [m for _, _, _, m in pairs],
    )
    return OutputCalibration(output_map, weight)
