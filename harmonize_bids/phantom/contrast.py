"""Tissue intensity statistics of a phantom image against its ground-truth labels.

The image goes through the app's own preprocessing math (N4 inside the brain mask, then
0.1 / 99.9 percentile clipping, scaling to [0, 1] and white-matter anchoring) with the
ground-truth brain mask standing in for skull stripping.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from .dataset import truth_file
from .tissues import DSEG_LABELS


def tissue_stats(
    root: str | Path, sub: str, ses: str, *, n4: bool = True
) -> dict[str, tuple[float, float, int]]:
    """Mean, sd and voxel count per ground-truth tissue of the [0, 1]-scaled image."""
    from ..image.intensity import clip_and_scale_array

    root = Path(root)
    stem = f'sub-{sub}_ses-{ses}'
    raw = root / f'sub-{sub}/ses-{ses}/anat/{stem}_T1w.nii.gz'
    dseg = np.asarray(nib.load(truth_file(root, sub, ses, 'dseg.nii.gz')).dataobj)
    if n4:
        from ..image.bias import n4_correct

        with tempfile.TemporaryDirectory() as tmp:
            out = n4_correct(
                raw, truth_file(root, sub, ses, 'desc-brain_mask.nii.gz'), Path(tmp) / 'n4.nii.gz'
            )
            img = np.asarray(nib.load(out).dataobj, dtype=np.float32)
    else:
        img = np.asarray(nib.load(raw).dataobj, dtype=np.float32)
    scaled = clip_and_scale_array(img, dseg > 0)
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
