"""Per-subject HTML report: OUTPUT_DIR/sub-X.html with figures in sub-X/figures/."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from .. import __version__
from ..bids import T1wImage, write_atomically
from ..workflows.outputs import derivative_name, image_stem
from .figures import plot_before_after, plot_histograms, plot_mask_overlay

LOGGER = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parents[1] / "data" / "templates"


def write_subject_report(
    output_dir: Path,
    subject: str,
    images: list[T1wImage],
    *,
    failed: dict[T1wImage, str],
    target_field: float,
    methods: str,
) -> Path:
    """Render sub-<subject>.html from the derivatives in OUTPUT_DIR."""
    import jinja2

    figures_dir = output_dir / f"sub-{subject}" / "figures"
    entries = []
    for image in images:
        stem = image_stem(image)
        entry = {
            "name": stem,
            "anchor": stem,
            "source_field": f"{image.field_strength:g}",
            "error": failed.get(image),
        }
        if entry["error"] is None:
            entry.update(_image_section(output_dir, image, figures_dir / stem, target_field))
        entries.append(entry)
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    html = environment.get_template("subject.html").render(
        subject=subject,
        version=__version__,
        target_field=f"{target_field:g}",
        images=entries,
        methods=methods,
    )
    return write_atomically(output_dir / f"sub-{subject}.html", html)


def _image_section(output_dir: Path, image: T1wImage, prefix: Path, target_field: float) -> dict:
    def load(desc: str, suffix: str) -> np.ndarray:
        path = output_dir / derivative_name(image, desc=desc, suffix=suffix)
        return np.asanyarray(nib.load(path).dataobj, dtype=np.float32)

    preproc, harmonized = load("preproc", "T1w"), load("harmonized", "T1w")
    mask = load("brain", "mask") > 0
    sidecar = output_dir / derivative_name(image, desc="harmonized", suffix="T1w")
    record = json.loads(sidecar.with_name(sidecar.name.replace(".nii.gz", ".json")).read_text())[
        "Harmonization"
    ]
    applied = record.get("ModelApplied", False)
    after_label = f"harmonized to {target_field:g} T" if applied else "unchanged (at target)"
    figures = {
        "mask": plot_mask_overlay(preproc, mask, prefix.with_name(f"{prefix.name}_mask.png")),
        "before_after": plot_before_after(
            preproc,
            harmonized,
            mask,
            prefix.with_name(f"{prefix.name}_beforeafter.png"),
            labels=(f"input ({image.field_strength:g} T)", after_label),
        ),
        "histogram": plot_histograms(
            {f"input ({image.field_strength:g} T)": preproc, after_label: harmonized},
            mask,
            prefix.with_name(f"{prefix.name}_histogram.png"),
        ),
    }
    return {
        "action": "harmonized with a diffusion model"
        if applied
        else "already at the target field: preprocessed only",
        "figures": {key: str(path.relative_to(output_dir)) for key, path in figures.items()},
        "provenance": [
            (key, json.dumps(value) if isinstance(value, dict) else value)
            for key, value in record.items()
        ],
    }
