"""Group level: one dataset-wide QC page from the participant outputs in OUTPUT_DIR.

Reads, per T1w image, the participant level's ``desc-preproc_T1w``, ``desc-brain_mask``
and ``desc-harmonized_T1w`` (with the sidecar's ``Harmonization`` object) and, from
BIDS_DIR, only the raw JSON sidecars (the raw NIfTI files need not be present). Writes

- ``group_T1w.tsv``: one row per image (provenance, Atropos tissue volumes before and
  after harmonization, AHD to the target-field reference, through-plane consistency,
  outlier flags with their reasons);
- ``group_T1w_paired.tsv``: for travelling subjects (scans at both field strengths) the
  paper's metrics, Original (source preprocessed vs target) and Harmonized
  (harmonized vs target), the target scan registered into the source scan's space;
- ``group_T1w.html`` with its figures in ``group/figures/``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import write_text
from ..bids import round_field_strength, strip_prefix
from ..derivatives import ensure_bidsignore
from ..errors import HarmonizeBidsError, MissingInputError
from . import metrics

LOGGER = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parents[1] / "data" / "templates"
DERIVATIVES = {
    "preproc": "desc-preproc_T1w",
    "mask": "desc-brain_mask",
    "harmonized": "desc-harmonized_T1w",
}
_STEM = re.compile(
    r"^(sub-[A-Za-z0-9]+(?:_ses-[A-Za-z0-9]+)?(?:_acq-[A-Za-z0-9]+)?"
    r"(?:_run-[0-9]+)?)_(desc-(?:preproc|harmonized)_T1w|desc-brain_mask)"
    r"\.nii\.gz$"
)
#: |robust z| above which a session is flagged (Iglewicz and Hoaglin's 3.5).
OUTLIER_Z = 3.5
#: Fewer complete sessions than this: robust z-scores mean little; no flags.
MIN_SESSIONS_FOR_FLAGS = 5
TABLE = "group_T1w.tsv"
PAIRED_TABLE = "group_T1w_paired.tsv"
REPORT = "group_T1w.html"
FIGURES = Path("group") / "figures"


@dataclass
class GroupSettings:
    """Everything the group level needs, as explicit values."""

    bids_dir: Path
    output_dir: Path
    participant_labels: Sequence[str] = ()
    session_labels: Sequence[str] = ()
    work_dir: Path | None = None
    nprocs: int = 1
    sloppy: bool = False
    dry_run: bool = False


@dataclass
class GroupImage:
    """One image's participant outputs and what their sidecars say."""

    stem: str
    entities: dict[str, str]
    paths: dict[str, Path]
    record: dict = field(default_factory=dict)
    field_strength: float | None = None
    target_field: float | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return self.entities["sub"]

    @property
    def session(self) -> str | None:
        return self.entities.get("ses")


@dataclass
class GroupOutputs:
    """Where the group level wrote its results."""

    table: Path
    paired_table: Path
    report: Path
    rows: list[dict]
    paired_rows: list[dict]


# --------------------------------------------------------------------------- discovery


def find_participant_outputs(
    output_dir: Path, *, participant_labels: Sequence[str] = (), session_labels: Sequence[str] = ()
) -> list[GroupImage]:
    """The images the participant level wrote to OUTPUT_DIR, after the label filters.

    Raises MissingInputError when OUTPUT_DIR holds no participant output, or none for
    the selected participants and sessions.
    """
    found: dict[str, GroupImage] = {}
    for path in sorted(output_dir.glob("sub-*/**/anat/sub-*_*.nii.gz")):
        match = _STEM.match(path.name)
        if match is None:
            continue
        stem, kind = match.groups()
        entities = dict(part.split("-", 1) for part in stem.split("_"))
        image = found.setdefault(stem, GroupImage(stem=stem, entities=entities, paths={}))
        key = next(key for key, value in DERIVATIVES.items() if value == kind)
        image.paths[key] = path
    if not found:
        raise MissingInputError(
            f"No participant outputs in {output_dir} (sub-*/[ses-*/]anat/*_desc-preproc_T1w"
            ".nii.gz). Run the participant level into this OUTPUT_DIR first."
        )
    subjects = set(strip_prefix(participant_labels, "sub-"))
    sessions = set(strip_prefix(session_labels, "ses-"))
    selected = [
        image
        for image in found.values()
        if (not subjects or image.subject in subjects)
        and (not sessions or image.session in sessions)
    ]
    if not selected:
        have = sorted({f"sub-{image.subject}" for image in found.values()})
        raise MissingInputError(
            f"No participant outputs in {output_dir} match --participant-label "
            f"{' '.join(sorted(subjects)) or '(all)'} --session-label "
            f"{' '.join(sorted(sessions)) or '(all)'}; outputs exist for {', '.join(have)}."
        )
    for image in selected:
        image.missing = [DERIVATIVES[key] for key in DERIVATIVES if key not in image.paths]
    return sorted(selected, key=lambda image: image.stem)


