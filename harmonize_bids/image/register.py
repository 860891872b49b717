"""A travelling subject's target-field image registered to its source-field image.

Rigid by default: the two scans show one head, and a deformable registration across
contrasts (SyN, mutual information) moves tissue boundaries to make the contrasts agree,
misaligning the anatomy it should align (docs/speed.md has the measurement).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from ._io import PathT, check_same_grid, crop_box, load_image, save_like, to_ants

LOGGER = logging.getLogger(__name__)
CROP_MARGIN = 10  # voxels kept around the nonzero bounding box during estimation
#: Our registration names -> ANTsPy's ``type_of_transform``.
ANTS_TRANSFORMS = {'rigid': 'Rigid', 'syn': 'SyN'}


@contextlib.contextmanager
def _ants_seed(seed: int):
    """Temporarily set the seed ANTsPy passes to antsRegistration (``--random-seed``)."""
    import ants

    old = ants.config._random_seed
    ants.config._random_seed = int(seed)
    try:
        yield
    finally:
        ants.config._random_seed = old


def register_arrays(
    fixed: np.ndarray,
    moving: np.ndarray,
    fixed_affine: np.ndarray,
    moving_affine: np.ndarray,
    *,
    fixed_mask: np.ndarray | None = None,
    transform: str = 'rigid',
    sloppy: bool = False,
    seed: int = 1,
) -> np.ndarray:
    """Register ``moving`` to ``fixed`` with Mattes mutual information.

    ``transform``: ``'rigid'``, or ``'syn'`` (affine then SyN, the paper's). Returns the
    moving image resampled (linear) into the fixed grid. ``sloppy`` runs a rigid
    registration with fewer iterations and none at full resolution, whatever
    ``transform``. ``seed`` (>= 1; ANTs treats 0 as "seed from the clock") fixes the
    metric sampling, so results are bitwise identical for a fixed ITK thread count.
    """
    import ants

    if seed < 1:
        raise ValueError(f'seed must be >= 1 (ANTs treats 0 as unseeded), got {seed}')
    if transform not in ANTS_TRANSFORMS:
        raise ValueError(f'transform must be one of {sorted(ANTS_TRANSFORMS)}, got {transform!r}')

    # Estimate on the nonzero bounding boxes (same world coordinates, far fewer voxels),
    # then resample the full moving image onto the full fixed grid.
    fbox, fbox_affine = crop_box(fixed != 0, fixed_affine, CROP_MARGIN)
    mbox, mbox_affine = crop_box(moving != 0, moving_affine, CROP_MARGIN)
    fixed_ai = to_ants(fixed[fbox], fbox_affine)
    moving_ai = to_ants(moving[mbox], mbox_affine)
    mask_ai = None
    if fixed_mask is not None:
        mask_ai = to_ants((fixed_mask[fbox] > 0).astype(np.float32), fbox_affine)
    kwargs = dict(aff_iterations=(500, 250, 50, 0)) if sloppy else {}
    with _ants_seed(seed):
        reg = ants.registration(
            fixed_ai,
            moving_ai,
            type_of_transform='Rigid' if sloppy else ANTS_TRANSFORMS[transform],
            mask=mask_ai,
            aff_metric='mattes',
            syn_metric='mattes',
            **kwargs,
        )
    out = ants.apply_transforms(
        to_ants(fixed, fixed_affine),
        to_ants(moving, moving_affine),
        reg['fwdtransforms'],
        interpolator='linear',
    )
    for tfm in {*reg['fwdtransforms'], *reg['invtransforms']}:  # ANTsPy leaves them in /tmp
        Path(tfm).unlink(missing_ok=True)
    return out.numpy().astype(np.float32)


def register_pair(
    fixed_file: PathT,
    moving_file: PathT,
    out_file: PathT,
    *,
    fixed_mask: PathT | None = None,
    transform: str = 'rigid',
    sloppy: bool = False,
    seed: int = 1,
) -> Path:
    """File variant of :func:`register_arrays`; output written on the fixed grid."""
    fixed_img, fixed = load_image(fixed_file)
    moving_img, moving = load_image(moving_file)
    mask = None
    if fixed_mask is not None:
        mask_img, mask = load_image(fixed_mask)
        check_same_grid(mask_img, fixed_img, fixed_mask, fixed_file)
    out = register_arrays(
        fixed,
        moving,
        fixed_img.affine,
        moving_img.affine,
        fixed_mask=mask,
        transform=transform,
        sloppy=sloppy,
        seed=seed,
    )
    LOGGER.debug('%s -> %s registered', moving_file, fixed_file)
    return save_like(out, fixed_img, out_file)


def resample_pair(fixed_file: PathT, moving_file: PathT, out_file: PathT) -> Path:
    """``moving_file`` resampled (linear) onto the grid of ``fixed_file`` by scanner
    coordinates alone: for pairs acquired in one head position or aligned beforehand."""
    from nibabel.processing import resample_from_to

    fixed_img, _ = load_image(fixed_file)
    moving_img, _ = load_image(moving_file)
    out = resample_from_to(moving_img, fixed_img, order=1, mode='constant', cval=0.0)
    return save_like(np.asarray(out.dataobj, dtype=np.float32), fixed_img, out_file)
