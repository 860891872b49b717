"""The study's scanner map (--scanner-map): other participants scanned at both fields, the
same in every job, never the participant's own; by default towards 3 T only; the output
matched to the mapped input; recorded in the sidecar; the fallback when too few
participants have both fields."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from bidsfactory import harmonization_records, linear_plugin, tiny_model, travelling_bids

import harmonize_bids.model.sampling as sampling
from harmonize_bids.adaptation import plan_scanner_maps
from harmonize_bids.bids import T1wImage, scanner_map_scans
from harmonize_bids.choices import SCANNER_MAP_SUBJECTS_MIN
from harmonize_bids.image.reference import (
    LEVELS,
    ScannerMap,
    TargetReference,
    brain_quantiles,
)
from harmonize_bids.inference import InferenceSettings, harmonize
from harmonize_bids.model.folder import CALIBRATION_FILE, load_model_folder


def _image(subject: str, session: str, field: float) -> T1wImage:
    path = Path(f"/d/sub-{subject}/ses-{session}/anat/sub-{subject}_ses-{session}_T1w.nii.gz")
    return T1wImage(path, subject, session, None, None, field, "sidecar")


def test_scanner_map_scans_take_other_participants_at_both_fields_evenly():
    both = [_image(f"{i:02d}", s, f) for i in range(6) for s, f in (("A", 1.5), ("B", 3.0))]
    only_target = [_image("07", "B", 3.0)]
    twice = [_image("08", "A", 1.5), _image("08", "B", 3.0), _image("08", "C", 3.0)]
    candidates = both + only_target + twice
    mates = scanner_map_scans(
        candidates, subject="02", source_field=1.5, target_field=3.0, limit=4
    )
    assert list(mates) == ["00", "03", "04", "08"]
    assert [i.session for i in mates["08"][0]] == ["A"]
    assert [i.session for i in mates["08"][1]] == ["B", "C"]
    again = scanner_map_scans(
        list(reversed(candidates)), subject="02", source_field=1.5, target_field=3.0, limit=4
    )
    assert again == mates
    assert (
        scanner_map_scans(both[:2], subject="00", source_field=1.5, target_field=3.0, limit=4)
        == {}
    )


@pytest.mark.parametrize(
    ("mode", "target", "mates", "planned", "level"),
    [
        ("auto", 3.0, SCANNER_MAP_SUBJECTS_MIN, True, None),
        ("auto", 3.0, SCANNER_MAP_SUBJECTS_MIN - 1, False, logging.INFO),
        ("on", 3.0, SCANNER_MAP_SUBJECTS_MIN - 1, False, logging.WARNING),
        ("auto", 1.5, SCANNER_MAP_SUBJECTS_MIN, None, None),
        ("off", 3.0, SCANNER_MAP_SUBJECTS_MIN, None, None),
    ],
)
def test_scanner_map_plan_by_default_towards_3t_with_enough_participants(
    caplog, mode, target, mates, planned, level
):
    source = 4.5 - target
    fields = (("A", source), ("B", target))
    candidates = [_image(f"{i:02d}", s, f) for i in range(mates + 1) for s, f in fields]
    settings = SimpleNamespace(scanner_map=mode, target_field=target, bids_dir=Path("/d"))
    with caplog.at_level(logging.INFO, logger="harmonize_bids"):
        plans = plan_scanner_maps(candidates[:1], settings, candidates, Path("/model"))
    if planned is None:
        assert plans == {}
        return
    assert plans.keys() == {"00"}
    plan = plans["00"]
    assert bool(plan.subjects) is planned and bool(plan.unavailable) is not planned
    if level is not None:
        (record,) = [r for r in caplog.records if "no scanner map" in r.getMessage()]
        assert record.levelno == level


def test_no_scanner_map_by_default_for_a_model_with_its_own_output_calibration(tmp_path):
    (tmp_path / CALIBRATION_FILE).write_text("{}")
    candidates = [_image(f"{i:02d}", s, f) for i in range(9) for s, f in (("A", 1.5), ("B", 3.0))]
    settings = SimpleNamespace(scanner_map="auto", target_field=3.0, bids_dir=Path("/d"))
    assert plan_scanner_maps(candidates[:1], settings, candidates, tmp_path) == {}
    settings.scanner_map = "on"
    assert plan_scanner_maps(candidates[:1], settings, candidates, tmp_path)["00"].subjects


def _reference(field: float, values: np.ndarray) -> TargetReference:
    return TargetReference(field, brain_quantiles(values, np.ones(values.shape)))


def test_the_output_is_matched_to_the_input_mapped_through_the_scanner_map(tmp_path, monkeypatch):
    grid = np.linspace(0, 1, 20001)
    scanner_map = ScannerMap(_reference(1.5, grid), _reference(3.0, grid**2))
    rng = np.random.default_rng(0)
    volume = rng.uniform(0.1, 0.9, (8, 20, 20)).astype(np.float32)
    mask = np.ones(volume.shape, bool)
    mask[:, :2] = False
    volume[~mask] = 0
    assert np.allclose(scanner_map.apply(volume, mask)[mask], volume[mask] ** 2, atol=1e-4)

    model = load_model_folder(tiny_model(tmp_path))
    # a model whose output is the input, brightened
    monkeypatch.setattr(
        sampling, "sample_volume", lambda model_, volume_, mask_, **kw: np.sqrt(volume_)
    )
    settings = InferenceSettings.resolve(model, device="cpu")
    plain = harmonize(model, volume, mask, settings)
    assert plain.provenance["ScannerMap"] is None
    mapped = harmonize(model, volume, mask, settings, scanner_map=scanner_map)
    # the output takes the mapped input's brain histogram, and keeps its own voxel order
    assert np.allclose(
        brain_quantiles(mapped.image, mask), brain_quantiles(volume**2, mask), atol=2e-3
    )
    order = np.argsort(plain.image[mask], kind="stable")
    assert np.all(np.diff(mapped.image[mask][order]) >= 0)
    assert np.all(mapped.image[~mask] == 0)
    record = mapped.provenance["ScannerMap"]
    assert record["Applied"] and record["SHA256"]["Target"] == scanner_map.target.sha256
    assert len(scanner_map.source.quantiles) == LEVELS


def _run(bids: Path, out: Path, model: Path, plugin: Path, *extra: str) -> dict:
    """sub-01's `Harmonization` record from a participant run of it alone."""
    records = harmonization_records(bids, out, model, plugin, "--participant-label", "01", *extra)
    return records["sub-01"]


