"""The pretrained models shipped in harmonize_bids/data/models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harmonize_bids.choices import Direction
from harmonize_bids.cli.run import main
from harmonize_bids.model.folder import BUNDLED_MODELS, bundled_model_dir, load_model_folder

DIRECTIONS = [(1.5, 3.0), (3.0, 1.5)]
MAX_TOTAL_BYTES = 50 * 1024 * 1024
QUALITY_RECORD = Path(__file__).resolve().parents[1] / "docs" / "quality.json"


@pytest.mark.parametrize(("source", "target"), DIRECTIONS)
def test_bundled_model_loads_and_documents_itself(source, target):
    folder = bundled_model_dir(source, target)
    assert folder is not None, f"no bundled {source:g}T->{target:g}T model"
    model = load_model_folder(folder, source_field=source, target_field=target)  # checks SHA
    meta = model.meta
    assert re.fullmatch(r"[1-9]\d*\.\d+\.\d+", meta["version"]), meta["version"]
    assert meta["training_data"]["pairs"] >= 12
    assert meta["training_data"]["lesion_masks"] > 0
    assert meta["iterations"] > 0 and meta["wall_time_s"] > 0
    # reference-conditioned, with a default reference and the domain the checks use
    assert model.reference_channel and model.reference is not None
    assert {"csf_wm", "gm_wm"} <= set(meta["domain"]["source"])
    # no per-phantom sampler ending or output calibration
    assert "dpm_last_timestep" not in model.scheduler_config
    assert not (folder / "calibration.json").exists()


@pytest.mark.parametrize(("source", "target"), DIRECTIONS)
def test_benchmark_record_measures_the_shipped_weights_on_sets_training_never_saw(source, target):
    """docs/quality.json (written by benchmarks/quality.py) holds an in-distribution and
    an unseen-scanner record of these weights, on phantoms the model was not trained on."""
    model = load_model_folder(
        bundled_model_dir(source, target), source_field=source, target_field=target
    )
    records = json.loads(QUALITY_RECORD.read_text())
    slug = Direction(source, target).label.replace("->", "-to-")
    mine = {
        key.split(" ")[0]: record
        for key, record in records.items()
        if key.endswith(slug) and record["model"]["weights_sha256"] == model.weights_sha256
    }
    assert any(name.startswith("unseen") for name in mine), sorted(records)
    assert any(not name.startswith("unseen") for name in mine), sorted(records)
    trained_on = set(model.meta["training_data"]["phantoms"])
    for name, record in mine.items():
        assert record["phantom"] not in trained_on, name
        assert record["subjects"] >= 6
        for method in ("Original", "Histogram matching", "Nyul", record["default"]):
            assert record["methods"][method]["mse"] > 0


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
