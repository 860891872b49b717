"""Steps 1-5 in the paper's order, shared by the participant workflow and training."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..preprocessing import CLIP_PERCENTILES, SPACING_MM, WHITE_MATTER_LEVEL
from ._io import PathT
from .bias import n4_correct
from .conform import conform
from .intensity import clip_and_scale
from .resample import resample_to_1mm
from .skullstrip import _stem
from .skullstrip import skull_strip as _skull_strip

LOGGER = logging.getLogger(__name__)
#: The coarse grid of --sloppy runs (tests only): small volumes, seconds per step.
SLOPPY_SPACING_MM = 4.0


def preprocess_t1w(
    in_file: PathT,
    out_dir: PathT,
    *,
    skull_strip: str = 'deepbet',
    sloppy: bool = False,
    spacing: float = SPACING_MM,
    lower: float = CLIP_PERCENTILES[0],
    upper: float = CLIP_PERCENTILES[1],
    white_matter: float = WHITE_MATTER_LEVEL,
    num_threads: int | None = None,
) -> dict[str, Path]:
    """Conform, skull-strip, N4, resample to ``spacing`` mm, clip at the ``lower`` /
    ``upper`` brain percentiles, scale to [0, 1] and anchor white matter at
    ``white_matter`` (a model folder's preprocessing.json sets these).

    Returns paths: ``preproc`` (final [0, 1] image), ``mask`` (brain mask on the
    preproc grid), and the intermediates ``conformed``, ``brain``, ``brain_mask``
    (native grid), ``n4`` (native grid), ``resampled``. ``num_threads`` caps torch
    threads for the skull-stripping CNN.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = _stem(in_file)
    times: dict[str, float] = {}
    t0 = time.perf_counter()

    def _tick(step: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        times[step] = now - t0
        t0 = now

    conformed = conform(in_file, out_dir / f'{stem}_conformed.nii.gz')
    _tick('conform')
    brain, brain_mask = _skull_strip(
        conformed, out_dir, method=skull_strip, sloppy=sloppy, num_threads=num_threads
    )
    _tick('skull_strip')
    n4 = n4_correct(brain, brain_mask, out_dir / f'{stem}_n4.nii.gz', sloppy=sloppy)
    _tick('n4')
    resampled = resample_to_1mm(n4, out_dir / f'{stem}_resampled.nii.gz', spacing=spacing)
    mask = resample_to_1mm(
        brain_mask, out_dir / f'{stem}_mask.nii.gz', interpolation='nearest', spacing=spacing
    )
    _tick('resample')
    preproc = clip_and_scale(
        resampled,
        mask,
        out_dir / f'{stem}_preproc.nii.gz',
        lower=lower,
        upper=upper,
        white_matter=white_matter,
    )
    _tick('clip_and_scale')
    LOGGER.info(
        '%s preprocessed: %s', in_file, ', '.join(f'{k} {v:.1f}s' for k, v in times.items())
    )
    return {
        'preproc': preproc,
        'mask': mask,
        'conformed': conformed,
        'brain': brain,
        'brain_mask': brain_mask,
        'n4': n4,
        'resampled': resampled,
    }
