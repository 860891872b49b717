"""Model folder I/O: round trip, tampering, versions, direction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harmonize_bids.model import (
    FORMAT_VERSION,
    PLAIN_FORMAT_VERSION,
    ModelFolderError,
    load_model_folder,
    new_model,
    sample_volume,
    save_model_folder,
)

from .conftest import phantom_pair


@pytest.fixture()
def folder(tmp_path):
    model = new_model("sloppy", seed=1, source_field=1.5, target_field=3.0)
    return model, save_model_folder(model, tmp_path / "1p5T-to-3T")


def test_folder_contents(folder):
    _, path = folder
    names = {p.name for p in path.iterdir()}
    assert names == {
        "config.json",
        "scheduler_config.json",
        "preprocessing.json",
        "model.json",
        "model.safetensors",
    }
    meta = json.loads((path / "model.json").read_text())
    assert meta["direction"] == "1.5T->3T" and meta["format_version"] == PLAIN_FORMAT_VERSION
    assert len(meta["weights_sha256"]) == 64
    pre = json.loads((path / "preprocessing.json").read_text())
    assert pre["slice_axis"] == 0 and pre["orientation"] == "RAS"
    sched = json.loads((path / "scheduler_config.json").read_text())
    assert sched["num_train_timesteps"] == 1000 and sched["beta_schedule"] == "linear"


def test_save_load_same_outputs(folder):
    model, path = folder
    loaded = load_model_folder(path, source_field=1.5, target_field=3.0)
    source, _, mask = phantom_pair()
    kwargs = dict(steps=4, seed=2, device="cpu", progress=False)
    assert np.array_equal(
        sample_volume(model, source, mask, **kwargs),
        sample_volume(loaded, source, mask, **kwargs),
    )


def test_overwrite_is_atomic_replace(folder, tmp_path):
    model, path = folder
    save_model_folder(model, path, meta={"name": "second"})
    assert load_model_folder(path).meta["name"] == "second"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp leftovers


def test_tampered_weights_refused(folder):
    _, path = folder
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match="SHA-256"):
        load_model_folder(path)


def test_newer_format_refused(folder):
    _, path = folder
    meta = json.loads((path / "model.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFolderError, match="upgrade harmonize_bids"):
        load_model_folder(path)


def test_wrong_direction_refused(folder):
    _, path = folder
    with pytest.raises(ModelFolderError, match=r"1\.5T->3T model but 3T->1\.5T"):
        load_model_folder(path, source_field=3.0, target_field=1.5)
    assert load_model_folder(path, target_field=3.0).direction == "1.5T->3T"


def test_missing_file_refused(folder):
    _, path = folder
    (path / "config.json").unlink()
    with pytest.raises(ModelFolderError, match="config.json is missing"):
        load_model_folder(path)


def test_bad_dpm_ending_refused(folder):
    _, path = folder
    schedule = json.loads((path / "scheduler_config.json").read_text())
    (path / "scheduler_config.json").write_text(json.dumps({**schedule, "dpm_last_timestep": 20}))
    assert load_model_folder(path).scheduler_config["dpm_last_timestep"] == 20
    (path / "scheduler_config.json").write_text(json.dumps({**schedule, "dpm_last_timestep": -5}))
    with pytest.raises(ModelFolderError, match="scheduler_config.json has dpm_last_timestep -5"):
        load_model_folder(path)


def test_check_without_loading_refuses_weights_that_do_not_fit(tmp_path):
    import json

    from harmonize_bids.model.folder import check_model_folder

    folder = save_model_folder(new_model("sloppy", seed=1), tmp_path / "m")
    assert check_model_folder(folder, source_field=1.5)["direction"] == "1.5T->3T"
    config = json.loads((folder / "config.json").read_text())
    config["block_out_channels"] = [8, 8]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="does not fit"):
        check_model_folder(folder)
