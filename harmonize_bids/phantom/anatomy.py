"""Subject brain anatomy: a deformed, atrophied ICBM152 2009a template, optionally with MS
lesions.

The template (Fonov et al., NeuroImage 2011) ships inside nilearn's package; it is read
from there, never fetched. Tissue maps are probabilities in [0, 1] on a working grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from .fields import smooth_field
from .tissues import BRAIN_TISSUES

_TEMPLATE = 'mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz'
# Working-grid padding around the template box, mm (x, y, z) low/high: room for the skull,
# scalp and neck.
PAD_MM = ((18, 18), (18, 18), (64, 18))


@dataclass(frozen=True)
class AnatomyVariety:
    """Ranges of one subject population's anatomy (mm, years).

    ``paper``: the original phantom; ``core``: what bundled models train on (wider head
    sizes and deformations, more atrophy and lesion load); ``unseen``: stronger
    deformations, large ventricles, heavy atrophy and lesion load beyond the core's.
    """

    scale: tuple[float, float] = (0.90, 1.02)
    deformation_mm: tuple[float, float] = (2.0, 4.0)
    deformation_length_mm: float = 40.0
    ventricle_mm_per_year: float = 0.05
    ventricle_extra_mm: tuple[float, float] = (0.0, 0.0)
    thinning_max_mm: float = 1.5
    lesion_count: tuple[int, int] = (6, 16)
    lesion_axis_mm: tuple[float, float] = (1.5, 4.5)


VARIETIES: dict[str, AnatomyVariety] = {
    'paper': AnatomyVariety(),
    'core': AnatomyVariety(
        scale=(0.86, 1.06),
        deformation_mm=(2.0, 5.5),
        ventricle_extra_mm=(0.0, 2.0),
        thinning_max_mm=1.8,
        lesion_count=(3, 22),
        lesion_axis_mm=(1.5, 5.5),
    ),
    'unseen': AnatomyVariety(
        scale=(0.83, 1.10),
        deformation_mm=(5.5, 7.5),
        deformation_length_mm=30.0,
        ventricle_extra_mm=(2.0, 4.5),
        thinning_max_mm=2.4,
        lesion_count=(15, 35),
        lesion_axis_mm=(2.0, 7.0),
    ),
}


@dataclass
class Anatomy:
    """Tissue probabilities of one subject on a working grid (RAS, ``step`` mm)."""

    affine: np.ndarray
    step: float
    maps: dict[str, np.ndarray]
    brain: np.ndarray  # brain-mask probability (template brain, deformed)
    info: dict = field(default_factory=dict)
    _labels: np.ndarray | None = field(default=None, repr=False)

    @property
    def labels(self) -> np.ndarray:
        """Hard brain labels (0 outside, 1 CSF, 2 GM, 3 WM, 4 lesion), max probability."""
        if self._labels is None:
            probs = np.stack([self.maps[t] for t in BRAIN_TISSUES])
            self._labels = np.where(self.brain > 0.5, probs.argmax(0) + 1, 0).astype(np.uint8)
        return self._labels


def _template_path(name: str):
    return resources.files('nilearn.datasets') / 'data' / _TEMPLATE.format(name)


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Average over f x f x f blocks (zero-padded at the far edges)."""
    if f == 1:
        return a
    shape = [int(np.ceil(n / f)) * f for n in a.shape]
    a = np.pad(a, [(0, s - n) for s, n in zip(shape, a.shape, strict=True)])
    return a.reshape(shape[0] // f, f, shape[1] // f, f, shape[2] // f, f).mean(axis=(1, 3, 5))


@lru_cache(maxsize=2)
def load_template(step: int = 1) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Template brain / GM / WM / ventricle probabilities at ``step`` mm and their affine."""
    imgs = {}
    for name in ('t1', 'gm', 'wm'):
        with resources.as_file(_template_path(name)) as path:
            img = nib.load(path)
            imgs[name] = np.asarray(img.dataobj, dtype=np.float32)
            affine = img.affine.copy()
    brain = block_mean((imgs['t1'] > 0).astype(np.float32), step)
    gm = block_mean(imgs['gm'] / np.float32(255.0), step) * (brain > 0)
    wm = block_mean(imgs['wm'] / np.float32(255.0), step) * (brain > 0)
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    # Ventricles: CSF deep inside the brain (> 15 mm from its surface).
    depth = ndi.distance_transform_edt(brain > 0.5, sampling=step)
    vent = (csf > 0.5) & (depth > 15)
    lab, n = ndi.label(vent)
    if n > 1:  # keep the large connected pieces (lateral and third ventricles)
        sizes = ndi.sum(vent, lab, index=np.arange(1, n + 1)) * step**3
        vent = np.isin(lab, 1 + np.flatnonzero(sizes > 500))
    maps = {'brain': brain, 'gm': gm, 'wm': wm, 'vent': vent}
    maps = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in maps.items()}
    aff = affine.copy()
    aff[:3, :3] *= step
    aff[:3, 3] += (step - 1) / 2.0
    return maps, aff


def _ellipsoid_blob(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    centre: np.ndarray,
    semi_axes: np.ndarray,
    step: float,
) -> tuple[tuple[slice, ...], np.ndarray]:
    """Soft irregular ellipsoid (membership in [0, 1]) in a local box around ``centre``."""
    r = int(np.ceil(semi_axes.max() * 1.6 / step)) + 1
    lo = np.maximum(centre - r, 0)
    hi = np.minimum(centre + r + 1, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    grid = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing='ij'), -1)
    rot, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    local = ((grid - centre) * step) @ rot / semi_axes
    radius = np.sqrt((local**2).sum(-1))
    # Irregular outline: a few random low-order lobes on the radius.
    direction = local / np.maximum(radius[..., None], 1e-6)
    lobes = rng.standard_normal((4, 3))
    bump = sum(0.12 * np.cos(3.0 * direction @ v + rng.uniform(0, 2 * np.pi)) for v in lobes)
    edge = step / semi_axes.min()  # one-voxel soft edge
    return box, np.clip((1.0 + bump - radius) / edge + 0.5, 0.0, 1.0).astype(np.float32)


def make_anatomy(
    rng: np.random.Generator,
    *,
    step: int,
    age: float,
    lesions: bool,
    min_lesion_axis: float = 0.0,
    variety: AnatomyVariety = VARIETIES['paper'],
) -> Anatomy:
    """One subject's brain: smooth random deformation, age-related atrophy, lesions."""
    v = variety
    tmpl, affine = load_template(step)
    shape = tmpl['brain'].shape
    info: dict = {}
    # Global head size and a low-frequency displacement field (a few mm).
    scale = rng.uniform(*v.scale)
    amp = rng.uniform(*v.deformation_mm)
    disp = [amp * smooth_field(rng, shape, step, v.deformation_length_mm) / step for _ in range(3)]
    centre = np.array([98.0, 116.0, 80.0]) / step  # near the template brain centre, voxels
    grid = np.indices(shape, dtype=np.float32)
    coords = np.stack([centre[i] + (grid[i] - centre[i]) / scale + disp[i] for i in range(3)])
    del grid, disp
    maps = {
        k: ndi.map_coordinates(v, coords, order=1, cval=0.0).astype(np.float32)
        for k, v in tmpl.items()
    }
    del coords
    brain, gm, wm = maps['brain'], maps['gm'], maps['wm']
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    info['scale'] = float(scale)

    # Ventricle enlargement grows with age (~0.05 mm / year after 20, randomised).
    grow = max(0.0, rng.normal(v.ventricle_mm_per_year * (age - 20.0), 0.5))
    if v.ventricle_extra_mm[1] > 0:  # enlarged ventricles beyond ageing
        grow += rng.uniform(*v.ventricle_extra_mm)
    vent = maps['vent'] > 0.5
    dist_vent = ndi.distance_transform_edt(~vent, sampling=step).astype(np.float32)
    to_csf = np.clip((grow - dist_vent) / step + 0.5, 0.0, 1.0) * (1.0 - csf)
    to_csf[~(brain > 0.5)] = 0.0
    frac_gm = np.divide(gm, gm + wm, out=np.zeros_like(gm), where=(gm + wm) > 0)
    gm -= to_csf * frac_gm
    wm -= to_csf * (1.0 - frac_gm)
    csf += to_csf
    info['ventricle_growth_mm'] = round(float(grow), 2)

    # Cortical thinning: part of the outermost GM becomes CSF.
    thin = float(np.clip(rng.normal(0.02 * (age - 20.0), 0.3), 0.0, v.thinning_max_mm))
    tissue = (gm + wm) > 0.5
    depth = ndi.distance_transform_edt(tissue, sampling=step).astype(np.float32) - step
    shell = np.clip((thin - depth) / step + 0.5, 0.0, 1.0) * tissue
    loss = gm * shell * rng.uniform(0.4, 0.8)
    gm -= loss
    csf += loss
    info['cortical_thinning_mm'] = round(thin, 2)
    del depth, shell, loss, to_csf

    les = np.zeros_like(wm)
    if lesions:
        n_les = int(rng.integers(*v.lesion_count))
        deep_wm = wm > 0.9
        peri = np.flatnonzero(deep_wm & (dist_vent > 1.5) & (dist_vent < 7.0))
        deep = np.flatnonzero(deep_wm & (dist_vent >= 7.0))
        for k in range(n_les):
            pool = peri if (k % 2 == 0 and peri.size) else deep
            c = np.array(np.unravel_index(pool[rng.integers(pool.size)], shape))
            axes = np.sort(rng.uniform(*v.lesion_axis_mm, 3))
            axes[-1] *= rng.uniform(1.0, 2.0)  # ovoid, elongated
            axes = np.maximum(axes, min_lesion_axis)
            box, blob = _ellipsoid_blob(rng, shape, c, axes, step)
            les[box] = np.maximum(les[box], blob * (wm[box] + les[box]))
        les = np.minimum(les, wm + les)
        wm_new = np.clip(wm - les, 0.0, 1.0)
        les = wm - wm_new  # only WM turns into lesion
        wm = wm_new
    info['lesion_volume_ml'] = round(float(les.sum() * step**3 / 1000.0), 3)
    del dist_vent

    pad = [(int(round(a / step)), int(round(b / step))) for a, b in PAD_MM]
    aff = affine.copy()
    aff[:3, 3] -= np.array([p[0] for p in pad]) * step
    out = {
        k: np.pad(np.clip(v, 0, 1), pad).astype(np.float32)
        for k, v in (('csf', csf), ('gm', gm), ('wm', wm), ('lesion', les))
    }
    return Anatomy(
        affine=aff,
        step=float(step),
        maps=out,
        brain=np.pad(brain, pad).astype(np.float32),
        info=info,
    )
