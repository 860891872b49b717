"""The harmonized output is put on the preprocessed images' white-matter scale."""

from __future__ import annotations

import numpy as np
import pytest
from bidsfactory import tiny_model

import harmonize_bids.model.sampling as sampling
from harmonize_bids.image import white_matter_level
from harmonize_bids.inference import InferenceSettings, harmonize
from harmonize_bids.model.folder import load_model_folder


def test_a_dark_sample_is_put_back_on_the_white_matter_scale(tmp_path, monkeypatch):
    model = load_model_folder(tiny_model(tmp_path))
    level = model.preprocessing["white_matter_level"]
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=(8, 30, 30), p=[0.25, 0.4, 0.35])
    volume = np.array([0.3, 0.6, level])[labels] + rng.normal(0, 0.02, labels.shape)
    mask = np.ones(labels.shape, bool)
    mask[:, :3] = False
    volume = np.where(mask, volume, 0).astype(np.float32)
    calls = []

    def dark_sampler(model_, volume_, mask_, **kwargs):  # white matter 4 % too dark
        calls.append(kwargs)
        return volume_ * np.float32(0.96)

    monkeypatch.setattr(sampling, "sample_volume", dark_sampler)
    settings = InferenceSettings.resolve(model, steps=3, seed=5, device="cpu")
    out = harmonize(model, volume, mask, settings).image
    assert [(call["steps"], call["seed"]) for call in calls] == [(3, 5)]
    assert white_matter_level(volume * 0.96, mask) == pytest.approx(0.96 * level, abs=0.003)
    assert white_matter_level(out, mask) == pytest.approx(level, abs=0.003)
    assert out[(labels == 2) & mask].mean() == pytest.approx(level, abs=0.005)
    assert np.all(out[~mask] == 0) and out.max() <= 1


def _three_tissues(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """CSF, GM and WM voxels at random (no noise) and an all-brain mask."""
    labels = np.random.default_rng(seed).choice(3, size=shape, p=[0.25, 0.4, 0.35])
    return np.array([0.2, 0.4, 0.6], np.float32)[labels], np.ones(shape, bool)


def test_planes_are_sampled_across_their_axes_and_averaged(tmp_path, monkeypatch):
    model = load_model_folder(tiny_model(tmp_path))
    volume, mask = _three_tissues((8, 20, 20), seed=1)
    slab = np.zeros(volume.shape, bool)
    slab[:, :, :4] = True
    axes = []

    def by_axis(model_, volume_, mask_, *, axis, **kwargs):  # axial slicing darkens the slab
        axes.append(axis)
        return np.where(slab & (axis == 2), 0, volume_)

    monkeypatch.setattr(sampling, "sample_volume", by_axis)
    settings = InferenceSettings.resolve(
        model, slice_planes=["axial", "sagittal"], steps=2, device="cpu"
    )
    assert settings.slice_planes == ("sagittal", "axial")  # RAS axis order
    result = harmonize(model, volume, mask, settings)
    assert axes == [0, 2]
    assert result.provenance["SlicePlanes"] == ["sagittal", "axial"]
    gain = result.image / volume  # one white-matter anchoring gain; half of it in the slab
    assert np.allclose(gain[~slab], gain[~slab].mean(), rtol=1e-5)
    assert np.allclose(gain[slab], gain[~slab].mean() / 2, rtol=1e-5)
    coronal = InferenceSettings.resolve(model, slice_planes=["coronal"], steps=2, device="cpu")
    harmonize(model, volume, mask, coronal)
    assert axes[2:] == [1]


def test_an_unknown_slice_plane_is_refused(tmp_path):
    model = load_model_folder(tiny_model(tmp_path))
    with pytest.raises(ValueError, match="oblique"):
        InferenceSettings.resolve(model, slice_planes=["sagittal", "oblique"])


def test_slices_are_evened_out_across_each_plane_when_asked(tmp_path, monkeypatch):
    from harmonize_bids.qc.metrics import through_plane_consistency

    model = load_model_folder(tiny_model(tmp_path))
    volume, mask = _three_tissues((16, 24, 24), seed=2)
    gains = 1 + 0.1 * (np.arange(16) % 2)

    def striped(model_, volume_, mask_, *, axis, **kwargs):  # brighter odd sagittal slices
        return volume_ * gains[:, None, None].astype(np.float32)

    monkeypatch.setattr(sampling, "sample_volume", striped)
    outputs = {}
    for even_out in (False, True):
        settings = InferenceSettings.resolve(model, even_out_slices=even_out, device="cpu")
        result = harmonize(model, volume, mask, settings)
        assert result.provenance["SlicesEvenedOut"] is even_out
        outputs[even_out] = through_plane_consistency(result.image, mask)
    assert outputs[True] < outputs[False] - 0.05


def test_a_model_folders_output_calibration_is_applied_and_recorded(tmp_path, monkeypatch):
    from harmonize_bids.model.calibration import OutputCalibration
    from harmonize_bids.model.quantile_map import GRID, QuantileMap

    model = load_model_folder(tiny_model(tmp_path))
    volume, mask = _three_tissues((8, 20, 20), seed=3)
    monkeypatch.setattr(sampling, "sample_volume", lambda model_, volume_, mask_, **kw: volume_)
    settings = InferenceSettings.resolve(model, device="cpu")
    plain = harmonize(model, volume, mask, settings)
    assert plain.provenance["OutputCalibration"] is None
    output_map = QuantileMap(np.where(GRID < 0.5, 0.05, 0.0), ("sub-01", "sub-02"))
    model.calibration = OutputCalibration(output_map, 0.5)
    calibrated = harmonize(model, volume, mask, settings)
    mapped = np.where(plain.image < 0.5, plain.image + 0.05, plain.image)
    # half of the mapped output's change to the source
    halfway = np.where(mask, (volume + mapped) / 2, 0)
    assert np.allclose(calibrated.image, halfway, atol=1e-5)
    record = calibrated.provenance["OutputCalibration"]
    assert record == {
        "SHA256": model.calibration.sha256,
        "FittedOn": ["sub-01", "sub-02"],
        "ChangeWeight": 0.5,
    }
