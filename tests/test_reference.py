"""The study's target-field reference: which scans, in every job the same, never the
participant's own, recorded in the sidecar; explicit files; the fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bidsfactory import harmonization_records, linear_plugin, reference_model, travelling_bids

from harmonize_bids.bids import T1wImage, reference_scans
from harmonize_bids.image.reference import (
    LEVELS,
    TargetReference,
    brain_quantiles,
    match_to_reference,
    pool_quantiles,
)


@pytest.fixture(name="plugin")
def linear_plugin_file(tmp_path) -> Path:
    return linear_plugin(tmp_path)


def _image(subject: str, field: float) -> T1wImage:
    return T1wImage(
        Path(f"/d/sub-{subject}/anat/sub-{subject}_T1w.nii.gz"),
        subject,
        None,
        None,
        None,
        field,
        "sidecar",
    )


def test_reference_scans_exclude_the_subject_and_spread_evenly():
    candidates = [_image(f"{i:02d}", 3.0) for i in range(10)] + [_image("99", 1.5)]
    picked = reference_scans(candidates, subject="03", target_field=3.0, limit=4)
    assert [i.subject for i in picked] == ["00", "04", "06", "09"]
    # the same choice whatever order the candidates come in
    shuffled = list(reversed(candidates))
    assert reference_scans(shuffled, subject="03", target_field=3.0, limit=4) == picked
    assert reference_scans(candidates, subject="00", target_field=1.5, limit=4) == [candidates[-1]]
    assert reference_scans(candidates[:1], subject="00", target_field=3.0, limit=4) == []


def test_matching_to_a_pooled_reference_takes_its_distribution():
    rng = np.random.default_rng(0)
    scans = [brain_quantiles(rng.normal(0.6, 0.1, 5000), np.ones(5000)) for _ in range(3)]
    pooled = pool_quantiles(scans)
    assert pooled.shape == (LEVELS,) and np.all(np.diff(pooled) >= 0)
    image = rng.gamma(2.0, 0.1, (20, 20, 20)).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    mask[2:-2, 2:-2, 2:-2] = True
    out = match_to_reference(image, mask, pooled)
    assert abs(out[mask].mean() - 0.6) < 0.01 and abs(out[mask].std() - 0.1) < 0.01
    assert np.all(out[~mask] == 0)
    reference = TargetReference.pooled(3.0, scans, ["a", "b", "c"])
    again = TargetReference.from_json(json.loads(json.dumps(reference.to_json())))
    assert again.sha256 == reference.sha256 and again.sources == ["a", "b", "c"]


@pytest.mark.slow
def test_participant_reference_from_other_participants(tmp_path, plugin):
    bids = travelling_bids(tmp_path / "bids", ("01", "02", "03"))
    model = reference_model(tmp_path)
    alone = harmonization_records(
        bids,
        tmp_path / "alone",
        model,
        plugin,
        "--participant-label",
        "01",
        "--reference-images",
        "1",
    )
    reference = alone["sub-01"]["TargetReference"]
    assert reference["Origin"] == "dataset" and reference["Images"] == 1
    assert reference["Sources"] == ["bids:raw:sub-02/ses-B/anat/sub-02_ses-B_T1w.nii.gz"]
    published = tmp_path / "alone" / reference["File"]
    assert json.loads(published.read_text())["Sources"] == reference["Sources"]
    # every participant in one run: sub-01 gets the same reference as in its own job
    together = harmonization_records(
        bids, tmp_path / "together", model, plugin, "--reference-images", "1"
    )
    assert together["sub-01"]["TargetReference"]["SHA256"] == reference["SHA256"]
    for subject, record in together.items():
        assert all(f"/{subject}/" not in s for s in record["TargetReference"]["Sources"])
    # an explicit reference file is used as given
    explicit = harmonization_records(
        bids,
        tmp_path / "explicit",
        model,
        plugin,
        "--participant-label",
        "02",
        "--target-reference",
        str(published),
    )
    assert explicit["sub-02"]["TargetReference"]["Origin"] == "file"
    assert explicit["sub-02"]["TargetReference"]["SHA256"] == reference["SHA256"]
    # turned off: the model folder's own reference
    off = harmonization_records(
        bids,
        tmp_path / "off",
        model,
        plugin,
        "--participant-label",
        "01",
        "--target-reference",
        "none",
    )
    assert off["sub-01"]["TargetReference"]["Origin"] == "model default"


@pytest.mark.slow
def test_without_other_target_field_scans_the_model_reference_stands_in(tmp_path, plugin, capfd):
    bids = travelling_bids(tmp_path / "bids", ("01",))
    model = reference_model(tmp_path)
    records = harmonization_records(bids, tmp_path / "out", model, plugin)
    assert records["sub-01"]["TargetReference"]["Origin"] == "model default"
    assert "no 3 T scan of another participant" in capfd.readouterr().err
