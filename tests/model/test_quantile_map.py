"""The quantile map: a monotone map fitted on pairs; a model folder keeps one, with a change
weight, as its output calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bidsfactory import tiny_model

from harmonize_bids.model.calibration import (
    OutputCalibration,
    change_weight,
    fit_output_calibration,
)
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
    output_map = fit_quantile_map([(_darker_grey(target), target, mask)], ["sub-04"])
    model.calibration = OutputCalibration(output_map, 0.625)
    save_model_folder(model, path)
    assert json.loads((path / "model.json").read_text())["format_version"] == FORMAT_VERSION
    again = load_model_folder(path)
    assert again.calibration.subjects == ("sub-04",)
    assert again.calibration.change_weight == 0.625
    assert again.calibration.sha256 == model.calibration.sha256
    assert np.allclose(again.calibration.output_map.correction, output_map.correction, atol=1e-6)


def test_a_calibration_written_before_the_change_weight_keeps_the_whole_change(tmp_path):
    target, mask = _brain(4)
    output_map = fit_quantile_map([(_darker_grey(target), target, mask)], ["sub-04"])
    calibration = OutputCalibration.from_json(output_map.to_json())
    assert calibration.change_weight == 1.0
    output = _darker_grey(target)
    whole = output_map.apply(output, mask)
    assert np.allclose(calibration.apply(output, target, mask), whole, atol=1e-5)


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
    flat = QuantileMap(np.zeros(GRID.size), ("sub-01",))
    (path / "calibration.json").write_text(json.dumps({**flat.to_json(), "change_weight": 1.5}))
    with pytest.raises(ModelFolderError, match=r"calibration\.json.*change_weight"):
        load_model_folder(path)


def _overshooting(source: np.ndarray, target: np.ndarray, seed: int) -> np.ndarray:
    """A model output that makes the right change and adds its own error of the same size."""
    error = np.random.default_rng(seed).normal(0, 1, source.shape)
    return (target + np.abs(target - source).mean() * error).astype(np.float32)


def test_the_change_weight_learnt_on_pairs_lowers_the_error_on_another_subject():
    pairs = []
    for seed in (1, 2):
        target, mask = _brain(seed)
        source = _darker_grey(target)
        pairs.append((_overshooting(source, target, seed), source, target, mask))
    calibration = fit_output_calibration(pairs, ["sub-01", "sub-02"])
    assert 0.2 < calibration.change_weight < 0.8
    target, mask = _brain(7)
    source = _darker_grey(target)
    output = _overshooting(source, target, 7)
    moved = calibration.apply(output, source, mask)
    whole = calibration.output_map.apply(output, mask)
    assert ((moved - target)[mask] ** 2).mean() < 0.8 * ((whole - target)[mask] ** 2).mean()
    assert np.all(moved[~mask] == 0)


def test_an_output_that_makes_exactly_the_targets_change_keeps_all_of_it():
    target, mask = _brain(5)
    source = _darker_grey(target)
    assert change_weight([target], [source], [target], [mask]) == pytest.approx(1.0)
    assert change_weight([source], [source], [target], [mask]) == 1.0  # no change at all
