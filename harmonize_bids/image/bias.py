"""Step 3: N4 bias-field correction (ANTs) inside the brain mask."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ._io import PathT, check_same_grid, load_image, save_like, to_ants

LOGGER = logging.getLogger(__name__)


def n4_correct(in_file: PathT, mask_file: PathT | None, out_file: PathT, *,
               sloppy: bool = False) -> Path:
    """N4-correct ``in_file``, fitting the bias field inside ``mask_file``.

    B-spline distance 200 mm, shrink 4 (sMRIPrep-like); ``sloppy`` halves the
    iterations and fits at 3 instead of 4 resolution levels. Voxels outside the mask
    are corrected with the extrapolated field. Output on the exact input grid, float32.
    """
    import ants

    img, data = load_image(in_file)
    image = to_ants(data, img.affine)
    mask = None
    if mask_file is not None:
        mask_img, mask_data = load_image(mask_file)
        check_same_grid(mask_img, img, mask_file, in_file)
        mask = to_ants((mask_data > 0).astype(np.float32), img.affine)
    iters = [25, 25, 25] if sloppy else [50, 50, 50, 50]
    # N4 needs positive intensities; the stripped background is 0 and stays 0 via the mask.
    shift = float(min(data.min(), 0.0))
    if shift < 0:
        image = image - shift
    corrected = ants.n4_bias_field_correction(
        image, mask=mask, shrink_factor=4, spline_param=200,
        convergence={'iters': iters, 'tol': 1e-7},
    )
    out = corrected.numpy() + shift
    if mask is not None:
        out = np.where(mask_data > 0, out, data)  # keep the background as it was
    LOGGER.debug('%s: N4 done (%s)', in_file, 'sloppy' if sloppy else 'full')
    return save_like(out, img, out_file)