def raw_sidecar(bids_dir: Path, entities: dict[str, str]) -> dict:
    """The T1w metadata of one raw image by BIDS inheritance, from the JSON files only.

    Every ``*T1w.json`` at the top level, in the subject folder, the session folder and
    the anat folder whose entities are a subset of the image's applies; deeper (more
    specific) files override shallower ones. The NIfTI file itself is not needed.
    """
    folders = [bids_dir, bids_dir / f"sub-{entities['sub']}"]
    if "ses" in entities:
        folders.append(folders[-1] / f"ses-{entities['ses']}")
    folders.append(folders[-1] / "anat")
    metadata: dict = {}
    for folder in folders:
        candidates = []
        for path in sorted(folder.glob("*T1w.json")) if folder.is_dir() else []:
            parts = path.name[: -len("T1w.json")].rstrip("_")
            own = dict(part.split("-", 1) for part in parts.split("_") if "-" in part)
            if all(entities.get(key) == value for key, value in own.items()):
                candidates.append((len(own), path))
        for _, path in sorted(candidates):
            try:
                metadata.update(json.loads(path.read_text()))
            except (OSError, ValueError) as error:
                LOGGER.warning("Ignoring unreadable sidecar %s: %s", path, error)
    return metadata


def _read_sidecars(image: GroupImage, bids_dir: Path) -> None:
    """Harmonization record (derivative sidecar) and field strength (raw sidecar)."""
    harmonized = image.paths.get("harmonized")
    if harmonized is not None:
        sidecar = harmonized.with_name(harmonized.name.replace(".nii.gz", ".json"))
        try:
            image.record = json.loads(sidecar.read_text()).get("Harmonization") or {}
        except (OSError, ValueError):
            image.missing.append(f"{DERIVATIVES['harmonized']}.json")
    reported = raw_sidecar(bids_dir, image.entities).get("MagneticFieldStrength")
    if reported is not None:
        try:
            image.field_strength = round_field_strength(reported, where=image.stem)
        except HarmonizeBidsError as error:
            LOGGER.warning("%s", error)
    if image.field_strength is None and image.record.get("SourceFieldStrength") is not None:
        image.field_strength = float(image.record["SourceFieldStrength"])
    recorded = image.record.get("SourceFieldStrength")
    if recorded is not None and image.field_strength != float(recorded):
        LOGGER.warning(
            "%s: the raw sidecar says %g T, the harmonization used %g T",
            image.stem,
            image.field_strength,
            float(recorded),
        )
    if image.record.get("TargetFieldStrength") is not None:
        image.target_field = float(image.record["TargetFieldStrength"])


# ----------------------------------------------------------------------------- running


