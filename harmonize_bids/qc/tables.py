"""Group tables: their columns and descriptions, the rows, outlier flags, and the TSV.

``group_T1w.tsv`` holds one row per image (provenance, tissue volumes before
and after harmonization, AHD to the target-field reference, through-plane consistency,
outlier flags with their reasons); ``group_T1w_paired.tsv`` the paired metrics of
travelling subjects (:mod:`.paired`). Each has a JSON sidecar describing its columns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import write_text
from ..derivatives import (
    GROUP_PAIRED_TABLE,
    GROUP_PAIRED_TABLE_SIDECAR,
    GROUP_TABLE,
    GROUP_TABLE_SIDECAR,
)
from . import metrics

if TYPE_CHECKING:
    from .discovery import GroupImage
    from .measures import Measured

LOGGER = logging.getLogger(__name__)
#: |robust z| above which a session is flagged (Iglewicz and Hoaglin's 3.5).
OUTLIER_Z = 3.5
#: Fewer complete sessions than this: robust z-scores mean little; no flags.
MIN_SESSIONS_FOR_FLAGS = 5

IMAGE_COLUMNS = (
    "participant_id",
    "session_id",
    "acq_id",
    "run_id",
    "source_field",
    "target_field",
    "model_applied",
    "model_name",
    "model_sha256",
    "sampler",
    "steps",
    "seed",
    "brain_volume_mm3",
    "csf_volume_preproc_mm3",
    "gm_volume_preproc_mm3",
    "wm_volume_preproc_mm3",
    "csf_volume_harmonized_mm3",
    "gm_volume_harmonized_mm3",
    "wm_volume_harmonized_mm3",
    "ahd_preproc",
    "ahd_harmonized",
    "through_plane_preproc",
    "through_plane_harmonized",
    "flagged",
    "flag_reason",
)
PAIRED_COLUMNS = (
    "participant_id",
    "source_session_id",
    "target_session_id",
    "source_field",
    "target_field",
    "method",
    "mse",
    "ahd",
    "csf_volume_difference_mm3",
    "gm_volume_difference_mm3",
    "wm_volume_difference_mm3",
    "dice_csf",
    "dice_gm",
    "dice_wm",
    "hd95_csf_mm",
    "hd95_gm_mm",
    "hd95_wm_mm",
)
#: The paired metric columns (after the identifying ones), in table order.
PAIRED_METRIC_COLUMNS = PAIRED_COLUMNS[6:]
COLUMN_DESCRIPTIONS = {
    "participant_id": {"Description": "subject label"},
    "session_id": {"Description": "session label (n/a without sessions)"},
    "acq_id": {"Description": "acquisition label (n/a when absent)"},
    "run_id": {"Description": "run label (n/a when absent)"},
    "source_field": {"Description": "field strength the image was acquired at", "Units": "T"},
    "target_field": {
        "Description": "field strength whose contrast the output takes",
        "Units": "T",
    },
    "model_applied": {
        "Description": "true if a diffusion model harmonized the image, "
        "false if it was already at the target field"
    },
    "model_name": {"Description": "Harmonization.ModelName"},
    "model_sha256": {"Description": "Harmonization.ModelSHA256 (model weights)"},
    "sampler": {"Description": "Harmonization.Sampler"},
    "steps": {"Description": "Harmonization.Steps"},
    "seed": {"Description": "Harmonization.Seed"},
    "brain_volume_mm3": {"Description": "brain mask volume", "Units": "mm^3"},
    **{
        f"{t}_volume_{k}_mm3": {
            "Description": f"{t.upper()} volume, 3-class segmentation (Atropos's k-means "
            f"initialised MRF model) of the {name} image inside the brain mask",
            "Units": "mm^3",
        }
        for k, name in (("preproc", "preprocessed"), ("harmonized", "harmonized"))
        for t in ("csf", "gm", "wm")
    },
    "ahd_preproc": {
        "Description": "sum over 255 bins on [0,1] of |h - N p_ref|: the brain "
        "histogram h (N voxels) of the preprocessed image against "
        "the pooled histogram p_ref of the other preprocessed "
        "images acquired at the target field (n/a if none)"
    },
    "ahd_harmonized": {"Description": "as ahd_preproc, for the harmonized image"},
    "through_plane_preproc": {
        "Description": "mean |difference| of brain-voxel neighbours "
        "across sagittal slices divided by the mean of "
        "the two in-plane directions (about 1 for a "
        "smooth image; stripes raise it)"
    },
    "through_plane_harmonized": {"Description": "as through_plane_preproc, harmonized image"},
    "flagged": {
        "Description": "true if a robust z-score (median/MAD) exceeds 3.5, outputs are "
        "missing, or the harmonization recorded a DomainWarning (input or output outside "
        "what the model was trained on)"
    },
    "flag_reason": {"Description": "why the image is flagged"},
}
PAIRED_DESCRIPTIONS = {
    "participant_id": {"Description": "a travelling subject (scans at both fields)"},
    "source_session_id": {
        "Description": "session of the source-field scan; all metrics "
        "are computed in its space, inside its brain mask"
    },
    "target_session_id": {
        "Description": "session of the real target-field scan, its "
        "preprocessed image registered to the source scan "
        "(ANTs rigid, Mattes mutual information)"
    },
    "method": {
        "Description": "Original: source preprocessed vs target; Harmonized: "
        "harmonized vs target (Durrer et al. 2023)"
    },
    "mse": {"Description": "mean squared difference inside the source brain mask, [0,1] scale"},
    "ahd": {
        "Description": "sum over 255 bins on [0,1] of the absolute difference of the "
        "brain-voxel histograms (counts)"
    },
    **{
        f"{t}_volume_difference_mm3": {
            "Description": f"|{t.upper()} volume - {t.upper()} volume of the target|",
            "Units": "mm^3",
        }
        for t in ("csf", "gm", "wm")
    },
    **{
        f"dice_{t}": {"Description": f"Dice of the {t.upper()} segmentations vs the target"}
        for t in ("csf", "gm", "wm")
    },
    **{
        f"hd95_{t}_mm": {
            "Description": f"95th-percentile Hausdorff distance of the "
            f"{t.upper()} segmentations vs the target (MONAI)",
            "Units": "mm",
        }
        for t in ("csf", "gm", "wm")
    },
}


def image_rows(
    images: list[GroupImage], measured: dict[str, Measured], target: float
) -> list[dict]:
    """One row per image; AHD against the leave-one-out pooled target-field histogram."""
    at_target = {
        stem: m.hist_preproc
        for stem, m in measured.items()
        if next(i for i in images if i.stem == stem).field_strength == target
    }
    pooled = sum(at_target.values()) if at_target else None
    rows = []
    for image in images:
        record = image.record
        row = {
            "participant_id": image.subject,
            "session_id": image.session,
            "acq_id": image.entities.get("acquisition"),
            "run_id": image.entities.get("run"),
            "source_field": image.field_strength,
            "target_field": image.target_field,
            "model_applied": record.get("ModelApplied"),
            "model_name": record.get("ModelName"),
            "model_sha256": record.get("ModelSHA256"),
            "sampler": record.get("Sampler"),
            "steps": record.get("Steps"),
            "seed": record.get("Seed"),
            "stem": image.stem,
            "reasons": [],
            "domain_warnings": record.get("DomainWarnings") or [],
        }
        if image.missing:
            row["reasons"].append(f"participant outputs missing: {', '.join(image.missing)}")
            rows.append(row)
            continue
        found = measured[image.stem]
        row.update(found.values)
        reference = None
        if pooled is not None:
            reference = pooled - at_target.get(image.stem, 0)
            if reference.sum() <= 0:
                reference = None
        for key, histogram in (
            ("preproc", found.hist_preproc),
            ("harmonized", found.hist_harmonized),
        ):
            row[f"ahd_{key}"] = (
                None if reference is None else metrics.ahd_to_reference(histogram, reference)
            )
        rows.append(row)
    return rows


#: (column or derived quantity, one-sided high?, reason text)
_FLAG_RULES = (
    ("ahd_harmonized", True, "harmonized histogram far from the target-field reference"),
    ("through_plane_harmonized", True, "stripes across sagittal slices after harmonization"),
    ("csf_fraction", False, "unusual CSF fraction after harmonization"),
    ("gm_fraction", False, "unusual GM fraction after harmonization"),
    ("wm_fraction", False, "unusual WM fraction after harmonization"),
    ("brain_volume_mm3", False, "unusual brain mask volume (check skull stripping)"),
)


def flag_outliers(rows: list[dict]) -> None:
    """Set each row's ``flagged`` and ``flag_reason``: missing outputs, or a robust z
    beyond :data:`OUTLIER_Z` (only with :data:`MIN_SESSIONS_FOR_FLAGS` complete rows)."""
    complete = [row for row in rows if not row["reasons"]]
    for row in complete:
        for tissue in ("csf", "gm", "wm"):
            row[f"{tissue}_fraction"] = tissue_fraction(row, tissue, "harmonized")
    if len(complete) >= MIN_SESSIONS_FOR_FLAGS:
        for key, high_only, reason in _FLAG_RULES:
            values = [np.nan if row.get(key) is None else row[key] for row in complete]
            for row, z in zip(complete, metrics.robust_z(values), strict=True):
                row[f"z_{key}"] = z
                if np.isfinite(z) and (z > OUTLIER_Z or (not high_only and z < -OUTLIER_Z)):
                    row["reasons"].append(f"{reason} (robust z {z:+.1f})")
    else:
        LOGGER.info("Fewer than %d complete sessions: no outlier flags", MIN_SESSIONS_FOR_FLAGS)
    for row in rows:
        row["reasons"] += [f"outside the model's domain: {w}" for w in row["domain_warnings"]]
        row["flagged"] = bool(row["reasons"])
        row["flag_reason"] = "; ".join(row["reasons"])


def tissue_fraction(row: dict, tissue: str, key: str) -> float:
    """A tissue's volume over the brain volume (``key``: preproc or harmonized)."""
    return row[f"{tissue}_volume_{key}_mm3"] / row["brain_volume_mm3"]


