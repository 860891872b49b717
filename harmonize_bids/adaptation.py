"""Study adaptation, planned before any work: per participant, which other participants'
scans pool into its target-field reference (``--target-reference``) and its scanner map
(``--scanner-map``). Never the participant's own scans; the same choice in every job of an
HPC array. The scans are preprocessed and pooled by nodes of the graph
(:mod:`harmonize_bids.interfaces.reference`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .bids import (
    ReferencePlan,
    ScannerMapPlan,
    T1wImage,
    ValidationReport,
    check_t1w_file,
    discover_t1w,
    reference_scans,
    scanner_map_scans,
)
from .choices import SCANNER_MAP_SUBJECTS_MAX, SCANNER_MAP_SUBJECTS_MIN, scanner_map_planned
from .errors import MissingInputError, NoMatchingImagesError, ProcessingError

if TYPE_CHECKING:
    from .participant import ParticipantSettings

LOGGER = logging.getLogger(__name__)
#: --target-reference values that are not paths.
REFERENCE_AUTO, REFERENCE_NONE = "auto", "none"


def reference_candidates(
    settings: ParticipantSettings, layout, validation: ValidationReport
) -> list[T1wImage]:
    """Every usable T1w of the dataset (any participant) that other participants'
    references and scanner maps may pool; none needed when neither is planned."""
    if settings.target_reference != REFERENCE_AUTO and not scanner_map_planned(
        settings.scanner_map, settings.target_field
    ):
        return []
    try:
        candidates = discover_t1w(
            layout,
            session_labels=settings.session_labels,
            bids_filters=settings.bids_filters,
            source_field=settings.source_field,
        ).images
    except (MissingInputError, NoMatchingImagesError):
        return []
    return [
        i
        for i in candidates
        if not validation.errors_for(i, settings.bids_dir) and _usable(i.path)
    ]


def harmonized_subjects(images: list[T1wImage], settings: ParticipantSettings) -> list[str]:
    """Subjects with an image not at the target field."""
    return sorted({i.subject for i in images if i.field_strength != settings.target_field})


def plan_references(
    images: list[T1wImage],
    settings: ParticipantSettings,
    candidates: list[T1wImage],
    model_dir: Path | None,
) -> dict[str, ReferencePlan]:
    """Per subject with an image to harmonize: where its target-field reference comes
    from (``--target-reference``: auto, none or a file), logged."""
    subjects = harmonized_subjects(images, settings)
    if not subjects or model_dir is None:
        return {}
    option = settings.target_reference
    if option == REFERENCE_NONE:
        LOGGER.info("Target reference: the model folder's own (--target-reference none)")
        return {}
    if option != REFERENCE_AUTO:
        plan = explicit_reference(Path(option))
        LOGGER.info("Target reference: %s", option)
        return {subject: plan for subject in subjects}
    plans = {}
    for subject in subjects:
        scans = reference_scans(
            candidates,
            subject=subject,
            target_field=settings.target_field,
            limit=settings.reference_images,
        )
        if not scans:
            LOGGER.warning(
                "sub-%s: the dataset has no %g T scan of another participant; the model "
                "folder's own reference stands in for this study's scanner (the sidecar "
                "says so). Give one with --target-reference FILE.",
                subject,
                settings.target_field,
            )
            continue
        plans[subject] = ReferencePlan(
            images=tuple(i.path for i in scans),
            sources=tuple(i.uri(settings.bids_dir) for i in scans),
        )
        LOGGER.info(
            "sub-%s: target reference from %d %g T scan(s) of other participants: %s",
            subject,
            len(scans),
            settings.target_field,
            ", ".join(i.relative_to(settings.bids_dir) for i in scans),
        )
    return plans


def plan_scanner_maps(
    images: list[T1wImage],
    settings: ParticipantSettings,
    candidates: list[T1wImage],
    model_dir: Path | None,
) -> dict[str, ScannerMapPlan]:
    """Per subject with an image to harmonize (``--scanner-map``): the other
    participants scanned at both fields whose scans fit the study's scanner map, or why
    there is none (the default output then stands, and the sidecar says so), logged: a
    warning where it was asked for (``on``), information where it is the default."""
    subjects = harmonized_subjects(images, settings)
    planned = scanner_map_planned(settings.scanner_map, settings.target_field)
    if not planned or not subjects or model_dir is None:
        return {}
    from .model.folder import CALIBRATION_FILE

    if settings.scanner_map == "auto" and (model_dir / CALIBRATION_FILE).is_file():
        LOGGER.info(
            "No scanner map: the output calibration of %s, fitted on this study's pairs, "
            "sets its output's intensities (--scanner-map applies both).",
            model_dir,
        )
        return {}
    level = logging.WARNING if settings.scanner_map == "on" else logging.INFO
    target = settings.target_field
    plans = {}
    for subject in subjects:
        (source,) = {i.field_strength for i in images if i.subject == subject} - {target}
        mates = scanner_map_scans(
            candidates,
            subject=subject,
            source_field=source,
            target_field=target,
            limit=SCANNER_MAP_SUBJECTS_MAX,
        )
        if len(mates) < SCANNER_MAP_SUBJECTS_MIN:
            plans[subject] = ScannerMapPlan(
                unavailable=f"the dataset has {len(mates)} other participant(s) scanned at "
                f"both {source:g} T and {target:g} T; the scanner map needs "
                f"{SCANNER_MAP_SUBJECTS_MIN}, so the model's output stands unmapped"
            )
            LOGGER.log(level, "sub-%s: no scanner map: %s.", subject, plans[subject].unavailable)
            continue
        low = [i for label in mates for i in mates[label][0]]
        high = [i for label in mates for i in mates[label][1]]
        plans[subject] = ScannerMapPlan(
            subjects=tuple(mates),
            source_images=tuple(i.path for i in low),
            source_names=tuple(i.uri(settings.bids_dir) for i in low),
            target_images=tuple(i.path for i in high),
            target_names=tuple(i.uri(settings.bids_dir) for i in high),
        )
        LOGGER.info(
            "sub-%s: scanner map from %d participant(s) scanned at both fields: %s",
            subject,
            len(mates),
            ", ".join(f"sub-{label}" for label in mates),
        )
    return plans


def _usable(path: Path) -> bool:
    """Whether :func:`check_t1w_file` accepts the file (as another subject's reference)."""
    try:
        check_t1w_file(path)
    except (MissingInputError, ProcessingError):
        return False
    return True


def explicit_reference(path: Path) -> ReferencePlan:
    """``--target-reference PATH``: a reference JSON, a target-field T1w NIfTI, or a
    folder of them."""
    from .image.reference import read_reference

    if path.is_dir():
        scans = sorted(p for p in path.iterdir() if p.name.endswith((".nii", ".nii.gz")))
        if not scans:
            raise MissingInputError(
                f"--target-reference {path}: the folder holds no .nii or .nii.gz file."
            )
        return ReferencePlan(images=tuple(scans), sources=tuple(str(p) for p in scans))
    if path.name.endswith((".nii", ".nii.gz")):
        return ReferencePlan(images=(path,), sources=(str(path),))
    try:
        if read_reference(path) is None:
            raise ValueError("it records that no scan was usable")
    except ValueError as error:
        raise MissingInputError(f"--target-reference: {error}") from None
    return ReferencePlan(file=path)
