"""BIDS input: validation, T1w discovery, field strength, and the output location checks.

Discovery returns one `T1wImage` per selected T1w file with its field strength read
from `MagneticFieldStrength` (BIDS inheritance applies) and rounded to 1.5 or 3 T.
The output dataset (names, descriptions, dataset_description.json) is derivatives.py's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .choices import Direction
from .errors import (
    InvalidBIDSError,
    MissingInputError,
    NoMatchingImagesError,
    OutputNotCreatableError,
    ProcessingError,
    UsageError,
)

LOGGER = logging.getLogger(__name__)

SUPPORTED_FIELDS = (1.5, 3.0)
# Half-widths around each supported field: vendors report e.g. 1.494 or 2.89 T.
_FIELD_TOLERANCE = {1.5: 0.3, 3.0: 0.5}
# Entities a --bids-filter-file may constrain for the T1w query.
_FILTER_ENTITIES = {
    "session",
    "acquisition",
    "ceagent",
    "reconstruction",
    "run",
    "part",
    "echo",
    "inversion",
    "flip",
    "mtransfer",
    "datatype",
    "extension",
    "space",
}


@dataclass(frozen=True)
class T1wImage:
    """One selected T1w image and the field strength it was acquired at."""

    path: Path
    subject: str
    session: str | None
    acquisition: str | None
    run: str | None
    field_strength: float
    field_origin: str  # "sidecar" or "--source-field"

    @property
    def entities(self) -> dict[str, str]:
        """BIDS entities that name this image's derivatives."""
        found = {
            "subject": self.subject,
            "session": self.session,
            "acquisition": self.acquisition,
            "run": self.run,
        }
        return {key: value for key, value in found.items() if value is not None}

    def relative_to(self, bids_dir: Path) -> str:
        return os.path.relpath(self.path, bids_dir)

    def uri(self, bids_dir: Path) -> str:
        """How records name this raw scan (a BIDS URI)."""
        return f"bids:raw:{self.relative_to(bids_dir)}"


@dataclass
class Discovery:
    """The images to process, and those skipped with a one-line reason each."""

    images: list[T1wImage] = field(default_factory=list)
    skipped: dict[Path, str] = field(default_factory=dict)


def round_field_strength(value: object, *, where: str) -> float:
    """Map a reported field strength (tesla) to 1.5 or 3.0, or explain why not."""
    try:
        tesla = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MissingInputError(
            f"{where}: MagneticFieldStrength {value!r} is not a number. "
            "Fix the sidecar or pass --source-field."
        ) from None
    for supported in SUPPORTED_FIELDS:
        if abs(tesla - supported) <= _FIELD_TOLERANCE[supported]:
            return supported
    raise MissingInputError(
        f"{where}: MagneticFieldStrength {tesla:g} T is not supported; harmonize_bids "
        "models map between 1.5 T and 3 T. Exclude it with --bids-filter-file."
    )


@dataclass
class ValidationReport:
    """Errors from the BIDS validator: (code, location relative to BIDS_DIR) pairs."""

    errors: list[tuple[str, str]] = field(default_factory=list)

    def dataset_errors(self) -> list[tuple[str, str]]:
        """Errors outside any subject folder: the dataset as a whole is invalid."""
        return [(code, where) for code, where in self.errors if not where.startswith("sub-")]

    def errors_for(self, image: T1wImage, bids_dir: Path) -> list[str]:
        """Error codes located at this image or at its own sidecar."""
        own = _locations(image, bids_dir)
        return [code for code, where in self.errors if where in own]

    def errors_elsewhere(
        self, images: Iterable[T1wImage], bids_dir: Path
    ) -> list[tuple[str, str]]:
        """Errors located at none of these images and none of their own sidecars."""
        known = {where for image in images for where in _locations(image, bids_dir)}
        return [(code, where) for code, where in self.errors if where not in known]


def _locations(image: T1wImage, bids_dir: Path) -> tuple[str, str]:
    """Where the validator reports an image and its own sidecar (relative to BIDS_DIR)."""
    own = image.relative_to(bids_dir)
    return own, re.sub(r"\.nii(\.gz)?$", ".json", own)


