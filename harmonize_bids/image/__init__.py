"""Pure preprocessing functions on NIfTI files and arrays (no nipype).

Paper order (Durrer et al., MIDL 2023): :func:`conform` -> :func:`skull_strip` ->
:func:`n4_correct` -> :func:`resample_to_1mm` -> :func:`clip_and_scale` (which also anchors
white matter at :data:`WHITE_MATTER_LEVEL`), chained by :func:`preprocess_t1w`; training
pairs are aligned with :func:`register_pair` and re-anchored with
:func:`anchor_white_matter_file`.
Heavy libraries (ants, deepbet, torch) are imported inside the functions.
"""

from .bias import n4_correct
from .conform import conform
from .errors import ImageError, MissingDependencyError
from .intensity import (
    WHITE_MATTER_LEVEL,
    anchor_white_matter,
    anchor_white_matter_file,
    clip_and_scale,
    clip_and_scale_array,
    scaling_problem,
    scaling_problem_file,
    white_matter_level,
)
from .pipeline import SLOPPY_SPACING_MM, preprocess_t1w
from .register import register_arrays, register_pair, resample_pair
from .resample import isotropic_grid, resample_to_1mm
from .skullstrip import nonzero_mask, otsu_mask, skull_strip

__all__ = [
    'SLOPPY_SPACING_MM',
    'WHITE_MATTER_LEVEL',
    'ImageError',
    'MissingDependencyError',
    'anchor_white_matter',
    'anchor_white_matter_file',
    'clip_and_scale',
    'clip_and_scale_array',
    'conform',
    'isotropic_grid',
    'n4_correct',
    'nonzero_mask',
    'otsu_mask',
    'preprocess_t1w',
    'register_arrays',
    'register_pair',
    'resample_pair',
    'resample_to_1mm',
    'scaling_problem',
    'scaling_problem_file',
    'skull_strip',
    'white_matter_level',
]
