"""Is an input like what a model was trained on? Tissue-contrast profiles and their ranges.

A profile describes a preprocessed brain by a 3-class Gaussian mixture of its
intensities (T1w: CSF, GM, WM): the CSF and GM class means relative to WM, and the class
weights. A model records the range of its training sources' and references' profiles
(``model.json``: ``domain``); an input outside that range (with a margin), or an output
whose class weights moved further from the input's than harmonization moves them, or
whose contrast is far from the study's target reference, gets a warning that names the
number.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .intensity import tissue_mixture

#: Profile entries compared with a model's training range.
CONTRAST_KEYS = ("csf_wm", "gm_wm")
WEIGHT_KEYS = ("csf_weight", "gm_weight", "wm_weight")
#: Beyond the training range by more than this fraction of its width: out of domain.
RANGE_MARGIN = 0.25
#: The smallest margin: about the spread of one site's subjects, so that a model trained
#: on a few travelling subjects does not flag their site mates.
MIN_RANGE_MARGIN = 0.05
#: Largest change of a class weight (share of brain voxels) from input to output that
#: harmonization is expected to make.
MAX_WEIGHT_SHIFT = 0.12
#: Largest difference of the output's CSF/WM or GM/WM contrast from the target
#: reference's: the output should look like the study's target-field scans.
MAX_CONTRAST_GAP = 0.12


def contrast_profile(image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The brain's 3-class mixture: CSF and GM means over WM's, WM's mean, and the class
    weights."""
    means, weights = tissue_mixture(image, mask)
    return {
        "csf_wm": float(means[0] / means[2]),
        "gm_wm": float(means[1] / means[2]),
        "wm_mean": float(means[2]),
        **{key: float(w) for key, w in zip(WEIGHT_KEYS, weights, strict=True)},
    }


def quantile_profile(quantiles: np.ndarray) -> dict[str, float]:
    """:func:`contrast_profile` of a reference's intensity distribution (its quantiles)."""
    values = np.asarray(quantiles, np.float64)
    return contrast_profile(values, np.ones(values.shape, bool))


def profile_range(profiles: Sequence[dict[str, float]]) -> dict[str, list[float]]:
    """The [min, max] of each contrast entry over ``profiles``."""
    return {
        key: [float(min(p[key] for p in profiles)), float(max(p[key] for p in profiles))]
        for key in CONTRAST_KEYS
    }


def merge_ranges(
    first: dict[str, list[float]], second: dict[str, list[float]]
) -> dict[str, list[float]]:
    """The smallest range holding both ``first`` and ``second``, per contrast entry."""
    merged = {**first, **second}
    for key in first.keys() & second.keys():
        merged[key] = [min(first[key][0], second[key][0]), max(first[key][1], second[key][1])]
    return merged


def outside_range(
    profile: dict[str, float], ranges: dict[str, list[float]], what: str
) -> list[str]:
    """One line per contrast entry of ``profile`` beyond ``ranges`` (plus the margin)."""
    problems = []
    for key in CONTRAST_KEYS:
        if key not in ranges:
            continue
        low, high = ranges[key]
        margin = max(RANGE_MARGIN * (high - low), MIN_RANGE_MARGIN)
        value = profile[key]
        if not low - margin <= value <= high + margin:
            label = {"csf_wm": "CSF/WM", "gm_wm": "GM/WM"}[key]
            problems.append(
                f"{what} {label} contrast {value:.2f} lies outside the model's training range "
                f"{low:.2f}-{high:.2f}"
            )
    return problems


def weight_shift(before: dict[str, float], after: dict[str, float]) -> list[str]:
    """One line per tissue class whose share of the brain moved more than expected."""
    problems = []
    for key in WEIGHT_KEYS:
        shift = after[key] - before[key]
        if abs(shift) > MAX_WEIGHT_SHIFT:
            tissue = key.split("_")[0].upper()
            problems.append(
                f"the {tissue} class changed from {before[key]:.0%} to {after[key]:.0%} of the "
                "brain; tissue volumes of this output may be wrong"
            )
    return problems


def contrast_gap(output: dict[str, float], reference: dict[str, float]) -> list[str]:
    """One line per contrast entry of the output far from the target reference's (e.g.
    grey matter merged into white matter)."""
    problems = []
    for key in CONTRAST_KEYS:
        gap = output[key] - reference[key]
        if abs(gap) > MAX_CONTRAST_GAP:
            label = {"csf_wm": "CSF/WM", "gm_wm": "GM/WM"}[key]
            problems.append(
                f"the output's {label} contrast {output[key]:.2f} is far from the target "
                f"reference's {reference[key]:.2f}"
            )
    return problems
