"""Per-subject HTML report: OUTPUT_DIR/sub-X.html with figures in sub-X/figures/."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from .. import __version__
from ..atomic import write_text
from ..bids import T1wImage
from ..derivatives import derivative_path, image_stem, subject_figure, subject_report
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

    entries = []
    for image in images:
        stem = image_stem(image.entities)
        entry = {
            "name": stem,
            "anchor": stem,
            "source_field": f"{image.field_strength:g}",
            "error": failed.get(image),
        }
        if entry["error"] is None:
            entry.update(_image_section(output_dir, image, target_field))
        entries.append(entry)
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    html = environment.get_template("subject.html").render(
        subject=subject,
        version=__version__,
        target_field=f"{target_field:g}",
        images=entries,
        methods=methods,
    )
    return write_text(output_dir / subject_report(subject), html)


def _image_section(output_dir: Path, image: T1wImage, target_field: float) -> dict:
    def load(kind: str) -> np.ndarray:
        path = output_dir / derivative_path(image.entities, kind)
        return np.asanyarray(nib.load(path).dataobj, dtype=np.float32)

    def figure(name: str) -> Path:
        return output_dir / subject_figure(image.entities, name)

    preproc, harmonized = load("preproc"), load("harmonized")
    mask = load("mask") > 0
    sidecar = output_dir / derivative_path(image.entities, "harmonized", extension=".json")
    record = json.loads(sidecar.read_text())["Harmonization"]
    applied = record.get("ModelApplied", False)
    after_label = f"harmonized to {target_field:g} T" if applied else "unchanged (at target)"
    figures = {
        "mask": plot_mask_overlay(preproc, mask, figure("mask")),
        "before_after": plot_before_after(
            preproc,
            harmonized,
            mask,
            figure("beforeafter"),
            labels=(f"input ({image.field_strength:g} T)", after_label),
        ),
        "histogram": plot_histograms(
            {f"input ({image.field_strength:g} T)": preproc, after_label: harmonized},
            mask,
            figure("histogram"),
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
