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


@dataclass(frozen=True)
class ScannerMap:
    """This study's own scanner pair as a monotone intensity map: pooled source-field
    quantiles to pooled target-field quantiles, both from the same other participants
    (scanned at both fields). The source field's reference is a :class:`TargetReference`
    of its own field strength."""

    source: TargetReference
    target: TargetReference

    def apply(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``image``'s brain voxels mapped to the target field (float32, zero outside)."""
        mask = np.asarray(mask) > 0
        out = np.zeros(np.shape(image), np.float32)
        out[mask] = np.interp(
            np.asarray(image, np.float64)[mask], self.source.quantiles, self.target.quantiles
        )
        return out

    def match(self, output: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``output`` histogram-matched to its ``source`` mapped by this map."""
        return match_to_reference(output, mask, brain_quantiles(self.apply(source, mask), mask))


def read_reference(path) -> TargetReference | None:
    """A reference JSON file (None when it records that no scan was usable); raises
    ValueError naming the file and the problem."""
    import json
    from pathlib import Path

    try:
        doc = json.loads(Path(path).read_text())
        if isinstance(doc, dict) and doc.get('Quantiles', 0) is None:
            return None
        return TargetReference.from_json(doc)
    except (OSError, ValueError) as exc:
        raise ValueError(f'{path} is not a usable target-field reference: {exc}') from None


def scan_quantiles(
    in_file,
    cache_dir,
    *,
    skull_strip: str = 'deepbet',
    sloppy: bool = False,
    spacing: float = 1.0,
    lower: float = 0.1,
    upper: float = 99.9,
    white_matter: float = 0.81,
) -> np.ndarray:
    """Brain quantiles of one raw T1w scan, preprocessed as every input is.

    Cached in ``cache_dir`` under the SHA-256 of the file's bytes and the settings, so
    the jobs of an HPC array sharing a work directory compute each scan once, and a
    scan's quantiles never depend on which job computed them.
    """
    import json
    import tempfile
    from pathlib import Path

    from ..atomic import write_text
    from .pipeline import preprocess_t1w

    settings = {
        'skull_strip': skull_strip,
        'sloppy': sloppy,
        'spacing': spacing,
        'lower': lower,
        'upper': upper,
        'white_matter': white_matter,
        'levels': LEVELS,
    }
    digest = hashlib.sha256(Path(in_file).read_bytes())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    cached = Path(cache_dir) / f'{digest.hexdigest()[:32]}.json'
    if cached.is_file():
        return np.asarray(json.loads(cached.read_text())['Quantiles'], np.float64)
    import nibabel as nib

    with tempfile.TemporaryDirectory(dir=cache_dir if Path(cache_dir).is_dir() else None) as tmp:
        out = preprocess_t1w(
            in_file,
            tmp,
            skull_strip=skull_strip,
            sloppy=sloppy,
            spacing=spacing,
            lower=lower,
            upper=upper,
            white_matter=white_matter,
            num_threads=1,
        )
        image = np.asanyarray(nib.load(out['preproc']).dataobj, dtype=np.float32)
        mask = np.asanyarray(nib.load(out['mask']).dataobj) > 0
        quantiles = brain_quantiles(image, mask)
    write_text(
        cached,
        json.dumps(
            {
                'File': str(in_file),
                'Settings': settings,
                'Quantiles': np.round(quantiles, 6).tolist(),
            }
        )
        + '\n',
    )
    return np.round(quantiles, 6)


def build_reference(
    images, sources, field_strength: float, cache_dir, **options
) -> tuple[TargetReference | None, list[str]]:
    """Pool the scans ``images`` (raw T1w files, named ``sources`` in records) into a
    reference; a scan that cannot be preprocessed is left out. Returns the reference
    (None if no scan was usable) and one line per scan left out. ``options`` go to
    :func:`scan_quantiles`."""
    import logging

    from .errors import ImageError

    scans, kept, problems = [], [], []
    for path, source in zip(images, sources, strict=True):
        try:
            scans.append(scan_quantiles(path, cache_dir, **options))
            kept.append(source)
        except (ImageError, OSError, ValueError) as error:
            problems.append(f'{source}: {error}')
            logging.getLogger(__name__).warning('Reference scan left out: %s: %s', source, error)
    if not scans:
        return None, problems
    return TargetReference.pooled(field_strength, scans, kept, 'dataset'), problems
