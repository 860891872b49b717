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
