"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bidsfactory import SIDECAR_3, SIDECAR_15, make_bids

os.environ.setdefault("NIPYPE_NO_ET", "1")


@pytest.fixture
def travelling_dataset(tmp_path: Path) -> Path:
    """Two subjects, each with a 1.5 T and a 3 T session."""
    return make_bids(
        tmp_path / "bids",
        {
            f"sub-{s}/ses-{ses}/anat/sub-{s}_ses-{ses}_T1w.nii.gz": sidecar
            for s in ("01", "02")
            for ses, sidecar in (("A", SIDECAR_15), ("B", SIDECAR_3))
        },
    )
