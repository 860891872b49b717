"""The out-of-domain check: silent on an input like the training data, a warning in the
sidecar for one far outside it and for an output whose contrast left the target's."""

from __future__ import annotations

import numpy as np
import pytest
from bidsfactory import tiny_model

import harmonize_bids.model.sampling as sampling
from harmonize_bids.image.domain import contrast_profile, outside_range, profile_range
from harmonize_bids.image.reference import TargetReference, brain_quantiles
from harmonize_bids.inference import InferenceSettings, harmonize
from harmonize_bids.model.folder import load_model_folder
from harmonize_bids.training import training_domain


def _brain(levels, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=(10, 32, 32), p=[0.2, 0.45, 0.35])
    volume = np.asarray(levels)[labels] + rng.normal(0, 0.02, labels.shape)
    mask = np.ones(labels.shape, bool)
    return np.clip(volume, 0, 1).astype(np.float32), mask


def _model(tmp_path):
    model = load_model_folder(tiny_model(tmp_path))
    training = [
        contrast_profile(*_brain((0.25 + d, 0.6 + d, 0.81), seed=i))
        for i, d in enumerate((-0.03, 0.0, 0.03))
    ]
    model.meta["domain"] = {"source": profile_range(training)}
    return model


def test_in_range_input_and_faithful_output_raise_nothing(tmp_path, monkeypatch):
    model = _model(tmp_path)
    monkeypatch.setattr(sampling, "sample_volume", lambda m, v, k, **_: v)
    volume, mask = _brain((0.25, 0.6, 0.81), seed=7)
    settings = InferenceSettings.resolve(model, steps=2, device="cpu")
    assert harmonize(model, volume, mask, settings).provenance["DomainWarnings"] == []


def test_far_input_and_moved_tissue_classes_are_named(tmp_path, monkeypatch):
    model = _model(tmp_path)
    # an inverted contrast (CSF bright, as in a T2w): far outside the T1w training range
    volume, mask = _brain((0.81, 0.5, 0.3), seed=7)
    profile = contrast_profile(volume, mask)
    assert outside_range(profile, model.meta["domain"]["source"], "the input's")

    # the "model" turns grey matter into white matter
    def merge(m, v, k, **_):
        return np.where(np.abs(v - 0.5) < 0.08, 0.3, v).astype(np.float32)

    monkeypatch.setattr(sampling, "sample_volume", merge)
    settings = InferenceSettings.resolve(model, steps=2, device="cpu")
    reference = TargetReference.pooled(3.0, [brain_quantiles(*_brain((0.3, 0.6, 0.81)))], ["t"])
    result = harmonize(model, volume, mask, settings, reference=reference)
    warnings = result.provenance["DomainWarnings"]
    assert any("outside the model's training range" in w for w in warnings)
    assert any("GM/WM contrast" in w and "far from the target reference" in w for w in warnings)


def test_a_fine_tuned_models_domain_is_its_starting_models_widened_by_the_new_data():
    volume, mask = _brain((0.25, 0.6, 0.81))
    reference = TargetReference.pooled(3.0, [brain_quantiles(volume, mask)], ["t"])
    own = training_domain([(volume, None, mask)], [reference])
    # a starting model trained on lower CSF/WM and a narrow band of GM/WM around this one's
    gm = own["source"]["gm_wm"]
    start = {
        "source": {"csf_wm": [0.05, 0.1], "gm_wm": [gm[0] - 0.01, gm[1] - 0.005]},
        "reference": {"csf_wm": [0.05, 0.1]},
    }
    merged = training_domain([(volume, None, mask)], [reference], start=start)
    assert merged["source"]["csf_wm"] == [0.05, own["source"]["csf_wm"][1]]
    assert merged["source"]["gm_wm"] == [gm[0] - 0.01, gm[1]]
    assert merged["reference"]["csf_wm"] == [0.05, own["reference"]["csf_wm"][1]]
    assert merged["reference"]["gm_wm"] == own["reference"]["gm_wm"]


def test_a_site_mate_of_few_training_subjects_is_in_range():
    # two travelling subjects of one site span a narrow range; a third subject of the
    # same site, a little outside it, is not out of domain
    training = [
        contrast_profile(*_brain((0.25, 0.6 + d, 0.81), seed=i)) for i, d in enumerate((0, 0.005))
    ]
    mate = contrast_profile(*_brain((0.25, 0.625, 0.81), seed=5))
    assert not outside_range(mate, profile_range(training), "the input's")


def test_voxels_clipped_at_the_top_of_the_scale_take_no_tissue_class():
    # a noisy low-contrast scan (grey and white matter overlap) whose brightest 3 % were
    # clipped to 1 by anchoring: fitted as they are, they take the white-matter class
    rng = np.random.default_rng(3)
    shares, levels = [0.36, 0.5, 0.14], np.array([0.366, 0.663, 0.81])
    labels = rng.choice(3, size=(10, 32, 32), p=shares)
    volume = levels[labels] + rng.normal(0, 0.07, labels.shape)
    volume[rng.random(labels.shape) < 0.03] = 1.0
    profile = contrast_profile(volume, np.ones(labels.shape, bool))
    assert profile["csf_wm"] == pytest.approx(levels[0] / levels[2], abs=0.03)
    assert profile["gm_wm"] == pytest.approx(levels[1] / levels[2], abs=0.03)
    found = [profile[key] for key in ("csf_weight", "gm_weight", "wm_weight")]
    assert found == pytest.approx(shares, abs=0.03)
