"""Shared fixtures: one thread, tiny synthetic paired volumes."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch

from harmonize_bids.model.folder import new_model
from harmonize_bids.model.training import (
    PairedVolumes,
    TrainingSchedule,
    fine_tuning_start,
    train,
)


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


_SCHEDULE_KEYS = {f.name for f in fields(TrainingSchedule)}


def train_on_arrays(
    sources,
    targets,
    masks,
    model_dir,
    *,
    sloppy=False,
    network=None,
    prediction_type="v_prediction",
    context_slices=0,
    source_field=1.5,
    target_field=3.0,
    name=None,
    init_from=None,
    lesions=None,
    matched=None,
    **options,
):
    """train() with its pieces built from keyword options: the network (``sloppy``,
    ``network``, ... or ``init_from``), the schedule and the paired volumes."""
    schedule = TrainingSchedule(
        **{k: options.pop(k) for k in list(options) if k in _SCHEDULE_KEYS}
    )
    reference = matched is not None
    if init_from is not None:
        model = fine_tuning_start(init_from, source_field, target_field, name, reference)
    else:
        model = new_model(
            network or ("sloppy" if sloppy else "default"),
            prediction_type=prediction_type,
            context_slices=context_slices,
            reference_channel=reference,
            source_field=source_field,
            target_field=target_field,
            name=name,
            seed=schedule.seed,
        )
    volumes = PairedVolumes(sources, targets, masks, lesions=lesions, matched=matched)
    return train(volumes, model, model_dir, schedule, **options)