def run_group(settings: GroupSettings) -> GroupOutputs | None:
    """Compute the group tables and report; None after a dry run."""
    started = time.monotonic()
    output_dir = settings.output_dir
    images = find_participant_outputs(
        output_dir,
        participant_labels=settings.participant_labels,
        session_labels=settings.session_labels,
    )
    for image in images:
        _read_sidecars(image, settings.bids_dir)
    targets = sorted({image.target_field for image in images if image.target_field})
    if not targets:
        raise MissingInputError(
            f"No readable desc-harmonized_T1w sidecar with a Harmonization object in "
            f"{output_dir}; re-run the participant level."
        )
    if len(targets) > 1:
        LOGGER.warning(
            "Outputs harmonized to several targets (%s T); comparing against %g T",
            ", ".join(f"{t:g}" for t in targets),
            targets[-1],
        )
    target = targets[-1]
    LOGGER.info(
        "Group level: %d image(s) of %d subject(s) in %s, target %g T",
        len(images),
        len({image.subject for image in images}),
        output_dir,
        target,
    )
    for image in images:
        LOGGER.info(
            "  %s  %s%s",
            image.stem,
            f"{image.field_strength:g} T" if image.field_strength else "field unknown",
            f"  (missing {', '.join(image.missing)})" if image.missing else "",
        )
    if settings.dry_run:
        LOGGER.info("Dry run: nothing computed, nothing written.")
        return None

    measured = _measure_all(
        images,
        figures_dir=output_dir / FIGURES,
        nprocs=settings.nprocs,
        sources={s.stem for s, _ in travelling_pairs(images, target)},
    )
    if not measured:
        raise MissingInputError(
            f"No image in {output_dir} has all participant outputs ("
            f"{', '.join(DERIVATIVES.values())}); re-run the participant level."
        )
    rows = _image_rows(images, measured, target)
    paired_rows = _paired_rows(
        images,
        measured,
        target,
        sloppy=settings.sloppy,
        work_dir=settings.work_dir,
        nprocs=settings.nprocs,
    )
    _flag_outliers(rows)
    ensure_bidsignore(output_dir)
    table = write_text(output_dir / TABLE, _tsv(rows, IMAGE_COLUMNS))
    paired = write_text(output_dir / PAIRED_TABLE, _tsv(paired_rows, PAIRED_COLUMNS))
    write_text(
        output_dir / TABLE.replace(".tsv", ".json"),
        json.dumps(COLUMN_DESCRIPTIONS, indent=2) + "\n",
    )
    write_text(
        output_dir / PAIRED_TABLE.replace(".tsv", ".json"),
        json.dumps(PAIRED_DESCRIPTIONS, indent=2) + "\n",
    )
    report = write_group_report(
        output_dir,
        images=images,
        measured=measured,
        rows=rows,
        paired_rows=paired_rows,
        target_field=target,
        registration="affine only (--sloppy)" if settings.sloppy else "affine then SyN",
    )
    LOGGER.info(
        "Group level done in %.0f s: %s, %s, %s", time.monotonic() - started, table, paired, report
    )
    return GroupOutputs(table, paired, report, rows, paired_rows)


@dataclass
class Measured:
    """Per-image measures kept for the tables and figures (no volumes: 300 sessions must
    fit in memory); segmentations only for the source scans of travelling subjects."""

    hist_preproc: np.ndarray
    hist_harmonized: np.ndarray
    values: dict[str, float]
    thumbnail: Path
    labels: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Volumes:
    """One image's participant outputs loaded as arrays."""

    preproc: np.ndarray
    harmonized: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]


def load_outputs(image: GroupImage) -> Volumes:
    """The preprocessed and harmonized images and the brain mask of one image."""
    preproc, affine, spacing = load_volume(image.paths["preproc"])
    return Volumes(
        preproc,
        load_volume(image.paths["harmonized"])[0],
        load_volume(image.paths["mask"])[0] > 0,
        affine,
        spacing,
    )


