"""Discovery: sessions, runs, inheritance, field strength, filters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bidsfactory import SIDECAR_3, SIDECAR_15, make_bids, unreadable_file_prefix, write_image

from harmonize_bids.bids import (
    check_output_dir,
    check_t1w_file,
    create_output_dir,
    discover_t1w,
    format_plan,
    load_bids_filters,
    load_layout,
    pair_sessions,
    round_field_strength,
)
from harmonize_bids.errors import (
    MissingInputError,
    NoMatchingImagesError,
    OutputNotCreatableError,
    ProcessingError,
    UsageError,
)


def _discover(root: Path, **kwargs):
    found = discover_t1w(load_layout(root), **kwargs)
    assert not found.skipped
    return found.images


def test_sessions_and_fields(travelling_dataset):
    images = _discover(travelling_dataset)
    assert [(i.subject, i.session, i.field_strength) for i in images] == [
        ("01", "A", 1.5),
        ("01", "B", 3.0),
        ("02", "A", 1.5),
        ("02", "B", 3.0),
    ]
    assert all(i.field_origin == "sidecar" for i in images)


def test_runs_acquisitions_and_sessionless(tmp_path):
    root = make_bids(
        tmp_path / "bids",
        {
            "sub-01/anat/sub-01_acq-mprage_run-1_T1w.nii.gz": SIDECAR_3,
            "sub-01/anat/sub-01_acq-mprage_run-2_T1w.nii": SIDECAR_3,
            "sub-01/anat/sub-01_acq-fast_T1w.nii.gz": SIDECAR_15,
        },
    )
    images = _discover(root)
    assert [(i.session, i.acquisition, i.run) for i in images] == [
        (None, "fast", None),
        (None, "mprage", "1"),
        (None, "mprage", "2"),
    ]
    assert images[1].entities == {"subject": "01", "acquisition": "mprage", "run": "1"}


def test_sidecar_inheritance(tmp_path):
    # Top-level T1w.json gives 3 T; one subject-level sidecar overrides with 1.5 T.
    root = make_bids(
        tmp_path / "bids",
        {
            "sub-01/ses-A/anat/sub-01_ses-A_T1w.nii.gz": None,
            "sub-02/ses-A/anat/sub-02_ses-A_T1w.nii.gz": {"MagneticFieldStrength": 1.494},
        },
        top_level_t1w={"MagneticFieldStrength": 2.89},
    )
    fields = {i.subject: i.field_strength for i in _discover(root)}
    assert fields == {"01": 3.0, "02": 1.5}


@pytest.mark.parametrize(
    ("reported", "expected"),
    [(1.5, 1.5), (1.494, 1.5), ("1.5", 1.5), (3, 3.0), (2.89, 3.0), (3.0, 3.0)],
)
def test_field_rounding(reported, expected):
    assert round_field_strength(reported, where="x") == expected


@pytest.mark.parametrize("reported", [7, 0.55, "high", None])
def test_field_rounding_rejects(reported):
    with pytest.raises(MissingInputError, match="x"):
        round_field_strength(reported, where="x")


def test_missing_field_strength(tmp_path):
    root = make_bids(tmp_path / "bids", {"sub-01/anat/sub-01_T1w.nii.gz": {}})
    with pytest.raises(MissingInputError, match="sub-01_T1w.nii.gz.*--source-field"):
        _discover(root)
    (image,) = _discover(root, source_field=1.5)
    assert (image.field_strength, image.field_origin) == (1.5, "--source-field")


def test_image_without_field_is_skipped_not_fatal(tmp_path):
    root = make_bids(
        tmp_path / "bids",
        {"sub-01/anat/sub-01_T1w.nii.gz": SIDECAR_3, "sub-02/anat/sub-02_T1w.nii.gz": {}},
    )
    found = discover_t1w(load_layout(root))
    assert [i.subject for i in found.images] == ["01"]
    ((path, reason),) = found.skipped.items()
    assert path.name == "sub-02_T1w.nii.gz" and "--source-field" in reason


def test_source_field_does_not_override_sidecar(travelling_dataset):
    images = _discover(travelling_dataset, source_field=1.5)
    assert {i.field_strength for i in images} == {1.5, 3.0}


def test_participant_and_session_filters(travelling_dataset):
    images = _discover(travelling_dataset, participant_labels=["sub-02"], session_labels=["B"])
    assert [(i.subject, i.session) for i in images] == [("02", "B")]
    images = _discover(travelling_dataset, participant_labels=["01"], session_labels=["ses-A"])
    assert [(i.subject, i.session) for i in images] == [("01", "A")]


def test_unknown_participant(travelling_dataset):
    with pytest.raises(NoMatchingImagesError, match="03"):
        _discover(travelling_dataset, participant_labels=["03"])


def test_session_matching_nothing(travelling_dataset):
    with pytest.raises(NoMatchingImagesError, match="session"):
        _discover(travelling_dataset, session_labels=["Z"])


def test_no_t1w_at_all(tmp_path):
    root = make_bids(tmp_path / "bids", {})
    with pytest.raises(MissingInputError, match="no T1w"):
        _discover(root)


def test_bids_filter_file(tmp_path):
    root = make_bids(
        tmp_path / "bids",
        {
            "sub-01/anat/sub-01_acq-mprage_T1w.nii.gz": SIDECAR_3,
            "sub-01/anat/sub-01_T1w.nii.gz": SIDECAR_3,
        },
    )
    filter_file = tmp_path / "filters.json"
    filter_file.write_text(json.dumps({"t1w": {"acquisition": "mprage"}}))
    (image,) = _discover(root, bids_filters=load_bids_filters(filter_file))
    assert image.acquisition == "mprage"
    filter_file.write_text(json.dumps({"t1w": {"acquisition": None}}))
    (image,) = _discover(root, bids_filters=load_bids_filters(filter_file))
    assert image.acquisition is None


@pytest.mark.parametrize("content", ["{not json", '{"bold": {}}', '{"t1w": {"colour": "red"}}'])
def test_bad_filter_file(tmp_path, content):
    filter_file = tmp_path / "filters.json"
    filter_file.write_text(content)
    with pytest.raises(UsageError, match="filters.json"):
        load_bids_filters(filter_file)


def test_plan_lists_every_image(travelling_dataset):
    images = _discover(travelling_dataset)
    plan = format_plan(images, bids_dir=travelling_dataset, target_field=3.0)
    lines = plan.splitlines()
    assert len(lines) == 1 + len(images)
    assert "sub-01/ses-A/anat/sub-01_ses-A_T1w.nii.gz" in lines[1]
    assert "harmonize 1.5T->3T" in lines[1]
    assert "already at target" in lines[2]


def test_output_dir_inside_bids_dir(travelling_dataset):
    for bad in (travelling_dataset, travelling_dataset / "out"):
        with pytest.raises(OutputNotCreatableError, match="inside BIDS_DIR"):
            check_output_dir(travelling_dataset, bad)
    check_output_dir(travelling_dataset, travelling_dataset / "derivatives" / "harmonize_bids")
    check_output_dir(travelling_dataset, travelling_dataset.parent / "out")


def test_pair_sessions(travelling_dataset):
    pairs = pair_sessions(_discover(travelling_dataset), source_field=1.5, target_field=3.0)
    assert [(p.subject, p.source.session, p.target.session) for p in pairs] == [
        ("01", "A", "B"),
        ("02", "A", "B"),
    ]
    reverse = pair_sessions(_discover(travelling_dataset), source_field=3.0, target_field=1.5)
    assert [(p.source.session, p.target.session) for p in reverse] == [("B", "A")] * 2


def test_pair_sessions_unpaired_and_ambiguous(tmp_path):
    root = make_bids(
        tmp_path / "bids",
        {
            "sub-01/ses-A/anat/sub-01_ses-A_T1w.nii.gz": SIDECAR_15,
            "sub-02/ses-A/anat/sub-02_ses-A_T1w.nii.gz": SIDECAR_15,
            "sub-02/ses-B/anat/sub-02_ses-B_run-1_T1w.nii.gz": SIDECAR_3,
            "sub-02/ses-B/anat/sub-02_ses-B_run-2_T1w.nii.gz": SIDECAR_3,
        },
    )
    with pytest.raises(MissingInputError, match=r"sub-01 \(no 3 T image\).*--participant"):
        pair_sessions(_discover(root), source_field=1.5, target_field=3.0)
    with pytest.raises(UsageError, match=r"sub-02 \(1 x 1.5 T, 2 x 3 T\)"):
        pair_sessions(
            _discover(root, participant_labels=["02"]), source_field=1.5, target_field=3.0
        )


def test_a_broken_symlink_names_the_file_and_datalad_get(tmp_path):
    link = tmp_path / "sub-01_T1w.nii.gz"
    link.symlink_to("../.git/annex/objects/Xk/SHA256E-s1--0.nii.gz")
    with pytest.raises(MissingInputError, match="symbolic link") as raised:
        check_t1w_file(link)
    assert raised.value.exit_code == 66
    assert f"datalad get {link}" in str(raised.value)


def test_an_unreadable_file_is_missing_input(tmp_path):
    image = write_image(tmp_path / "sub-01_T1w.nii.gz")
    image.chmod(0)
    check = (
        "import sys; from pathlib import Path; from harmonize_bids.bids import check_t1w_file\n"
        "try:\n    check_t1w_file(Path(sys.argv[1]))\n"
        "except Exception as error:\n    print(error.exit_code, error)\n"
    )
    prefix = unreadable_file_prefix()
    result = subprocess.run(
        [*prefix, sys.executable, "-c", check, str(image)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"66 {image} cannot be read (Permission denied)")
    image.chmod(0o644)
    check_t1w_file(image)  # readable again: accepted


@pytest.mark.parametrize(
    ("shape", "voxel_mm", "accepted"),
    [((16, 16, 16), 1.0, False), ((40, 44, 36), 1.0, False), ((40, 44, 36), 2.0, True)],
)
def test_a_field_of_view_that_cannot_hold_a_brain(tmp_path, shape, voxel_mm, accepted):
    image = write_image(tmp_path / "sub-01_T1w.nii.gz", shape=shape, voxel_mm=voxel_mm)
    if accepted:
        check_t1w_file(image)
        return
    with pytest.raises(ProcessingError, match="cannot hold a brain") as raised:
        check_t1w_file(image)
    assert raised.value.exit_code == 1
    extent = " x ".join(f"{size * voxel_mm:.0f}" for size in shape)
    assert f"field of view, {extent} mm" in str(raised.value)


def test_a_field_of_view_in_metres_is_measured_in_millimetres(tmp_path):
    image = nib.Nifti1Image(np.ones((16, 16, 16), np.int16), np.diag([0.01, 0.01, 0.01, 1]))
    image.header.set_xyzt_units("meter", "sec")
    nib.save(image, tmp_path / "sub-01_T1w.nii.gz")
    check_t1w_file(tmp_path / "sub-01_T1w.nii.gz")  # 160 mm a side
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, tmp_path / "sub-01_T1w.nii.gz")
    with pytest.raises(ProcessingError, match="0 x 0 x 0 mm"):
        check_t1w_file(tmp_path / "sub-01_T1w.nii.gz")


def test_the_output_check_leaves_another_job_s_probe_alone(tmp_path):
    """Array jobs start together on one OUTPUT_DIR; each writes and removes its own probe."""
    out = tmp_path / "out"
    out.mkdir()
    in_flight = out / ".harmonize_bids_write_test"  # the name every job once shared
    in_flight.touch()
    assert create_output_dir(out) == out
    assert [p.name for p in out.iterdir()] == [in_flight.name]
