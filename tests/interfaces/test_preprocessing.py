"""The ClipScale interface warns when a few very bright voxels set the intensity scale."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np

from harmonize_bids.interfaces.preprocessing import ClipScale


def _save(array: np.ndarray, path) -> str:
    nib.save(nib.Nifti1Image(array.astype(np.float32), np.eye(4)), path)
    return str(path)


def test_clip_scale_warns_about_a_broken_scale(tmp_path, caplog):
    rng = np.random.default_rng(0)
    brain = np.where(rng.random((20, 20, 20)) < 0.6, 300.0, 200.0) + rng.normal(0, 5, (20,) * 3)
    mask = _save(np.ones(brain.shape), tmp_path / "mask.nii.gz")
    with caplog.at_level(logging.WARNING, logger="harmonize_bids"):
        clean = ClipScale(in_file=_save(brain, tmp_path / "clean.nii.gz"), mask_file=mask)
        result = clean.run(cwd=str(tmp_path))
        assert nib.load(result.outputs.out_file).get_fdata().max() == 1.0
        assert not caplog.records
        brain.flat[rng.choice(brain.size, 40, replace=False)] = 1000.0  # 0.5 % bright voxels
        ClipScale(in_file=_save(brain, tmp_path / "fat.nii.gz"), mask_file=mask).run(
            cwd=str(tmp_path))
    assert "will be too dark" in caplog.text and "99th brain percentile" in caplog.text