def load_volume(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A NIfTI image as float32 array, its affine and voxel size (mm)."""
    import nibabel as nib

    img = nib.load(path)
    data = np.asanyarray(img.dataobj, dtype=np.float32)
    return data, img.affine, tuple(float(z) for z in img.header.get_zooms()[:3])


def _measure_all(
    images: list[GroupImage], *, figures_dir: Path, nprocs: int, sources: set[str]
) -> dict[str, Measured]:
    """Segment and measure every complete image, in ``nprocs`` processes."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    todo = [image for image in images if not image.missing]
    measured: dict[str, Measured] = {}
    tick = time.monotonic()

    def done(image: GroupImage, result: Measured) -> None:
        measured[image.stem] = result
        LOGGER.info(
            "[%d/%d] %s measured (%.0f s so far)",
            len(measured),
            len(todo),
            image.stem,
            time.monotonic() - tick,
        )

    if nprocs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=min(nprocs, len(todo))) as pool:
            futures = {
                pool.submit(
                    _measure_image,
                    image,
                    figures_dir=figures_dir,
                    keep_labels=image.stem in sources,
                ): image
                for image in todo
            }
            for future in as_completed(futures):
                done(futures[future], future.result())
    else:
        for image in todo:
            done(
                image,
                _measure_image(image, figures_dir=figures_dir, keep_labels=image.stem in sources),
            )
    return measured


def _measure_image(image: GroupImage, *, figures_dir: Path, keep_labels: bool) -> Measured:
    loaded = load_outputs(image)
    preproc, harmonized, mask, spacing = (
        loaded.preproc,
        loaded.harmonized,
        loaded.mask,
        loaded.spacing,
    )
    voxel = float(np.prod(spacing))
    labels = {
        key: metrics.segment_tissues(volume, mask, spacing=spacing)
        for key, volume in (("preproc", preproc), ("harmonized", harmonized))
    }
    values: dict[str, float] = {"brain_volume_mm3": float(mask.sum() * voxel)}
    for key, label in labels.items():
        for tissue, volume in metrics.tissue_volumes(label, voxel_volume=voxel).items():
            values[f"{tissue.lower()}_volume_{key}_mm3"] = volume
    for key, volume in (("preproc", preproc), ("harmonized", harmonized)):
        values[f"through_plane_{key}"] = metrics.through_plane_consistency(volume, mask)
    thumbnail = plot_thumbnail(harmonized, mask, figures_dir / f"{image.stem}_thumbnail.png")
    return Measured(
        metrics.brain_histogram(preproc, mask),
        metrics.brain_histogram(harmonized, mask),
        values,
        thumbnail,
        labels if keep_labels else {},
    )


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
            "Description": f"{t.upper()} volume, ANTs Atropos 3-class segmentation (k-means "
            f"initialisation) of the {name} image inside the brain mask",
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
        "Description": "true if a robust z-score (median/MAD) exceeds 3.5 or outputs are missing"
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
        "(ANTs affine then SyN, Mattes mutual information)"
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
            "Description": f"|{t.upper()} volume - {t.upper()} volume of the target| (Atropos)",
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


def _image_rows(
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
            "acq_id": image.entities.get("acq"),
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


def _flag_outliers(rows: list[dict]) -> None:
    complete = [row for row in rows if not row["reasons"]]
    for row in complete:
        for tissue in ("csf", "gm", "wm"):
            row[f"{tissue}_fraction"] = (
                row[f"{tissue}_volume_harmonized_mm3"] / row["brain_volume_mm3"]
            )
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
        row["flagged"] = bool(row["reasons"])
        row["flag_reason"] = "; ".join(row["reasons"])


def registered_target_path(
    work_dir: Path, source_stem: str, target_stem: str, *, sloppy: bool = False
) -> Path:
    """Where the group level keeps a target scan registered into a source scan's space
    (``sloppy``: affine only; otherwise affine then SyN)."""
    kind = "affine" if sloppy else "syn"
    return work_dir / "group" / f"{target_stem}_to_{source_stem}_{kind}.nii.gz"


def _register(
    source: Volumes,
    target: Volumes,
    cached: Path | None,
    *,
    sloppy: bool,
    inputs: Sequence[Path] = (),
) -> np.ndarray:
    """The target's preprocessed image in the source's space, reusing the work dir's copy
    when it is newer than the participant outputs it came from."""
    import nibabel as nib

    from ..image import register_arrays

    fresh = (
        cached is not None
        and cached.is_file()
        and all(cached.stat().st_mtime >= path.stat().st_mtime for path in inputs)
    )
    if fresh:
        img = nib.load(cached)
        if img.shape == source.preproc.shape and np.allclose(img.affine, source.affine):
            LOGGER.info("Reusing %s", cached)
            return np.asanyarray(img.dataobj, dtype=np.float32)
    registered = register_arrays(
        source.preproc,
        target.preproc,
        source.affine,
        target.affine,
        fixed_mask=source.mask,
        sloppy=sloppy,
        seed=1,
    )
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=cached.parent, suffix=".nii.gz")
        os.close(handle)
        nib.save(nib.Nifti1Image(registered, source.affine), partial)
        os.replace(partial, cached)
    return registered