def volume_jumps(rows: list[dict], target: float) -> list[dict]:
    """Median tissue fraction (of brain volume) per field, before and after, and the jump.

    The jump is the median at the other field minus the median at the target field,
    in percentage points; it should shrink after harmonization.
    """
    complete = [row for row in rows if "brain_volume_mm3" in row]
    fields = sorted({row["source_field"] for row in complete if row["source_field"]})
    others = [f for f in fields if f != target]
    if target not in fields or not others:
        return []
    jumps = []
    for tissue in ("csf", "gm", "wm"):
        entry = {"tissue": tissue.upper(), "other_field": f"{others[0]:g}"}
        for key in ("preproc", "harmonized"):
            medians = {
                f: 100
                * float(
                    np.median(
                        [
                            tissue_fraction(row, tissue, key)
                            for row in complete
                            if row["source_field"] == f
                        ]
                    )
                )
                for f in (target, others[0])
            }
            entry[f"{key}_target"] = medians[target]
            entry[f"{key}_other"] = medians[others[0]]
            entry[f"{key}_jump"] = medians[others[0]] - medians[target]
        before, after = abs(entry["preproc_jump"]), abs(entry["harmonized_jump"])
        entry["shrink"] = None if before == 0 else 100 * (1 - after / before)
        jumps.append(entry)
    return jumps


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def tsv(rows: list[dict], columns: Sequence[str]) -> str:
    """Rows as a BIDS TSV: a header, tab-separated cells, ``n/a`` for missing values."""
    lines = ["\t".join(columns)]
    lines += ["\t".join(_cell(row.get(column)) for column in columns) for row in rows]
    return "\n".join(lines) + "\n"


def write_tables(output_dir: Path, rows: list[dict], paired_rows: list[dict]) -> tuple[Path, Path]:
    """Write both group tables and their JSON sidecars; returns the two TSV paths."""
    table = write_text(output_dir / GROUP_TABLE, tsv(rows, IMAGE_COLUMNS))
    paired = write_text(output_dir / GROUP_PAIRED_TABLE, tsv(paired_rows, PAIRED_COLUMNS))
    write_text(output_dir / GROUP_TABLE_SIDECAR, json.dumps(COLUMN_DESCRIPTIONS, indent=2) + "\n")
    write_text(
        output_dir / GROUP_PAIRED_TABLE_SIDECAR,
        json.dumps(PAIRED_DESCRIPTIONS, indent=2) + "\n",
    )
    return table, paired
