"""Shared fixtures: one thread, tiny synthetic paired volumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def phantom_pair(
    shape: tuple[int, int, int] = (10, 20, 18), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An ellipsoid 'brain' with a 'WM' core: source and target differ in contrast."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    r = np.sqrt((grid**2).sum(0))
    mask = r < 0.9
    wm = r < 0.5
    source = np.where(mask, np.where(wm, 0.6, 0.4), 0.0)
    target = np.where(mask, np.where(wm, 0.9, 0.35), 0.0)
    source = np.where(mask, source + 0.02 * rng.standard_normal(shape), 0.0)
    return source.astype(np.float32), target.astype(np.float32), mask
