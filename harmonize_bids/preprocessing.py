"""What preprocessing produces: the defaults of a model folder's ``preprocessing.json``.

The participant level and training read these values from the model folder (a model
describes the input it expects); these are the values new models record. Light on
purpose: the model package, the image functions and the workflows all import it.
"""

from __future__ import annotations

from typing import Any

#: Where white matter sits on the [0, 1] scale after preprocessing.
WHITE_MATTER_LEVEL = 0.81
#: Brain intensity percentiles clipped before scaling to [0, 1] (the paper's 0.1 / 99.9).
CLIP_PERCENTILES = (0.1, 99.9)
#: The isotropic grid, mm.
SPACING_MM = 1.0

DEFAULT_PREPROCESSING: dict[str, Any] = {
    "spacing_mm": [SPACING_MM] * 3,
    "orientation": "RAS",
    "skull_stripped": True,
    "bias_corrected": True,
    "clip_percentiles": list(CLIP_PERCENTILES),
    "white_matter_level": WHITE_MATTER_LEVEL,
    "scale": [0.0, 1.0],
    "slice_axis": 0,
    "slice_plane": "sagittal",
    "context_slices": 0,
    "source_masked": True,
    "reference_channel": False,
}


def preprocessing_options(preprocessing: dict[str, Any]) -> dict[str, Any]:
    """The keyword options of the preprocessing steps that a preprocessing.json sets:
    ``spacing`` (mm), ``lower`` / ``upper`` percentiles and ``white_matter`` level."""
    merged = {**DEFAULT_PREPROCESSING, **preprocessing}
    spacing = {float(s) for s in merged["spacing_mm"]}
    if len(spacing) != 1:
        raise ValueError(f"spacing_mm must be isotropic, got {merged['spacing_mm']}")
    lower, upper = (float(p) for p in merged["clip_percentiles"])
    return {
        "spacing": spacing.pop(),
        "lower": lower,
        "upper": upper,
        "white_matter": float(merged["white_matter_level"]),
    }
