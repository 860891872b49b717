"""Derivatives land at their BIDS path, with sidecars, and nothing is left staged."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from harmonize_bids.interfaces.bids import STAGING, DerivativesDataSink


def test_sink_writes_bids_path_atomically(tmp_path):
    in_file = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), in_file)
    source = tmp_path / "bids" / "sub-01" / "ses-A" / "anat" / "sub-01_ses-A_T1w.nii.gz"
    out = tmp_path / "out"
    sink = DerivativesDataSink(
        base_directory=str(out),
        source_file=str(source),
        in_file=str(in_file),
        desc="preproc",
        suffix="T1w",
        compress=True,
        SkullStripped=True,
        Sources=["bids:raw:x"],
    )
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
