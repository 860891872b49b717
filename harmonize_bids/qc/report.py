"""HTML reports: one per subject (``sub-X.html``, figures in ``sub-X/figures/``) and the
group report (``group_T1w.html``, figures in ``group/figures/``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from .. import __version__
from ..atomic import write_text
from ..bids import T1wImage
from ..derivatives import (
    GROUP_REPORT,
    derivative_path,
    group_figure,
    image_stem,
    subject_figure,
    subject_report,
)
from .figures import (
    plot_before_after,
    plot_group_histograms,
    plot_group_volumes,
    plot_histograms,
    plot_mask_overlay,
)
from .tables import MIN_SESSIONS_FOR_FLAGS, OUTLIER_Z, PAIRED_METRIC_COLUMNS, volume_jumps

if TYPE_CHECKING:
    from .discovery import GroupImage
    from .measures import Measured

LOGGER = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parents[1] / "data" / "templates"


def _render(template: str, **context) -> str:
    import jinja2

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    return environment.get_template(template).render(**context)


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
    html = _render(
        "subject.html",
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
        "domain_warnings": record.get("DomainWarnings") or [],
        "provenance": [
            (key, json.dumps(value) if isinstance(value, dict) else value)
            for key, value in record.items()
        ],
    }


def _format(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if digits == 0 else f"{value:.{digits}g}"
    return str(value)


def _digits(column: str) -> int:
    return 0 if column.endswith("_mm3") else 3


#: The group report's session table: (column, significant digits; 0 = whole numbers).
_SESSION_CELLS = (
    ("brain_volume_mm3", 0),
    ("csf_volume_preproc_mm3", 0),
    ("gm_volume_preproc_mm3", 0),
    ("wm_volume_preproc_mm3", 0),
    ("csf_volume_harmonized_mm3", 0),
    ("gm_volume_harmonized_mm3", 0),
    ("wm_volume_harmonized_mm3", 0),
    ("ahd_preproc", 3),
    ("ahd_harmonized", 3),
    ("through_plane_preproc", 3),
    ("through_plane_harmonized", 3),
)
#: Headings of the paired metric columns (tables.PAIRED_METRIC_COLUMNS).
_PAIRED_HEADINGS = (
    "MSE",
    "AHD",
    "ΔCSF mm³",
    "ΔGM mm³",
    "ΔWM mm³",
    "Dice CSF",
    "Dice GM",
    "Dice WM",
    "HD95 CSF",
    "HD95 GM",
    "HD95 WM",
)


def write_group_report(
    output_dir: Path,
    *,
    images: list[GroupImage],
    measured: dict[str, Measured],
    rows: list[dict],
    paired_rows: list[dict],
    target_field: float,
    registration: str = "rigid",
) -> Path:
    """Render OUTPUT_DIR/group_T1w.html (figures in OUTPUT_DIR/group/figures/)."""
    figures = {
        "histograms": plot_group_histograms(
            [
                (
                    image.field_strength,
                    measured[image.stem].hist_preproc,
                    measured[image.stem].hist_harmonized,
                )
                for image in images
                if image.stem in measured
            ],
            target_field,
            output_dir / group_figure("histograms"),
        ),
        "volumes": plot_group_volumes(rows, output_dir / group_figure("tissue_volumes")),
    }
    sessions = []
    for row in sorted(rows, key=lambda row: (not row["flagged"], row["stem"])):
        thumbnail = measured[row["stem"]].thumbnail if row["stem"] in measured else None
        report = subject_report(row["participant_id"])
        sessions.append(
            {
                "stem": row["stem"],
                "flagged": row["flagged"],
                "reason": row["flag_reason"],
                "field": _format(row["source_field"]),
                "action": ("harmonized" if row["model_applied"] else "preprocessed only")
                if row["model_applied"] is not None
                else "n/a",
                "thumbnail": None if thumbnail is None else str(thumbnail.relative_to(output_dir)),
                "link": f"{report}#{row['stem']}" if (output_dir / report).is_file() else None,
                "cells": [_format(row.get(key), digits) for key, digits in _SESSION_CELLS],
            }
        )
    paired = [
        {
            "subject": row["participant_id"],
            "sessions": f"{row['source_session_id']} → {row['target_session_id']}",
            "method": row["method"],
            "cells": [_format(row[column], _digits(column)) for column in PAIRED_METRIC_COLUMNS],
        }
        for row in paired_rows
    ]
    means = []
    for method in ("Original", "Harmonized"):
        chosen = [row for row in paired_rows if row["method"] == method]
        if chosen:
            means.append(
                {
                    "method": method,
                    "cells": [
                        _format(
                            float(np.nanmean([row[column] for row in chosen])), _digits(column)
                        )
                        for column in PAIRED_METRIC_COLUMNS
                    ],
                }
            )
    models = sorted(
        {
            (row["model_name"], row["model_sha256"], row["sampler"], row["steps"], row["seed"])
            for row in rows
            if row["model_applied"]
        },
        key=str,
    )
    fields = {}
    for row in rows:
        fields[_format(row["source_field"])] = fields.get(_format(row["source_field"]), 0) + 1
    html = _render(
        "group.html",
        version=__version__,
        target_field=f"{target_field:g}",
        n_images=len(rows),
        n_subjects=len({row["participant_id"] for row in rows}),
        fields=sorted(fields.items()),
        n_flagged=sum(row["flagged"] for row in rows),
        models=models,
        flags_possible=len(measured) >= MIN_SESSIONS_FOR_FLAGS,
        min_sessions=MIN_SESSIONS_FOR_FLAGS,
        outlier_z=OUTLIER_Z,
        has_reference=any(row.get("ahd_preproc") is not None for row in rows),
        jumps=volume_jumps(rows, target_field),
        registration=registration,
        figures={key: str(path.relative_to(output_dir)) for key, path in figures.items()},
        sessions=sessions,
        paired=paired,
        paired_means=means,
        paired_columns=list(_PAIRED_HEADINGS),
    )
    return write_text(output_dir / GROUP_REPORT, html)
