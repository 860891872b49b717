"""The ClipScale interface warns when a few very bright voxels set the intensity scale."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest

from harmonize_bids.interfaces.preprocessing import ClipScale


def _save(array: np.ndarray, path) -> str:
    nib.save(nib.Nifti1Image(array.astype(np.float32), np.eye(4)), path)
    return str(path)


def test_clip_scale_anchors_white_matter_and_warns_about_a_broken_scale(tmp_path, caplog):
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=(20, 20, 20), p=[0.2, 0.4, 0.4])  # CSF, GM, WM
    wm = labels == 2
    brain = np.array([100.0, 220.0, 300.0])[labels] + rng.normal(0, 5, labels.shape)
    mask = _save(np.ones(brain.shape), tmp_path / "mask.nii.gz")
    with caplog.at_level(logging.WARNING, logger="harmonize_bids"):
        for name in ("clean", "fat"):
            if name == "fat":  # 0.5 % voxels far brighter: they no longer set the scale
                brain.flat[rng.choice(brain.size, 40, replace=False)] = 1000.0
            result = ClipScale(
                in_file=_save(brain, tmp_path / f"{name}.nii.gz"), mask_file=mask
            ).run(cwd=str(tmp_path))
            out = nib.load(result.outputs.out_file).get_fdata()
            assert np.median(out[wm]) == pytest.approx(0.81, abs=0.01)
        assert not caplog.records
        ClipScale(
            in_file=_save(brain, tmp_path / "dark.nii.gz"), mask_file=mask, white_matter=0.5
        ).run(cwd=str(tmp_path))
    assert "will be too dark" in caplog.text and "99th brain percentile" in caplog.text