def travelling_pairs(
    images: list[GroupImage], target: float
) -> list[tuple[GroupImage, GroupImage]]:
    """(source, target) scan pairs of travelling subjects: every harmonized scan of a
    subject with every scan of the same subject acquired at the target field."""
    pairs = []
    for subject in sorted({image.subject for image in images}):
        mine = [i for i in images if i.subject == subject and not i.missing]
        sources = [
            i
            for i in mine
            if i.field_strength is not None
            and i.field_strength != target
            and i.record.get("ModelApplied")
        ]
        targets = [i for i in mine if i.field_strength == target]
        pairs += [(source, reference) for source in sources for reference in targets]
    return pairs


def _paired_rows(
    images: list[GroupImage],
    measured: dict[str, Measured],
    target: float,
    *,
    sloppy: bool,
    work_dir: Path | None = None,
    nprocs: int = 1,
) -> list[dict]:
    """The paper's metrics for each travelling subject's source scan vs its target scan."""
    del nprocs  # pairs are not parallel yet (see below)
    pairs = [
        (source, reference)
        for source, reference in travelling_pairs(images, target)
        if source.stem in measured and reference.stem in measured
    ]
    jobs = [
        dict(
            source=source,
            reference=reference,
            target=target,
            sloppy=sloppy,
            labels=measured[source.stem].labels,
            cached=None
            if work_dir is None
            else registered_target_path(work_dir, source.stem, reference.stem, sloppy=sloppy),
        )
        for source, reference in pairs
    ]
    # Pairs run in this process: MONAI/torch in a forked worker hung once torch's threads
    # existed in the parent (participant level run in the same process). A spawn-context
    # pool would work but is not done yet.
    tick = time.monotonic()
    results = []
    for job in jobs:
        results.append(_pair_rows(**job))
        LOGGER.info(
            "sub-%s: %s vs %s measured (%.0f s so far)",
            job["source"].subject,
            job["source"].stem,
            job["reference"].stem,
            time.monotonic() - tick,
        )
    if not results:
        LOGGER.info("No travelling subject (scans at both fields): no paired metrics")
    return [row for rows in results for row in rows]


def _pair_rows(
    *,
    source: GroupImage,
    reference: GroupImage,
    target: float,
    sloppy: bool,
    labels: dict[str, np.ndarray],
    cached: Path | None,
) -> list[dict]:
    """Original and Harmonized rows of one (source scan, target scan) pair."""
    s, t = load_outputs(source), load_outputs(reference)
    registered = _register(
        s,
        t,
        cached,
        sloppy=sloppy,
        inputs=[source.paths["preproc"], source.paths["mask"], reference.paths["preproc"]],
    )
    rows = []
    for method, row in paired_metrics(
        s.preproc,
        s.harmonized,
        registered,
        s.mask,
        spacing=s.spacing,
        labels_source=labels.get("preproc"),
        labels_harmonized=labels.get("harmonized"),
    ).items():
        rows.append(
            {
                "participant_id": source.subject,
                "source_session_id": source.session,
                "target_session_id": reference.session,
                "source_field": source.field_strength,
                "target_field": target,
                "method": method,
                **row,
            }
        )
    return rows


