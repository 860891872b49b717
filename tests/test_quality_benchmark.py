"""benchmarks/quality.py end to end on a tiny phantom (plumbing, not quality)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from bidsfactory import tiny_model

from harmonize_bids.cli.train import main as train_main
from harmonize_bids.phantom import write_phantom_dataset

pytestmark = pytest.mark.slow
BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quality_module():
    return _module("quality")


def test_leave_one_out_residual_of_a_linear_fit():
    calibration = _module("calibration")
    x = np.arange(8.0)
    assert calibration.loo_residual_sd(x[:, None], 2 * x + 1) == pytest.approx(0, abs=1e-9)
    noisy = 2 * x + 1 + np.random.default_rng(0).normal(0, 0.5, 8)
    assert 0.2 < calibration.loo_residual_sd(x[:, None], noisy) < 1.5
    assert np.isnan(calibration.loo_residual_sd(x[:3, None], noisy[:3]))


def test_lesion_contrast_compares_lesions_with_white_matter():
    quality = _quality_module()
    truth = np.zeros((10, 10, 10), np.uint8)
    truth[:5] = 3
    truth[5:] = 4
    image = np.where(truth == 4, 0.6, 0.8)
    assert quality.lesion_contrast(image, truth) == pytest.approx(0.25)
    truth[5:] = 0
    assert np.isnan(quality.lesion_contrast(image, truth))


def test_quality_tables_on_a_tiny_phantom(tmp_path, capsys):
    quality = _quality_module()
    train = write_phantom_dataset(tmp_path / "train", n_subjects=1, seed=11, size="tiny")
    heldout = write_phantom_dataset(
        tmp_path / "heldout", n_subjects=1, seed=12, size="tiny", lesion_fraction=1.0
    )
    for bids, work in ((train, "train_work"), (heldout, "heldout_work")):
        assert (
            train_main(
                [
                    str(bids),
                    str(tmp_path / "unused"),
                    "--source-field",
                    "1.5",
                    "--target-field",
                    "3",
                    "-w",
                    str(tmp_path / work),
                    "--sloppy",
                    "--skull-strip",
                    "none",
                    "--prepare-only",
                    "--skip-bids-validation",
                ]
            )
            == 0
        )
    model = tiny_model(tmp_path)
    model_json = (model / "model.json").read_bytes()
    report, summaries = tmp_path / "quality.md", tmp_path / "quality.json"
    assert (
        quality.main(
            [
                str(heldout),
                str(tmp_path / "heldout_work"),
                "--train-work",
                str(tmp_path / "train_work"),
                "--directions",
                "1.5T-to-3T",
                "--model-1p5T-to-3T",
                str(model),
                "--steps",
                "2",
                "--threads",
                "1",
                "--cache",
                str(tmp_path / "cache"),
                "--output",
                str(report),
                "--json",
                str(summaries),
                "--save-images",
                "--figure",
                str(tmp_path / "example.png"),
                "--figure-subject",
                "sub-01",
            ]
        )
        == 0
    )
    assert (tmp_path / "example.png").stat().st_size > 0
    assert (
        _module("calibration").main(
            [
                str(train),
                str(tmp_path / "train_work"),
                str(heldout),
                str(tmp_path / "heldout_work"),
                "--directions",
                "1.5T-to-3T",
                "--keep-all-pairs",
            ]
        )
        == 0
    )
    rows = [
        line.split("|")[1:-1]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| 1.5T-to-3T")
    ]
    anchoring = tmp_path / "anchoring"
    assert (
        _module("output_anchoring").main(
            [
                str(heldout),
                str(tmp_path / "heldout_work"),
                "--direction",
                "1.5T-to-3T",
                "--model",
                str(model),
                "--steps",
                "2",
                "--cache",
                str(anchoring),
            ]
        )
        == 0
    )
    assert "| sub-01 |" in capsys.readouterr().out
    raw, anchored = (
        json.loads((anchoring / f"1.5T-to-3T_sub-01_{v}2_measured.json").read_text())
        for v in ("raw", "anchored")
    )
    # A tiny random network's output is far off the white-matter level: anchoring moves it.
    assert raw["gmmWM"] != pytest.approx(anchored["gmmWM"], abs=1e-3)
    assert raw["ahd"] > 0 and anchored["ahd"] > 0
    assert (anchoring / "1.5T-to-3T_sub-01_raw2.npy").is_file()
    assert [row[1].strip() for row in rows] == ["CSF", "GM", "WM"]
    assert all(row[2].strip() == "2" for row in rows)  # too few subjects for a fit: NaN
    text = report.read_text()
    for heading in ("Table 1", "Table 2", "Table 3", "Table 4", "Acceptance", "Table 5"):
        assert heading in text
    summary = json.loads(summaries.read_text())["1.5T-to-3T"]
    assert summary["heldout_seeds"] == [12]
    methods = summary["methods"]
    assert set(methods) == {"Original", "Histogram matching", "Nyul", "Ours (dpm, 2 steps)"}
    # Original is the source itself: its through-plane ratio is the source's to the target's.
    assert methods["Original"]["mse"] > 0 and methods["Original"]["seconds"] < 1
    assert summary["model"]["timesteps"] == {"Ours (dpm, 2 steps)": [999, 50]}
    # The benchmark writes its own records only: the model folder is left as it was.
    assert (model / "model.json").read_bytes() == model_json
    # A rerun is served from the cache and gives the same figures.
    assert (
        quality.main(
            [
                str(heldout),
                str(tmp_path / "heldout_work"),
                "--train-work",
                str(tmp_path / "train_work"),
                "--directions",
                "1.5T-to-3T",
                "--model-1p5T-to-3T",
                str(model),
                "--steps",
                "2",
                "--cache",
                str(tmp_path / "cache"),
                "--json",
                str(summaries),
            ]
        )
        == 0
    )
    again = json.loads(summaries.read_text())["1.5T-to-3T"]["methods"]
    assert again["Ours (dpm, 2 steps)"]["mse"] == methods["Ours (dpm, 2 steps)"]["mse"]
    # Other weights are not served from that cache: the model's results are keyed by them.
    other = tiny_model(tmp_path / "other", seed=2)
    assert (
        quality.main(
            [
                str(heldout),
                str(tmp_path / "heldout_work"),
                "--train-work",
                str(tmp_path / "train_work"),
                "--directions",
                "1.5T-to-3T",
                "--model-1p5T-to-3T",
                str(other),
                "--steps",
                "2",
                "--cache",
                str(tmp_path / "cache"),
                "--json",
                str(summaries),
            ]
        )
        == 0
    )
    retrained = json.loads(summaries.read_text())["1.5T-to-3T"]["methods"]
    assert retrained["Ours (dpm, 2 steps)"]["mse"] != methods["Ours (dpm, 2 steps)"]["mse"]
    assert retrained["Nyul"]["mse"] == methods["Nyul"]["mse"]
    assert len(list((tmp_path / "cache" / "1.5T-to-3T" / "sub-01").glob("ours_*.json"))) == 2
    # Another sampler is another method, cached apart.
    assert (
        quality.main(
            [
                str(heldout),
                str(tmp_path / "heldout_work"),
                "--train-work",
                str(tmp_path / "train_work"),
                "--directions",
                "1.5T-to-3T",
                "--model-1p5T-to-3T",
                str(other),
                "--steps",
                "2",
                "--sampler",
                "ddim",
                "--cache",
                str(tmp_path / "cache"),
                "--json",
                str(summaries),
            ]
        )
        == 0
    )
    ddim = json.loads(summaries.read_text())["1.5T-to-3T"]["methods"]
    assert ddim["Ours (ddim, 2 steps)"]["mse"] != retrained["Ours (dpm, 2 steps)"]["mse"]
    assert len(list((tmp_path / "cache" / "1.5T-to-3T" / "sub-01").glob("ours_*.json"))) == 3
    # The record names the timesteps, and other timesteps are not served from the cache.
    assert json.loads(summaries.read_text())["1.5T-to-3T"]["model"]["timesteps"] == {
        "Ours (ddim, 2 steps)": [999, 499]
    }
    # The model folder's own sampler ending (same weights) is another method too.
    schedule = other / "scheduler_config.json"
    schedule.write_text(json.dumps({**json.loads(schedule.read_text()), "dpm_last_timestep": 100}))
    assert (
        quality.main(
            [
                str(heldout),
                str(tmp_path / "heldout_work"),
                "--train-work",
                str(tmp_path / "train_work"),
                "--directions",
                "1.5T-to-3T",
                "--model-1p5T-to-3T",
                str(other),
                "--steps",
                "2",
                "--cache",
                str(tmp_path / "cache"),
                "--json",
                str(summaries),
            ]
        )
        == 0
    )
    rescheduled = json.loads(summaries.read_text())["1.5T-to-3T"]
    assert rescheduled["model"]["timesteps"] == {"Ours (dpm, 2 steps)": [999, 100]}
    assert (
        rescheduled["methods"]["Ours (dpm, 2 steps)"]["mse"]
        != retrained["Ours (dpm, 2 steps)"]["mse"]
    )
    assert len(list((tmp_path / "cache" / "1.5T-to-3T" / "sub-01").glob("ours_*.json"))) == 4
