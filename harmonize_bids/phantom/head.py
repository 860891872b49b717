"""Synthetic skull and scalp around the brain, from distance transforms of its hull.

Layers outward from a smoothed brain hull (thicknesses in mm, random per subject and
modulated smoothly over the head): extracerebral CSF, inner table (cortical bone), diploe
(fatty marrow), outer table, galea / muscle, subcutaneous fat, skin. Below the brain a neck
of muscle wrapped in fat and skin continues to the bottom of the working grid.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .anatomy import Anatomy, block_mean
from .fields import smooth_field

# (tissue, min, max) thickness in mm, innermost first; adult skull 5-10 mm, scalp 5-8 mm.
LAYERS: tuple[tuple[str, float, float], ...] = (
    ('csf', 0.8, 2.0),
    ('bone', 1.2, 2.2),
    ('marrow', 1.5, 4.0),
    ('bone', 1.2, 2.0),
    ('muscle', 1.0, 2.5),
    ('fat', 2.0, 4.5),
    ('muscle', 1.2, 2.0),  # skin: muscle-like relaxation
)
HEAD_TISSUES: tuple[str, ...] = ('ecsf', 'bone', 'marrow', 'muscle', 'fat')


def _outside_distance(
    mask: np.ndarray, spacing: float, f: int, shape: tuple[int, ...]
) -> np.ndarray:
    """Signed distance (mm) to the surface of ``mask``, upsampled by ``f`` to ``shape``."""
    out = ndi.distance_transform_edt(~mask, sampling=spacing)
    inn = ndi.distance_transform_edt(mask, sampling=spacing)
    d = np.where(mask, spacing / 2 - inn, out - spacing / 2).astype(np.float32)
    if f > 1:
        d = ndi.zoom(d, f, order=1, grid_mode=True, mode='nearest')
    return np.ascontiguousarray(d[: shape[0], : shape[1], : shape[2]])


def _neck(hull: np.ndarray, step: float) -> np.ndarray:
    """Elliptic cylinder under the brain's lowest part, rising into the hull."""
    z_any = np.flatnonzero(hull.any(axis=(0, 1)))
    z0 = z_any[0]
    base = hull[:, :, z0 + int(round(12 / step))]  # cross-section 12 mm above the bottom
    ii, jj = np.nonzero(base)
    cy = jj.mean()
    ci = (hull.shape[0] - 1) / 2.0
    ri = max(1.0, 0.9 * (ii.max() - ii.min()) / 2)
    rj = max(1.0, 0.8 * (jj.max() - jj.min()) / 2)
    i, j = np.ogrid[: hull.shape[0], : hull.shape[1]]
    disc = ((i - ci) / ri) ** 2 + ((j - cy - 0.3 * rj) / rj) ** 2 <= 1.0
    neck = np.zeros_like(hull)
    neck[:, :, : z0 + int(round(12 / step))] = disc[:, :, None]
    return neck


def add_head(anat: Anatomy, rng: np.random.Generator) -> None:
    """Add extracerebral CSF, bone, marrow, muscle and fat maps to ``anat.maps`` in place."""
    step = anat.step
    brain = anat.brain
    # Hull and distances on a >= 2 mm grid (smooth surfaces), upsampled linearly.
    f = max(1, int(round(2.0 / step)))
    coarse = block_mean(brain, f)
    hull_c = ndi.gaussian_filter(coarse, 3.0 / (step * f)) > 0.35
    hull_c = ndi.binary_fill_holes(hull_c | (coarse > 0.5))
    neck_c = _neck(hull_c, step * f)
    dist = _outside_distance(hull_c, step * f, f, brain.shape)
    dist_neck = _outside_distance(hull_c | neck_c, step * f, f, brain.shape)
    wobble = 1.0 + 0.25 * smooth_field(rng, brain.shape, step, 50.0)

    def inside(radius: np.ndarray | float, d: np.ndarray) -> np.ndarray:
        return np.clip((radius - d) / step + 0.5, 0.0, 1.0)

    maps = {name: np.zeros_like(brain) for name in HEAD_TISSUES}
    # Inside the hull, whatever is not brain is extracerebral (sulcal / cisternal) CSF.
    prev = inside(0.0, dist)
    maps['ecsf'] += np.clip(prev - brain, 0.0, 1.0)
    radius = np.zeros_like(brain)
    thick = {}
    for k, (tissue, lo, hi) in enumerate(LAYERS):
        t = rng.uniform(lo, hi)
        thick[f'{k}_{tissue}'] = round(float(t), 2)
        radius = radius + t * wobble
        cur = np.maximum(inside(radius, dist), prev)
        name = 'ecsf' if tissue == 'csf' else tissue
        maps[name] += cur - prev
        prev = cur
    # Neck: muscle core, fat and skin sleeve, no bone.
    outer = prev
    sleeve = radius.mean()
    core = inside(0.0, dist_neck) * (1.0 - outer)
    fat = inside(sleeve * 0.7, dist_neck) * (1.0 - outer) - core
    skin = inside(sleeve, dist_neck) * (1.0 - outer) - core - fat
    maps['muscle'] += np.clip(core, 0, 1) + np.clip(skin, 0, 1)
    maps['fat'] += np.clip(fat, 0, 1)
    # Head tissue fills what the brain leaves free; fractions never sum above one.
    head = np.maximum(sum(maps.values()), 1e-6)
    room = np.clip(1.0 - sum(anat.maps.values()), 0.0, 1.0)
    shrink = np.minimum(1.0, room / head)
    for name, m in maps.items():
        anat.maps[name] = np.clip(m * shrink, 0.0, 1.0).astype(np.float32)
    anat.info['head_layers_mm'] = thick