@pytest.mark.slow
def test_participant_scanner_map_from_other_participants_or_a_clear_fallback(tmp_path):
    plugin = linear_plugin(tmp_path)
    model = tiny_model(tmp_path)
    mates = [f"{i:02d}" for i in range(2, SCANNER_MAP_SUBJECTS_MIN + 2)]
    bids = travelling_bids(tmp_path / "bids", ("01", *mates))
    record = _run(bids, tmp_path / "mapped", model, plugin)["ScannerMap"]
    assert record["Applied"]
    assert record["SourceScans"] == [
        f"bids:raw:sub-{s}/ses-A/anat/sub-{s}_ses-A_T1w.nii.gz" for s in mates
    ]
    assert record["TargetScans"] == [
        f"bids:raw:sub-{s}/ses-B/anat/sub-{s}_ses-B_T1w.nii.gz" for s in mates
    ]
    assert _run(bids, tmp_path / "off", model, plugin, "--no-scanner-map")["ScannerMap"] is None
    # one participant fewer scanned at both fields: the model's output stands
    few = travelling_bids(tmp_path / "few_bids", ("01", *mates[1:]))
    record = _run(few, tmp_path / "few", model, plugin)["ScannerMap"]
    assert record["Applied"] is False
    assert f"needs {SCANNER_MAP_SUBJECTS_MIN}" in record["Reason"]
