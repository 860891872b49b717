"""Group level: one dataset-wide QC page from the participant outputs in OUTPUT_DIR.

Reads, per T1w image, the participant level's preprocessed T1w, brain mask and
harmonized T1w (with the sidecar's ``Harmonization`` object) and, from BIDS_DIR, only
the raw JSON sidecars (:mod:`.discovery`). Measures every image (:mod:`.measures`),
compares travelling subjects' scans with the paper's metrics (:mod:`.paired`), and
writes ``group_T1w.tsv`` and ``group_T1w_paired.tsv`` with their sidecars
(:mod:`.tables`) and ``group_T1w.html`` with its figures (:mod:`.report`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..derivatives import KINDS, ensure_bidsignore
from ..errors import MissingInputError
from .discovery import find_participant_outputs, read_sidecars
from .measures import measure_all
from .paired import paired_rows, travelling_pairs
from .report import write_group_report
from .tables import flag_outliers, image_rows, write_tables

LOGGER = logging.getLogger(__name__)


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
class GroupOutputs:
    """Where the group level wrote its results."""

    table: Path
    paired_table: Path
    report: Path
    rows: list[dict]
    paired_rows: list[dict]


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
        read_sidecars(image, settings.bids_dir)
    targets = sorted({image.target_field for image in images if image.target_field})
    if not targets:
        raise MissingInputError(
            f"No readable {KINDS['harmonized'].label} sidecar with a Harmonization object in "
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

    measured = measure_all(
        images,
        output_dir=output_dir,
        nprocs=settings.nprocs,
        sources={source.stem for source, _ in travelling_pairs(images, target)},
    )
    if not measured:
        raise MissingInputError(
            f"No image in {output_dir} has all participant outputs ("
            f"{', '.join(kind.label for kind in KINDS.values())}); re-run the participant level."
        )
    rows = image_rows(images, measured, target)
    paired = paired_rows(
        images, measured, target, sloppy=settings.sloppy, work_dir=settings.work_dir
    )
    flag_outliers(rows)
    ensure_bidsignore(output_dir)
    table, paired_table = write_tables(output_dir, rows, paired)
    report = write_group_report(
        output_dir,
        images=images,
        measured=measured,
        rows=rows,
        paired_rows=paired,
        target_field=target,
        registration="rigid, fewer iterations (--sloppy)" if settings.sloppy else "rigid",
    )
    LOGGER.info(
        "Group level done in %.0f s: %s, %s, %s",
        time.monotonic() - started,
        table,
        paired_table,
        report,
    )
    return GroupOutputs(table, paired_table, report, rows, paired)
