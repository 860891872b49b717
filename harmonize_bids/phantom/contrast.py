"""Tissue intensity statistics of a phantom image against its ground-truth labels."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from .tissues import DSEG_LABELS


def normalise(data: np.ndarray, mask: np.ndarray, lo: float = 0.1,
              hi: float = 99.9) -> np.ndarray:
    """Clip to the brain's ``lo`` / ``hi`` percentiles and scale to [0, 1]."""
    p_lo, p_hi = np.percentile(data[mask], [lo, hi])
    return np.clip((data.astype(np.float32) - p_lo) / max(p_hi - p_lo, 1e-6), 0.0, 1.0)


def tissue_stats(root: str | Path, sub: str, ses: str) -> dict[str, tuple[float, float, int]]:
    """Mean, sd and voxel count per ground-truth tissue after percentile scaling."""
    root = Path(root)
    stem = f'sub-{sub}_ses-{ses}'
    img = np.asarray(nib.load(root / f'sub-{sub}/ses-{ses}/anat/{stem}_T1w.nii.gz').dataobj)
    dseg = np.asarray(nib.load(root / f'derivatives/phantom/sub-{sub}/ses-{ses}/anat/'
                               f'{stem}_dseg.nii.gz').dataobj)
    scaled = normalise(img, dseg > 0)
    out = {}
    for label, name in DSEG_LABELS.items():
        vals = scaled[dseg == label]
        if vals.size:
            out[name] = (float(vals.mean()), float(vals.std()), int(vals.size))
    return out


def gm_wm_separation(stats: dict[str, tuple[float, float, int]]) -> tuple[float, float]:
    """WM - GM mean difference and d' = difference / pooled sd."""
    (m_gm, s_gm, n_gm), (m_wm, s_wm, n_wm) = stats['GM'], stats['WM']
    pooled = np.sqrt(((n_gm - 1) * s_gm**2 + (n_wm - 1) * s_wm**2) / (n_gm + n_wm - 2))
    return m_wm - m_gm, float((m_wm - m_gm) / pooled)