def validate_bids(bids_dir: Path) -> ValidationReport:
    """Run the official BIDS validator (bids-validator-deno, offline).

    Raises InvalidBIDSError when the dataset as a whole is invalid; errors inside
    subject folders are returned, so the images they concern can be skipped.
    """
    executable = _find_validator()
    result = subprocess.run(
        [executable, "--format", "json", str(bids_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        issues = json.loads(result.stdout)["issues"]["issues"]
    except (json.JSONDecodeError, KeyError):
        raise InvalidBIDSError(
            f"{bids_dir}: the BIDS validator failed to run ({result.stderr.strip()[:200]}). "
            "Use --skip-bids-validation to bypass it."
        ) from None
    report = ValidationReport(
        [
            (issue["code"], issue.get("location", "/").lstrip("/"))
            for issue in issues
            if issue["severity"] == "error"
        ]
    )
    fatal = report.dataset_errors()
    if fatal:
        listed = "; ".join(f"{code} at /{where}" for code, where in fatal[:3])
        more = f" (and {len(fatal) - 3} more)" if len(fatal) > 3 else ""
        raise InvalidBIDSError(
            f"{bids_dir} is not valid BIDS: {listed}{more}. Run bids-validator-deno on it "
            "for details, fix the dataset, or pass --skip-bids-validation."
        )
    if report.errors:
        LOGGER.warning("BIDS validator: %d error(s) inside subject folders", len(report.errors))
    else:
        LOGGER.info("BIDS validator: no errors in %s", bids_dir)
    return report


def _find_validator() -> str:
    beside_python = Path(sys.executable).with_name("bids-validator-deno")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("bids-validator-deno")
    if found is None:
        raise InvalidBIDSError(
            "bids-validator-deno is not installed; `pip install bids-validator-deno` "
            "or pass --skip-bids-validation."
        )
    return found


def load_bids_filters(path: Path | None) -> dict:
    """Read an fMRIPrep-style filter file: {"t1w": {"acquisition": "mprage", ...}}."""
    if path is None:
        return {}
    if not path.is_file():
        raise MissingInputError(f"--bids-filter-file {path} does not exist.")
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(f"--bids-filter-file {path} is not valid JSON ({error}).") from None
    if not isinstance(document, dict) or set(document) - {"t1w"}:
        raise UsageError(
            f"--bids-filter-file {path} must be a JSON object with one key, \"t1w\", "
            'e.g. {"t1w": {"acquisition": "mprage"}}.'
        )
    filters = document.get("t1w", {})
    unknown = set(filters) - _FILTER_ENTITIES if isinstance(filters, dict) else {"?"}
    if unknown:
        raise UsageError(
            f"--bids-filter-file {path}: unknown entities {sorted(unknown)} under \"t1w\"; "
            f"allowed: {sorted(_FILTER_ENTITIES)}."
        )
    return {key: _filter_value(value) for key, value in filters.items()}


def _filter_value(value: object) -> object:
    """JSON null means 'entity absent', "*" means 'entity present', as in fMRIPrep."""
    from bids.layout import Query

    if value is None:
        return Query.NONE
    if value == "*":
        return Query.REQUIRED
    return value


def load_layout(bids_dir: Path):
    """Index BIDS_DIR with pybids (derivatives and hidden folders are not indexed)."""
    from bids import BIDSLayout
    from bids.exceptions import BIDSValidationError

    if not bids_dir.is_dir():
        raise MissingInputError(f"BIDS_DIR {bids_dir} does not exist or is not a folder.")
    try:
        return BIDSLayout(str(bids_dir), validate=False)
    except (BIDSValidationError, ValueError) as error:
        raise InvalidBIDSError(f"{bids_dir} cannot be read as BIDS: {error}") from None


def strip_prefix(labels: Iterable[str] | None, prefix: str) -> list[str]:
    """Accept labels with or without their 'sub-'/'ses-' prefix."""
    return [label.removeprefix(prefix) for label in labels or []]


def discover_t1w(
    layout,
    *,
    participant_labels: Sequence[str] = (),
    session_labels: Sequence[str] = (),
    bids_filters: dict | None = None,
    source_field: float | None = None,
) -> Discovery:
    """Find the selected T1w images and their field strength.

    An image whose field strength is unknown (and no --source-field) or unsupported is
    skipped with its reason, so the others still run; when no image is left, that
    reason is raised (MissingInputError). Raises MissingInputError when the dataset
    holds no T1w at all and NoMatchingImagesError when the participant, session or
    filter selection matches nothing.
    """
    query = {"suffix": "T1w", "datatype": "anat", "extension": [".nii", ".nii.gz"]}
    bids_dir = Path(layout.root)
    if not layout.get(**query):
        raise MissingInputError(
            f"{bids_dir} holds no T1w image (sub-*/[ses-*/]anat/*_T1w.nii[.gz]). Check BIDS_DIR."
        )
    subjects = strip_prefix(participant_labels, "sub-")
    missing = sorted(set(subjects) - set(layout.get_subjects()))
    if missing:
        raise NoMatchingImagesError(
            f"Participant(s) {', '.join(missing)} not found in {bids_dir}. "
            "Check --participant-label."
        )
    selection = dict(query, **(bids_filters or {}))
    if subjects:
        selection["subject"] = subjects
    sessions = strip_prefix(session_labels, "ses-")
    if sessions:
        selection["session"] = sessions
    files = layout.get(**selection)
    if not files:
        described = ", ".join(
            f"{key}={value}" for key, value in selection.items() if key not in query
        )
        raise NoMatchingImagesError(
            f"No T1w images in {bids_dir} match the selection ({described or 'none'}). "
            "Check --participant-label, --session-label and --bids-filter-file."
        )
    found = Discovery()
    for bids_file in sorted(files, key=str):
        try:
            found.images.append(_describe(bids_file, source_field))
        except MissingInputError as error:
            found.skipped[Path(bids_file.path)] = str(error)
    if not found.images:
        raise MissingInputError(next(iter(found.skipped.values())))
    return found


def _describe(bids_file, source_field: float | None) -> T1wImage:
    entities = bids_file.get_entities()
    path = Path(bids_file.path)
    reported = bids_file.get_metadata().get("MagneticFieldStrength")
    if reported is not None:
        tesla, origin = round_field_strength(reported, where=str(path)), "sidecar"
    elif source_field is not None:
        tesla, origin = source_field, "--source-field"
    else:
        raise MissingInputError(
            f"{path}: no MagneticFieldStrength in its sidecar (or an inherited one). "
            "Add it to the sidecar or pass --source-field 1.5 or 3."
        )
    run = entities.get("run")
    return T1wImage(
        path=path,
        subject=entities["subject"],
        session=entities.get("session"),
        acquisition=entities.get("acquisition"),
        run=None if run is None else str(run),
        field_strength=tesla,
        field_origin=origin,
    )


def check_t1w_file(path: Path) -> None:
    """Raise unless the T1w file is there, readable, and its field of view can hold a brain.

    A broken symbolic link (a DataLad or git-annex file not fetched yet) and a file this
    user cannot read are missing input (MissingInputError, 66). An image smaller than
    :data:`MIN_FIELD_OF_VIEW_MM` along any axis is present and valid BIDS but cannot be
    processed (ProcessingError, 1, as a failure in processing would be). Only the header
    is read; a header nibabel cannot parse is left to the validator and to conform.
    """
    import nibabel as nib

    if not path.exists():
        if path.is_symlink():
            raise MissingInputError(
                f"{path} is a symbolic link to a file that is not there "
                f"({os.readlink(path)}). In a DataLad dataset, fetch it first: "
                f"datalad get {path}"
            )
        raise MissingInputError(f"{path} does not exist.")
    try:
        with path.open("rb") as stream:
            stream.read(1)
    except OSError as error:
        raise MissingInputError(
            f"{path} cannot be read ({error.strerror}). Make it readable to this user, "
            "or exclude it with --bids-filter-file."
        ) from None
    try:
        header = nib.load(path).header
        shape, zooms = header.get_data_shape()[:3], header.get_zooms()[:3]
        unit = _MM_PER_UNIT.get(header.get_xyzt_units()[0], 1.0)
    except Exception:  # noqa: BLE001 - not a NIfTI nibabel reads: others say why
        return
    extent = [size * zoom * unit for size, zoom in zip(shape, zooms, strict=True)]
    if len(extent) == 3 and min(extent) < MIN_FIELD_OF_VIEW_MM:
        raise ProcessingError(
            f"{path}: its field of view, {' x '.join(f'{mm:.0f}' for mm in extent)} mm, "
            f"cannot hold a brain (at least {MIN_FIELD_OF_VIEW_MM:.0f} mm along each axis); "
            "is it a crop? Use the whole-head image, or exclude it with --bids-filter-file."
        )


#: Along every axis a human brain, even a newborn's, is larger than this (mm): an image
#: with a smaller field of view is a crop or a localizer, not a brain to harmonize.
MIN_FIELD_OF_VIEW_MM = 50.0
_MM_PER_UNIT = {"meter": 1000.0, "mm": 1.0, "micron": 0.001}


def format_plan(images: Sequence[T1wImage], *, bids_dir: Path, target_field: float) -> str:
    """The run plan as a table: each image, its source field, target and action."""
    rows = [("image", "source", "target", "action")]
    for image in images:
        source = f"{image.field_strength:g} T"
        if image.field_origin != "sidecar":
            source += f" ({image.field_origin})"
        if image.field_strength == target_field:
            action = "already at target: preprocess only"
        else:
            action = f"harmonize {Direction(image.field_strength, target_field)}"
        rows.append((image.relative_to(bids_dir), source, f"{target_field:g} T", action))
    widths = [max(len(row[col]) for row in rows) for col in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def check_output_dir(bids_dir: Path, output_dir: Path) -> None:
    """Refuse an OUTPUT_DIR equal to or inside BIDS_DIR unless under derivatives/."""
    bids_dir, output_dir = bids_dir.resolve(), output_dir.resolve()
    inside = output_dir == bids_dir or bids_dir in output_dir.parents
    if inside and (bids_dir / "derivatives") not in output_dir.parents:
        raise OutputNotCreatableError(
            f"OUTPUT_DIR {output_dir} lies inside BIDS_DIR {bids_dir}; choose a folder "
            f"outside it or under {bids_dir / 'derivatives'}."
        )
    existing = next(parent for parent in (output_dir, *output_dir.parents) if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputNotCreatableError(
            f"OUTPUT_DIR {output_dir} cannot be created: {existing} is not a writable "
            "folder. Choose another OUTPUT_DIR."
        )


def check_paths(bids_dir: Path, output_dir: Path) -> None:
    """BIDS_DIR must exist and OUTPUT_DIR be creatable (:func:`check_output_dir`)."""
    check_output_dir(bids_dir, output_dir)
    if not bids_dir.is_dir():
        raise MissingInputError(f"BIDS_DIR {bids_dir} does not exist or is not a folder.")


def create_output_dir(output_dir: Path) -> Path:
    """Create OUTPUT_DIR (after every input check passed, so errors leave nothing)."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        # A probe of its own: the jobs of an array start together on one OUTPUT_DIR.
        with tempfile.NamedTemporaryFile(prefix=".harmonize_bids_write_test-", dir=output_dir):
            pass
    except OSError as error:
        raise OutputNotCreatableError(
            f"OUTPUT_DIR {output_dir} cannot be written ({error.strerror}). "
            "Choose another OUTPUT_DIR or fix its permissions."
        ) from None
    return output_dir


@dataclass(frozen=True)
class TravellingPair:
    """One subject's scan at the source field and its scan at the target field."""

    subject: str
    source: T1wImage
    target: T1wImage


def pair_sessions(
    images: Sequence[T1wImage], *, source_field: float, target_field: float
) -> list[TravellingPair]:
    """Pair each subject's source-field image with its target-field image.

    Every selected subject must have exactly one image at each field; otherwise the
    error names the subjects and how to narrow the selection.
    """
    by_subject: dict[str, list[T1wImage]] = {}
    for image in images:
        by_subject.setdefault(image.subject, []).append(image)
    pairs, unpaired, ambiguous = [], [], []
    for subject, found in sorted(by_subject.items()):
        sources = [i for i in found if i.field_strength == source_field]
        targets = [i for i in found if i.field_strength == target_field]
        if not sources or not targets:
            missing = source_field if not sources else target_field
            unpaired.append(f"sub-{subject} (no {missing:g} T image)")
        elif len(sources) > 1 or len(targets) > 1:
            ambiguous.append(
                f"sub-{subject} ({len(sources)} x {source_field:g} T, "
                f"{len(targets)} x {target_field:g} T)"
            )
        else:
            pairs.append(TravellingPair(subject, sources[0], targets[0]))
    if unpaired:
        raise MissingInputError(
            f"Unpaired subjects: {', '.join(unpaired)}. Training needs each subject at both "
            "field strengths; choose subjects with --participant-label."
        )
    if ambiguous:
        raise UsageError(
            f"Ambiguous subjects: {', '.join(ambiguous)}. Select one image per field with "
            "--session-label or --bids-filter-file."
        )
    return pairs


@dataclass(frozen=True)
class ReferencePlan:
    """Where one subject's target-field reference comes from: other subjects' scans to
    pool (raw files and the BIDS URIs records name them by), or an explicit reference
    file; neither means the model folder's own."""

    images: tuple[Path, ...] = ()
    sources: tuple[str, ...] = ()
    file: Path | None = None


@dataclass(frozen=True)
class ScannerMapPlan:
    """Other participants scanned at both fields, whose scans fit this study's scanner
    map (:class:`harmonize_bids.image.reference.ScannerMap`): raw files and the BIDS URIs
    records name them by, per field."""

    subjects: tuple[str, ...] = ()
    source_images: tuple[Path, ...] = ()
    source_names: tuple[str, ...] = ()
    target_images: tuple[Path, ...] = ()
    target_names: tuple[str, ...] = ()
    unavailable: str = ""  # why the map is not applied, when it is not


def spread(items: Sequence, limit: int) -> list:
    """Up to ``limit`` of ``items``, chosen evenly (first and last included)."""
    if len(items) <= limit:
        return list(items)
    picks = sorted({round(i * (len(items) - 1) / max(limit - 1, 1)) for i in range(limit)})
    return [items[i] for i in picks]


def reference_scans(
    candidates: Sequence[T1wImage], *, subject: str, target_field: float, limit: int
) -> list[T1wImage]:
    """Up to ``limit`` target-field scans of subjects other than ``subject``.

    Chosen evenly over the candidates sorted by path, so every job of an HPC array that
    sees the same dataset picks the same scans, whatever order the jobs run in. The
    subject's own scans never count: in a longitudinal study they carry the change the
    study measures.
    """
    pool = sorted(
        (
            image
            for image in candidates
            if image.field_strength == target_field and image.subject != subject
        ),
        key=lambda image: str(image.path),
    )
    return spread(pool, limit)


def scanner_map_scans(
    candidates: Sequence[T1wImage],
    *,
    subject: str,
    source_field: float,
    target_field: float,
    limit: int,
) -> dict[str, tuple[list[T1wImage], list[T1wImage]]]:
    """Up to ``limit`` subjects other than ``subject`` with scans at both fields, chosen
    evenly over their sorted labels (the same in every job), each with its source-field
    and target-field scans."""
    by_subject: dict[str, tuple[list[T1wImage], list[T1wImage]]] = {}
    for image in sorted(candidates, key=lambda image: str(image.path)):
        if image.subject == subject or image.field_strength not in (source_field, target_field):
            continue
        low, high = by_subject.setdefault(image.subject, ([], []))
        (high if image.field_strength == target_field else low).append(image)
    both = sorted(label for label, (low, high) in by_subject.items() if low and high)
    return {label: by_subject[label] for label in spread(both, limit)}
