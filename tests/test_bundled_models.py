"""The pretrained models shipped in harmonize_bids/data/models."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from harmonize_bids.cli.run import main
from harmonize_bids.cli.train import parse_args as parse_train_args
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


def _readme_commands() -> list[list[str]]:
    """The harmonize-bids-train commands of the README, split into words."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    return [
        shlex.split(c.replace("\\\n", " "))
        for c in re.findall(r"harmonize-bids-train .*?(?:\\\n.*?)*\n", readme)
    ]


def _readme_train_commands() -> dict[str, list[str]]:
    """The training commands of the README, keyed by the model folder they write."""
    return {c[2]: c[1:] for c in _readme_commands() if len(c) > 2 and "--calibrate" not in c}


def _check_recipe(options, meta: dict) -> None:
    assert options.iterations == meta["iterations"]
    training = meta["training"]
    assert options.lr_decay_iterations == training.get("lr_decay_iterations", 0)
    assert (options.batch_size, options.seed, options.lr) == (
        training["batch_size"],
        training["seed"],
        training["lr"],
    )
    assert [options.patch_size] * 2 == training["patch"]
    lesion_weight = options.lesion_weight if options.lesion_masks else 1.0
    assert lesion_weight == training.get("lesion_weight", 1.0)


@pytest.mark.parametrize(("source", "target"), DIRECTIONS)
def test_readme_rebuild_command_matches_the_bundled_model(source, target):
    folder = bundled_model_dir(source, target)
    commands = _readme_train_commands()
    options = parse_train_args(commands[f"harmonize_bids/data/models/{folder.name}"])
    meta = json.loads((folder / "model.json").read_text())
    assert (options.source_field, options.target_field) == (source, target)
    _check_recipe(options, meta)
    # a fine-tuned model: the README also gives the command that trained its start
    while "fine_tuned_from" in meta:
        assert options.init_from is not None
        meta = meta["fine_tuned_from"]
        options = parse_train_args(commands[str(options.init_from)])
        assert (options.source_field, options.target_field) == (source, target)
        _check_recipe(options, meta)
        meta = {k: v for k, v in meta.items() if k != "fine_tuned_from" or v}
    assert options.init_from is None


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


@pytest.mark.parametrize(("source", "target"), DIRECTIONS)
def test_readme_calibration_command_matches_the_bundled_calibration(source, target):
    folder = bundled_model_dir(source, target)
    model = load_model_folder(folder, source_field=source, target_field=target)
    calibrate = [
        c
        for c in _readme_commands()
        if "--calibrate" in c and c[2].endswith(f"models/{folder.name}")
    ]
    if model.calibration is None:
        assert not calibrate
        return
    (command,) = calibrate
    options = parse_train_args(command[1:])
    record = model.meta["output_calibration"]
    assert (options.source_field, options.target_field) == (source, target)
    assert options.calibrate and str(options.bids_dir) == record["dataset"]
    assert model.calibration.pairs == record["pairs"] == len(record["subjects"])
    assert not set(record["phantom_seeds"]) & set(model.meta["benchmark"]["heldout_seeds"])
