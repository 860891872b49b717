"""deepbet on a coarse synthetic head (ICBM152 brain + skull/scalp shells), non-RAS storage."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from harmonize_bids.image import resample_to_1mm, skull_strip

pytest.importorskip('deepbet')
TEMPLATE = 'mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz'


@pytest.mark.slow
@pytest.mark.parametrize('sloppy', [False, True])
def test_deepbet_mask_on_coarse_lps_head(tmp_path, sloppy):
    import nilearn

    src = Path(nilearn.__file__).parent / 'datasets' / 'data' / TEMPLATE
    coarse = nib.load(resample_to_1mm(src, tmp_path / 't.nii.gz', spacing=3.0))
    brain = np.pad(coarse.get_fdata(), 5)
    truth = ndimage.binary_fill_holes(brain > 20)
    dist = ndimage.distance_transform_edt(~truth) * 3.0  # mm
    head = brain * truth + 40 * ((dist > 0) & (dist <= 3)) + 15 * ((dist > 3) & (dist <= 9))
    head = head + 110 * ((dist > 9) & (dist <= 12)) + 210 * ((dist > 12) & (dist <= 15))
    affine = coarse.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.full(3, 5)
    # store as LPS to check that the mask comes back on the input grid
    flip = nib.orientations.axcodes2ornt(('L', 'P', 'S'))
    lps = nib.Nifti1Image(head.astype(np.float32), affine).as_reoriented(flip)
    lps.to_filename(tmp_path / 'head.nii.gz')
    _, mask_file = skull_strip(tmp_path / 'head.nii.gz', tmp_path, method='deepbet', sloppy=sloppy)
    mask_img = nib.load(mask_file)
    assert mask_img.shape == lps.shape and np.allclose(mask_img.affine, lps.affine)
    truth_lps = nib.orientations.apply_orientation(truth, flip)
    mask = mask_img.get_fdata() > 0
    dice = 2 * (mask & truth_lps).sum() / (mask.sum() + truth_lps.sum())
    assert dice > 0.9