def paired_metrics(
    source: np.ndarray,
    harmonized: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    labels_source: np.ndarray | None = None,
    labels_harmonized: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Original (source vs target) and Harmonized (harmonized vs target) paired metrics.

    All three images share one grid (the target registered into the source's space) and
    one mask (the source brain mask): MSE, AHD, absolute CSF/GM/WM volume differences,
    Dice and Hausdorff 95 against the target's Atropos segmentation inside the mask.
    Precomputed segmentations of source and harmonized (inside ``mask``) may be passed.
    """
    voxel = float(np.prod(spacing))
    labels_target = metrics.segment_tissues(target, mask, spacing=spacing)
    volumes_target = metrics.tissue_volumes(labels_target, voxel_volume=voxel)
    results = {}
    for method, image, labels in (
        ("Original", source, labels_source),
        ("Harmonized", harmonized, labels_harmonized),
    ):
        if labels is None:
            labels = metrics.segment_tissues(image, mask, spacing=spacing)
        volumes = metrics.tissue_volumes(labels, voxel_volume=voxel)
        row = {"mse": metrics.mse(image, target, mask), "ahd": metrics.ahd(image, target, mask)}
        for tissue in metrics.TISSUES:
            row[f"{tissue.lower()}_volume_difference_mm3"] = abs(
                volumes[tissue] - volumes_target[tissue]
            )
        for tissue, value in metrics.dice(labels, labels_target).items():
            row[f"dice_{tissue.lower()}"] = value
        for tissue, value in metrics.hausdorff95(labels, labels_target, spacing=spacing).items():
            row[f"hd95_{tissue.lower()}_mm"] = value
        results[method] = row
    return results


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _tsv(rows: list[dict], columns: Sequence[str]) -> str:
    lines = ["\t".join(columns)]
    lines += ["\t".join(_cell(row.get(column)) for column in columns) for row in rows]
    return "\n".join(lines) + "\n"


def save_figure(figure, out_file: Path, *, dpi: int = 80) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    out_file.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(
        dir=out_file.parent, prefix=f".{out_file.stem}.", suffix=".png"
    )
    os.close(handle)
    figure.savefig(partial, dpi=dpi, bbox_inches="tight", facecolor=figure.get_facecolor())
    plt.close(figure)
    os.replace(partial, out_file)
    return out_file


# ------------------------------------------------------------------------------ report

FIELD_COLOURS = {1.5: "tab:orange", 3.0: "tab:blue"}


def _fraction(row: dict, tissue: str, key: str) -> float:
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
                            _fraction(row, tissue, key)
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


def plot_group_histograms(
    images: list[GroupImage], measured: dict[str, Measured], target: float, out_file: Path
) -> Path:
    """Brain histograms (density) per image, coloured by field, before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = (np.arange(metrics.HISTOGRAM_BINS) + 0.5) / metrics.HISTOGRAM_BINS
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True, facecolor="white")
    reference = [
        measured[i.stem].hist_preproc
        for i in images
        if i.stem in measured and i.field_strength == target
    ]
    for axis, key, title in zip(
        axes, ("preproc", "harmonized"), ("before: preprocessed", "after: harmonized"), strict=True
    ):
        seen = set()
        for image in images:
            if image.stem not in measured:
                continue
            counts = getattr(measured[image.stem], f"hist_{key}")
            label = None
            if image.field_strength not in seen:
                seen.add(image.field_strength)
                label = f"acquired at {image.field_strength:g} T"
            axis.plot(
                centres,
                counts / max(counts.sum(), 1),
                color=FIELD_COLOURS.get(image.field_strength, "tab:gray"),
                alpha=0.6,
                linewidth=1,
                label=label,
            )
        if reference:
            pooled = np.sum(reference, axis=0)
            axis.plot(
                centres,
                pooled / pooled.sum(),
                color="black",
                linestyle="--",
                linewidth=1.5,
                label=f"{target:g} T reference (pooled)",
            )
        axis.set_title(title, loc="left", fontsize=10)
        axis.set_xlabel("intensity (preprocessed [0, 1] scale)")
        axis.legend(fontsize=8, frameon=False)
    axes[0].set_ylabel("fraction of brain voxels")
    # Scale to the acquired images' curves: a failed harmonization's spikes (all voxels
    # at 0 or 1) would otherwise flatten everything else; they are cut at the top.
    peaks = [
        (measured[i.stem].hist_preproc / max(measured[i.stem].hist_preproc.sum(), 1)).max()
        for i in images
        if i.stem in measured
    ]
    if peaks:
        axes[0].set_ylim(0, 1.6 * max(peaks))
    return save_figure(figure, out_file)


def plot_group_volumes(rows: list[dict], out_file: Path) -> Path:
    """CSF/GM/WM fraction of the brain by acquisition field, before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    complete = [row for row in rows if "brain_volume_mm3" in row and row["source_field"]]
    fields = sorted({row["source_field"] for row in complete})
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.4), facecolor="white")
    rng = np.random.default_rng(0)
    for axis, tissue in zip(axes, ("csf", "gm", "wm"), strict=True):
        groups, labels, colours = [], [], []
        for key, when in (("preproc", "before"), ("harmonized", "after")):
            for f in fields:
                groups.append(
                    [
                        100 * _fraction(row, tissue, key)
                        for row in complete
                        if row["source_field"] == f
                    ]
                )
                labels.append(f"{f:g} T\n{when}")
                colours.append(FIELD_COLOURS.get(f, "tab:gray"))
        positions = np.arange(len(groups)) + np.repeat([0, 0.5], len(fields))
        axis.boxplot(
            groups,
            positions=positions,
            widths=0.5,
            showfliers=False,
            medianprops={"color": "black"},
        )
        for position, values, colour in zip(positions, groups, colours, strict=True):
            jitter = rng.uniform(-0.12, 0.12, len(values))
            axis.scatter(position + jitter, values, s=14, color=colour, zorder=3)
        axis.set_xticks(positions, labels, fontsize=8)
        axis.set_title(f"{tissue.upper()} (% of brain volume)", loc="left", fontsize=10)
    return save_figure(figure, out_file)


def plot_thumbnail(volume: np.ndarray, mask: np.ndarray, out_file: Path) -> Path:
    """Small sagittal, coronal and axial views through the brain's centre."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centre = (
        [int(round(c)) for c in np.argwhere(mask).mean(axis=0)]
        if mask.any()
        else [s // 2 for s in volume.shape]
    )
    views = [
        np.rot90(volume[centre[0], :, :]),
        np.rot90(volume[:, centre[1], :]),
        np.rot90(volume[:, :, centre[2]]),
    ]
    figure, axes = plt.subplots(1, 3, figsize=(4.2, 1.5), facecolor="black")
    for axis, view in zip(axes, views, strict=True):
        axis.imshow(view, cmap="gray", vmin=0, vmax=1)
        axis.axis("off")
    figure.subplots_adjust(left=0, right=1, top=1, bottom=0, wspace=0.02)
    return save_figure(figure, out_file, dpi=60)


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


def write_group_report(
    output_dir: Path,
    *,
    images: list[GroupImage],
    measured: dict[str, Measured],
    rows: list[dict],
    paired_rows: list[dict],
    target_field: float,
    registration: str = "affine then SyN",
) -> Path:
    """Render OUTPUT_DIR/group_T1w.html (figures in OUTPUT_DIR/group/figures/)."""
    import jinja2

    figures_dir = output_dir / FIGURES
    figures = {
        "histograms": plot_group_histograms(
            images, measured, target_field, figures_dir / "histograms.png"
        ),
        "volumes": plot_group_volumes(rows, figures_dir / "tissue_volumes.png"),
    }
    sessions = []
    for row in sorted(rows, key=lambda row: (not row["flagged"], row["stem"])):
        thumbnail = measured[row["stem"]].thumbnail if row["stem"] in measured else None
        report = f"sub-{row['participant_id']}.html"
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
                "cells": [
                    _format(row.get(key), digits)
                    for key, digits in (
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
                ],
            }
        )
    paired = [
        {
            "subject": row["participant_id"],
            "sessions": f"{row['source_session_id']} → {row['target_session_id']}",
            "method": row["method"],
            "cells": [_format(row[column], _digits(column)) for column in PAIRED_COLUMNS[6:]],
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
                        for column in PAIRED_COLUMNS[6:]
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
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    html = environment.get_template("group.html").render(
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
        paired_columns=[
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
        ],
    )
    return write_text(output_dir / REPORT, html)
