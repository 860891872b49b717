"""derivatives: one spec builds the names the sinks write and reads them back."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from harmonize_bids import derivatives
from harmonize_bids.interfaces.bids import DerivativesDataSink


@pytest.mark.parametrize(
    ("entities", "expected"),
    [
        ({"subject": "01"}, "sub-01/anat/sub-01_desc-brain_mask.nii.gz"),
        (
            {"subject": "01", "session": "A", "acquisition": "mp", "run": "01"},
            "sub-01/ses-A/anat/sub-01_ses-A_acq-mp_run-01_desc-brain_mask.nii.gz",
        ),
    ],
)
def test_names_build_and_parse_back(entities, expected):
    assert derivatives.derivative_path(entities, "mask") == expected
    assert derivatives.derivative_path(entities, "mask", extension=".json") == (
        expected.replace(".nii.gz", ".json")
    )
    assert derivatives.parse_derivative(expected) == ("mask", entities)
    assert derivatives.image_stem(entities) == expected.split("/")[-1].split("_desc-")[0]


@pytest.mark.parametrize(
    "relative",
    [
        "sub-01/anat/sub-01_rec-x_desc-preproc_T1w.nii.gz",  # an entity we never write
        "sub-01/anat/sub-01_desc-preproc_bold.nii.gz",
        "sub-01/anat/sub-01_desc-other_T1w.nii.gz",
        "sub-01/ses-B/anat/sub-01_ses-A_desc-preproc_T1w.nii.gz",  # folder and name disagree
        "sub-01/anat/sub-01_T1w.nii.gz",
    ],
)
def test_other_files_are_not_derivatives(relative):
    assert derivatives.parse_derivative(relative) is None


def test_find_derivatives_groups_kinds_by_image(tmp_path):
    for kind in ("preproc", "mask"):
        path = tmp_path / derivatives.derivative_path({"subject": "02", "session": "3T"}, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    (path.parent / "sub-02_ses-3T_desc-preproc_T1w.json").write_text("{}")
    (path.parent / "sub-02_ses-3T_rec-x_desc-preproc_T1w.nii.gz").write_bytes(b"")
    (found,) = derivatives.find_derivatives(tmp_path)
    assert found.stem == "sub-02_ses-3T"
    assert sorted(found.paths) == ["mask", "preproc"]
    assert found.path("harmonized", extension=".json") == (
        tmp_path / "sub-02/ses-3T/anat/sub-02_ses-3T_desc-harmonized_T1w.json"
    )


@pytest.mark.parametrize("kind", list(derivatives.KINDS))
def test_the_sink_writes_the_spec_name(tmp_path, kind):
    in_file = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), in_file)
    entities = {"subject": "01", "session": "A", "acquisition": "mp", "run": "02"}
    source = tmp_path / "bids/sub-01/ses-A/anat/sub-01_ses-A_acq-mp_run-02_T1w.nii.gz"
    out = tmp_path / "out"
    DerivativesDataSink(
        base_directory=str(out),
        source_file=str(source),
        in_file=str(in_file),
        compress=True,
        Description=derivatives.KINDS[kind].description,
        **derivatives.KINDS[kind].entities,
    ).run()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        derivatives.derivative_path(entities, kind, extension=extension)
        for extension in (".json", ".nii.gz")
    ]


def test_output_dataset_files(tmp_path):
    bids, out = tmp_path / "bids", tmp_path / "out"
    bids.mkdir()
    (bids / "dataset_description.json").write_text('{"Name": "study"}')
    (out / "sub-01").mkdir(parents=True)
    (out / ".bidsignore").write_text("extra/\n")
    derivatives.init_output_dataset(out, bids_dir=bids)
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["Name"] == "harmonize_bids outputs of study"
    assert description["DatasetType"] == "derivative"
    (bids / "dataset_description.json").write_text('{"Name": "renamed"}')
    derivatives.init_output_dataset(out, bids_dir=bids)  # written once
    assert json.loads((out / "dataset_description.json").read_text()) == description
    assert (out / ".bidsignore").read_text().splitlines() == [
        "extra/",
        *derivatives.BIDSIGNORE,
    ]
    lines = (out / "descriptions.tsv").read_text().splitlines()
    assert lines[0] == "desc_id\tdescription"
    assert [line.split("\t")[0] for line in lines[1:]] == [
        "desc-preproc",
        "desc-brain",
        "desc-harmonized",
    ]
