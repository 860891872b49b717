"""Shared tiny phantoms (generated once per test session)."""

from __future__ import annotations

import pytest

from harmonize_bids.phantom import write_phantom_dataset


@pytest.fixture(scope='session')
def tiny_phantom(tmp_path_factory):
    """Two tiny subjects, the second with lesions (lesion fraction 0.5)."""
    out = tmp_path_factory.mktemp('phantom') / 'ds'
    return write_phantom_dataset(out, n_subjects=2, seed=7, size='tiny', lesion_fraction=0.5)
