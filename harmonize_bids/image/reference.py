"""A study's target-field reference: the pooled brain-intensity distribution of its
target-field scans, and histogram matching to it.

A scanner-switch study has scans at the target field; their preprocessed brain
histograms say what that field looks like on *this* study's scanner. A reference keeps
``LEVELS`` quantiles per scan and pools scans with equal weight. Histogram matching to a
reference is the simple baseline a user would pick, and the harmonization model sees the
source so matched as one of its inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Quantiles kept per scan, at (i + 0.5) / LEVELS.
LEVELS = 1024
_PROBABILITIES = (np.arange(LEVELS) + 0.5) / LEVELS


def brain_quantiles(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The brain's intensity quantiles (float64, ``LEVELS`` of them)."""
    values = np.asarray(image, np.float64)[np.asarray(mask) > 0]
    if values.size == 0:
        raise ValueError('the brain mask is empty')
    return np.quantile(values, _PROBABILITIES)


def pool_quantiles(scans: Sequence[np.ndarray]) -> np.ndarray:
    """Quantiles of several scans' distributions pooled with equal weight."""
    if not len(scans):
        raise ValueError('a reference needs at least one scan')
    return np.quantile(np.concatenate([np.asarray(q, np.float64) for q in scans]), _PROBABILITIES)


def match_to_reference(image: np.ndarray, mask: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """``image``'s brain voxels histogram-matched to a reference (scikit-image), float32,
    zero outside ``mask``."""
    from skimage.exposure import match_histograms

    mask = np.asarray(mask) > 0
    out = np.zeros(np.shape(image), np.float32)
    out[mask] = match_histograms(
        np.asarray(image, np.float64)[mask], np.asarray(quantiles, np.float64)
    )
    return out


@dataclass(frozen=True)
class TargetReference:
    """Pooled target-field quantiles and where they came from."""

    field_strength: float
    quantiles: np.ndarray
    sources: list[str] = field(default_factory=list)  # BIDS URIs or file names
    origin: str = 'dataset'  # 'dataset', 'file' or 'model default'

    @classmethod
    def pooled(
        cls,
        field_strength: float,
        scans: Sequence[np.ndarray],
        sources: Sequence[str],
        origin: str = 'dataset',
    ) -> TargetReference:
        return cls(float(field_strength), pool_quantiles(scans), list(sources), origin)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(np.round(self.quantiles, 6).tobytes()).hexdigest()

    def to_json(self) -> dict:
        return {
            'MagneticFieldStrength': self.field_strength,
            'Origin': self.origin,
            'Sources': self.sources,
            'Levels': LEVELS,
            'Quantiles': np.round(self.quantiles, 6).tolist(),
        }

    @classmethod
    def from_json(cls, doc: dict) -> TargetReference:
        """Raises ValueError naming the problem."""
        try:
            quantiles = np.asarray(doc['Quantiles'], np.float64)
            field_strength = float(doc['MagneticFieldStrength'])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f'it lacks MagneticFieldStrength or Quantiles ({exc})') from None
        if quantiles.shape != (LEVELS,) or not np.isfinite(quantiles).all():
            raise ValueError(f'its Quantiles must be {LEVELS} finite numbers')
        if np.any(np.diff(quantiles) < 0):
            raise ValueError('its Quantiles must not decrease')
        return cls(
            field_strength, quantiles, list(doc.get('Sources', [])), str(doc.get('Origin', 'file'))
        )


def read_reference(path) -> TargetReference:
    """A reference JSON file; raises ValueError naming the file and the problem."""
    import json
    from pathlib import Path

    try:
        return TargetReference.from_json(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as exc:
        raise ValueError(f'{path} is not a usable target-field reference: {exc}') from None
