"""Cross-validation folds and the verdict against histogram matching."""

from __future__ import annotations

import pytest

from harmonize_bids.cross_validation import folds, summarize


def test_folds_cover_every_pair_once():
    assert folds(5, 4) == [[0, 4], [1], [2], [3]]
    assert folds(2, 4) == [[0], [1]]
    assert sorted(i for fold in folds(9, 4) for i in fold) == list(range(9))


def _rows(model_mse: float) -> list[dict]:
    metrics = {
        "mse": 1.0,
        "csf_volume_difference_mm3": 10.0,
        "gm_volume_difference_mm3": 10.0,
        "wm_volume_difference_mm3": 10.0,
    }
    return [
        {"participant_id": "01", "fold": 1, "method": "Original", **metrics},
        {
            "participant_id": "01",
            "fold": 1,
            "method": "Histogram matching",
            **{k: v / 2 for k, v in metrics.items()},
        },
        {
            "participant_id": "01",
            "fold": 1,
            "method": "Model",
            **{k: v / 4 for k, v in metrics.items()},
            "mse": model_mse,
        },
    ]


@pytest.mark.parametrize(("model_mse", "beats"), [(0.25, True), (0.75, False)])
def test_verdict_names_what_the_model_loses_on(model_mse, beats):
    summary = summarize(_rows(model_mse))
    assert summary["model_beats_histogram_matching"]["mse"] is beats
    assert ("NOT" in summary["verdict"]) is not beats
    if not beats:
        assert "mse" in summary["verdict"]


def test_the_uncalibrated_output_is_summarized_beside_the_model_it_ships():
    rows = _rows(0.25)
    rows.append({**rows[2], "method": "Model without output calibration", "mse": 0.75})
    summary = summarize(rows)
    assert list(summary["means"]) == [
        "Original",
        "Histogram matching",
        "Model",
        "Model without output calibration",
    ]
    assert summary["means"]["Model without output calibration"]["mse"] == 0.75
    assert summary["model_beats_histogram_matching"]["mse"] is True  # the shipped model's


@pytest.mark.parametrize(("paired_mse", "named"), [(0.2, True), (0.3, False)])
def test_the_verdict_names_what_the_paired_map_does_better(paired_mse, named):
    rows = _rows(0.25)  # the model beats histogram matching everywhere
    rows.append({**rows[2], "method": "Paired quantile map", "mse": paired_mse})
    summary = summarize(rows)
    assert "NOT" not in summary["verdict"]
    assert summary["model_beats_paired_quantile_map"]["mse"] is not named
    assert ("paired quantile map" in summary["verdict"]) is named
