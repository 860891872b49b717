"""Derivatives land at their BIDS path, with sidecars, and nothing is left staged."""

from __future__ import annotations

import json
import tempfile

import nibabel as nib
import numpy as np

from harmonize_bids.interfaces.bids import STAGING, DerivativesDataSink


def _sink(tmp_path):
    in_file = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), in_file)
    source = tmp_path / "bids" / "sub-01" / "ses-A" / "anat" / "sub-01_ses-A_T1w.nii.gz"
    out = tmp_path / "out"
    return out, DerivativesDataSink(
        base_directory=str(out),
        source_file=str(source),
        in_file=str(in_file),
        desc="preproc",
        suffix="T1w",
        compress=True,
        SkullStripped=True,
        Sources=["bids:raw:x"],
    )


def test_sink_writes_bids_path_atomically(tmp_path):
    out, sink = _sink(tmp_path)
    result = sink.run()
    expected = out / "sub-01/ses-A/anat/sub-01_ses-A_desc-preproc_T1w.nii.gz"
    assert result.outputs.out_file == str(expected)
    assert expected.is_file()
    np.testing.assert_array_equal(nib.load(expected).get_fdata(), 1.0)
    sidecar = json.loads(expected.with_name("sub-01_ses-A_desc-preproc_T1w.json").read_text())
    assert sidecar["SkullStripped"] is True and sidecar["Sources"] == ["bids:raw:x"]
    assert not (out / STAGING).exists()
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "sub-01_ses-A_desc-preproc_T1w.json",
        "sub-01_ses-A_desc-preproc_T1w.nii.gz",
    ]


def test_sink_survives_another_job_removing_the_empty_staging_folder(tmp_path, monkeypatch):
    """An array task that finishes removes the shared staging folder when it is empty; it
    can do so between another task's creating it and making its own folder inside."""
    out, sink = _sink(tmp_path)
    real_mkdtemp = tempfile.mkdtemp
    removed = []

    def other_job_first(*args, dir, **kwargs):
        if not removed:
            removed.append(dir)
            (out / STAGING).rmdir()
        return real_mkdtemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", other_job_first)
    result = sink.run()
    assert removed and result.outputs.out_file.endswith("sub-01_ses-A_desc-preproc_T1w.nii.gz")
    assert not (out / STAGING).exists()
