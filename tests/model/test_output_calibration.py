"""Output calibration: fitting, applying, and its place in a model folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harmonize_bids.interfaces.harmonize import harmonize_anchored
from harmonize_bids.model import ModelFolderError, load_model_folder, new_model, save_model_folder
from harmonize_bids.model.output_calibration import (
    GRID,
    OutputCalibration,
    fit_calibration,
)
from harmonize_bids.provenance import harmonization_record

from .conftest import phantom_pair


def _brain(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.zeros((12, 14, 10), bool)
    mask[2:-2, 2:-2, 2:-2] = True
    return np.where(mask, rng.uniform(0.1, 0.9, mask.shape), 0.0).astype(np.float32), mask


def test_fit_recovers_a_monotone_intensity_map():
    # every output is its target passed through the same dark-end distortion
    pairs = []
    for seed in range(3):
        target, mask = _brain(seed)
        output = np.where(mask, target**1.2, 0.0).astype(np.float32)
        pairs.append((output, target, mask))
    calibration = fit_calibration(pairs)
    output, target, mask = pairs[0]
    assert calibration.pairs == 3
    assert np.abs(calibration.apply(output, mask) - target)[mask].max() < 0.01
    assert np.abs(output - target)[mask].max() > 0.05  # the distortion was there to undo
    assert (calibration.apply(output, mask)[~mask] == 0).all()


def test_fit_needs_three_pairs():
    target, mask = _brain(0)
    with pytest.raises(ValueError, match="at least 3 pairs"):
        fit_calibration([(target, target, mask)] * 2)


def test_a_flat_fitted_map_survives_its_json_rounding():
    # outputs brighter than any target: the map is flat at the top after fitting
    pairs = []
    for seed in range(3):
        target, mask = _brain(seed)
        pairs.append(
            (
                np.where(mask, 0.5 + target / 2, 0.0).astype(np.float32),
                np.where(mask, target / 3, 0.0).astype(np.float32),
                mask,
            )
        )
    fitted = fit_calibration(pairs)
    again = OutputCalibration.from_json(json.loads(json.dumps(fitted.to_json())))
    assert np.allclose(again.correction, fitted.correction, atol=1e-6)


def test_json_round_trip_and_refusals():
    calibration = OutputCalibration(0.02 * np.sin(np.pi * GRID), 4)
    again = OutputCalibration.from_json(json.loads(json.dumps(calibration.to_json())))
    assert again.pairs == 4 and np.allclose(again.correction, calibration.correction, atol=1e-6)
    with pytest.raises(ValueError, match="not monotone"):
        OutputCalibration.from_json({**calibration.to_json(), "correction": (-2 * GRID).tolist()})
    with pytest.raises(ValueError, match="grid has 3 points"):
        OutputCalibration.from_json({**calibration.to_json(), "grid": [0, 0.5, 1]})


def test_model_folder_carries_the_calibration_into_harmonization(tmp_path):
    model = new_model("sloppy", seed=1, source_field=1.5, target_field=3.0)
    source, _, mask = phantom_pair()
    plain = harmonize_anchored(model, source, mask, steps=2, seed=0)
    model.calibration = OutputCalibration(np.full(GRID.shape, 0.05), 3)
    path = save_model_folder(model, tmp_path / "model")
    loaded = load_model_folder(path)
    assert loaded.calibration.pairs == 3
    calibrated = harmonize_anchored(loaded, source, mask, steps=2, seed=0)
    assert np.allclose(calibrated[mask], np.clip(plain[mask] + 0.05, 0, 1), atol=1e-5)
    record = harmonization_record(
        model=loaded, sampler="dpm", steps=2, ensemble=1, seed=0, device="cpu"
    )["OutputCalibration"]
    assert record == {
        "Method": "mean quantile correction",
        "Pairs": 3,
        "SHA256": loaded.calibration.sha256,
    }
    (path / "calibration.json").write_text(json.dumps({"grid": [0, 1]}))
    with pytest.raises(ModelFolderError, match="calibration.json cannot be used"):
        load_model_folder(path)
