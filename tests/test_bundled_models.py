"""The pretrained models shipped in harmonize_bids/data/models."""

from __future__ import annotations

import json
import re

import pytest

from harmonize_bids.cli.run import main
from harmonize_bids.model.folder import BUNDLED_MODELS, bundled_model_dir, load_model_folder
from harmonize_bids.model.schedulers import sampling_scheduler

DIRECTIONS = [(1.5, 3.0), (3.0, 1.5)]
MAX_TOTAL_BYTES = 50 * 1024 * 1024


@pytest.mark.parametrize(("source", "target"), DIRECTIONS)
def test_bundled_model_loads_and_documents_itself(source, target):
    folder = bundled_model_dir(source, target)
    assert folder is not None, f"no bundled {source:g}T->{target:g}T model"
    model = load_model_folder(folder, source_field=source, target_field=target)  # checks SHA
    meta = model.meta
    phantom = meta["training_data"]["phantom"]
    assert meta["training_data"]["n_subjects"] >= 6
    assert 0 < phantom["n_with_lesions"] < meta["training_data"]["n_subjects"]
    assert meta["iterations"] > 0 and meta["wall_time_s"] > 0
    benchmark = meta["benchmark"]
    assert not set(benchmark["heldout_seeds"]) & set(phantom["dataset_seeds"])
    assert benchmark["subjects"] >= 6
    for method in ("Original", "Histogram matching", "Nyul", benchmark["default"]):
        assert benchmark["methods"][method]["mse"] > 0


@pytest.mark.parametrize(("source", "target"), DIRECTIONS)
def test_benchmark_record_was_measured_with_the_shipped_schedule(source, target):
    """Changing scheduler_config.json (e.g. dpm_last_timestep) needs a new benchmark record."""
    model = load_model_folder(
        bundled_model_dir(source, target), source_field=source, target_field=target
    )
    for name, recorded in model.meta["benchmark"]["timesteps"].items():
        sampler, steps = re.fullmatch(r"Ours \((\w+), (\d+) steps\)", name).groups()
        scheduler = sampling_scheduler(model.scheduler_config, sampler)
        scheduler.set_timesteps(int(steps))
        assert scheduler.timesteps.tolist() == recorded, name


@pytest.mark.parametrize(("source", "target"), DIRECTIONS)
def test_benchmark_record_was_measured_with_the_shipped_calibration(source, target):
    """Adding or changing calibration.json needs a new benchmark record."""
    model = load_model_folder(
        bundled_model_dir(source, target), source_field=source, target_field=target
    )
    shipped = model.calibration and model.calibration.sha256
    assert model.meta["benchmark"].get("calibration_sha256") == shipped


@pytest.mark.parametrize(("source", "target"), DIRECTIONS)
def test_training_record_adds_up_along_the_fine_tuning_chain(source, target):
    """model.json's totals are the sums over the models it was fine-tuned from."""
    meta = json.loads((bundled_model_dir(source, target) / "model.json").read_text())
    start = meta.get("fine_tuned_from") or {}
    assert meta["wall_time_s"] > 0
    assert meta["wall_time_total_s"] == pytest.approx(
        meta["wall_time_s"] + start.get("wall_time_total_s", 0.0)
    )
    stage = meta
    while stage:
        start = stage.get("fine_tuned_from") or {}
        assert stage["iterations"] > 0
        assert stage["iterations_total"] == stage["iterations"] + start.get("iterations_total", 0)
        assert {"batch_size", "lr", "patch", "seed"} <= set(stage["training"])
        assert stage["training_data"]["pairs"] > 0
        if start:
            assert start["weights_sha256"] != stage["weights_sha256"]
            assert 0 < start["wall_time_total_s"] < stage["wall_time_total_s"]
        stage = start


def test_bundled_models_are_small():
    total = sum(path.stat().st_size for path in BUNDLED_MODELS.rglob("*") if path.is_file())
    assert total <= MAX_TOTAL_BYTES


def test_bundled_model_is_the_default(travelling_dataset, tmp_path, capsys):
    code = main([str(travelling_dataset), str(tmp_path / "out"), "participant", "--dry-run"])
    assert code == 0
    assert f"Model: {bundled_model_dir(1.5, 3.0)}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    meta = json.loads((bundled_model_dir(1.5, 3.0) / "model.json").read_text())
    assert meta["direction"] == "1.5T->3T"
