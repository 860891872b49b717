"""The quantile map: a monotone map fitted on pairs; a model folder keeps one as its output
calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bidsfactory import tiny_model

from harmonize_bids.model.folder import (
    FORMAT_VERSION,
    PLAIN_FORMAT_VERSION,
    ModelFolderError,
    check_model_folder,
    load_model_folder,
    save_model_folder,
)
from harmonize_bids.model.quantile_map import GRID, QuantileMap, fit_quantile_map


def _brain(seed: int, shape=(12, 24, 24)) -> tuple[np.ndarray, np.ndarray]:
    """CSF, GM and WM in random proportions, with noise, and a mask with a rim outside."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet([4, 6, 5])
    labels = rng.choice(3, size=shape, p=weights)
    image = np.array([0.3, 0.55, 0.8])[labels] + rng.normal(0, 0.03, shape)
    mask = np.ones(shape, bool)
    mask[:, :2] = False
    return np.where(mask, image, 0).astype(np.float32), mask


def _darker_grey(image: np.ndarray) -> np.ndarray:
    """A monotone contrast change: mid intensities pulled down by up to 0.06."""
    return np.clip(image - 0.06 * np.sin(np.pi * np.clip(image, 0, 1)) ** 2, 0, 1)


def test_a_shared_monotone_shift_is_learnt_on_pairs_and_removed_on_another_subject():
    pairs = []
    for seed in (1, 2):
        target, mask = _brain(seed)
        pairs.append((_darker_grey(target), target, mask))
    calibration = fit_quantile_map(pairs, ["sub-01", "sub-02"])
    target, mask = _brain(7)  # other tissue proportions than either pair
    output = _darker_grey(target)
    fixed = calibration.apply(output, mask)
    assert np.abs(fixed - target)[mask].mean() < 0.25 * np.abs(output - target)[mask].mean()
    assert np.all(fixed[~mask] == 0)
    assert np.all(np.diff(GRID + calibration.correction) >= 0)


def test_an_output_equal_to_its_target_needs_no_correction():
    target, mask = _brain(3)
    calibration = fit_quantile_map([(target, target, mask)], ["sub-01"])
    assert np.abs(calibration.correction[(GRID > 0.25) & (GRID < 0.85)]).max() < 0.01


def test_fit_needs_a_pair():
    with pytest.raises(ValueError, match="at least one pair"):
        fit_quantile_map([], [])


def test_the_folder_keeps_the_calibration_and_says_older_releases_cannot_read_it(tmp_path):
    path = tiny_model(tmp_path)
    assert json.loads((path / "model.json").read_text())["format_version"] == PLAIN_FORMAT_VERSION
    model = load_model_folder(path)
    assert model.calibration is None
    target, mask = _brain(4)
    model.calibration = fit_quantile_map([(_darker_grey(target), target, mask)], ["sub-04"])
    save_model_folder(model, path)
    assert json.loads((path / "model.json").read_text())["format_version"] == FORMAT_VERSION
    again = load_model_folder(path)
    assert again.calibration.subjects == ("sub-04",)
    assert again.calibration.sha256 == model.calibration.sha256
    assert np.allclose(again.calibration.correction, model.calibration.correction, atol=1e-6)


def test_a_broken_calibration_file_is_refused_with_its_name(tmp_path):
    path = tiny_model(tmp_path)
    zigzag = QuantileMap(np.where(np.arange(GRID.size) % 2, 0.05, -0.05), ("sub-01",))
    (path / "calibration.json").write_text(json.dumps(zigzag.to_json()))
    for check in (load_model_folder, check_model_folder):
        with pytest.raises(ModelFolderError, match=r"calibration\.json.*not monotone"):
            check(path)
    (path / "calibration.json").write_text('{"grid": [0, 1]}')
    with pytest.raises(ModelFolderError, match=r"calibration\.json.*Delete it"):
        load_model_folder(path)
