"""The output dataset: how every file in OUTPUT_DIR is named, described and found again.

One path-pattern spec (sMRIPrep's ``io_spec`` style, :data:`PATTERNS`) names the files:
pybids ``build_path`` builds a name from entities, ``parse_file_entities`` reads the
entities back. The sinks write by it, the subject report and the group level read by it.
The dataset-level files (``dataset_description.json``, ``.bidsignore``,
``descriptions.tsv``) are written here too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import create_once, write_text
from .choices import field_label
from .preprocessing import CLIP_PERCENTILES, WHITE_MATTER_LEVEL

#: The entities that name one T1w image's derivatives (pybids names, file-name order).
IMAGE_ENTITIES = ("subject", "session", "acquisition", "run")
_STEM = "sub-{subject}[_ses-{session}][_acq-{acquisition}][_run-{run}]"
#: pybids path patterns, relative to OUTPUT_DIR.
PATTERNS = {
    # A derivative of one T1w image, and its JSON sidecar.
    "derivative": "sub-{subject}[/ses-{session}]/{datatype<anat>|anat}/"
    + _STEM
    + "_desc-{desc}_{suffix<T1w|mask>}{extension<.nii.gz|.json>|.nii.gz}",
    # The entity part of an image's file names: report anchors, table keys, figures.
    "stem": _STEM,
    # How messages and tables name a derivative kind, and its descriptions.tsv key.
    "label": "desc-{desc}_{suffix}",
    "desc_id": "desc-{desc}",
    "subject_report": "sub-{subject}.html",
    "subject_figure": "sub-{subject}/figures/" + _STEM + "_{figure}.png",
    "group_image_figure": "group/figures/" + _STEM + "_{figure}.png",
    "group_figure": "group/figures/{figure}.png",
    # A pooled target-field reference a participant run used (the sidecar points here).
    "reference": "logs/references/target-{field}_reference-{sha}.json",
}

DATASET_DESCRIPTION = "dataset_description.json"
DESCRIPTIONS_TABLE = "descriptions.tsv"
GROUP_TABLE = "group_T1w.tsv"
GROUP_TABLE_SIDECAR = "group_T1w.json"
GROUP_PAIRED_TABLE = "group_T1w_paired.tsv"
GROUP_PAIRED_TABLE_SIDECAR = "group_T1w_paired.json"
GROUP_REPORT = "group_T1w.html"
#: What bids-validator-deno must skip in OUTPUT_DIR: reports, figures, logs and the group
#: tables (`/group` matches the folder itself, which `group/` does not).
BIDSIGNORE = ("*.html", "logs/", "**/figures", "/group", "group_T1w*")


def _build(entities: Mapping[str, object], pattern: str) -> str:
    from bids.layout.writing import build_path

    path = build_path(dict(entities), [PATTERNS[pattern]], strict=False)
    if path is None:
        raise ValueError(f"entities {dict(entities)} do not make a {pattern} name")
    return path


@dataclass(frozen=True)
class Kind:
    """One derivative of a T1w image: its ``desc`` and ``suffix`` and what it holds."""

    desc: str
    suffix: str
    description: str

    @property
    def entities(self) -> dict[str, str]:
        return {"desc": self.desc, "suffix": self.suffix}

    @property
    def label(self) -> str:
        """``desc-preproc_T1w``."""
        return _build(self.entities, "label")


#: The derivatives the participant level writes per T1w image (in descriptions.tsv order).
KINDS = {
    "preproc": Kind(
        "preproc",
        "T1w",
        "Skull stripped, N4 bias corrected, resampled to 1 mm isotropic, clipped at "
        "the {:g}/{:g} brain percentiles, scaled to [0, 1] and rescaled to put white "
        "matter at {:g}.".format(*CLIP_PERCENTILES, WHITE_MATTER_LEVEL),
    ),
    "mask": Kind("brain", "mask", "Brain mask on the grid of the preprocessed T1w."),
    "harmonized": Kind(
        "harmonized",
        "T1w",
        "The preprocessed T1w in the contrast of the target field strength "
        "(diffusion-model harmonization), zero outside the brain mask.",
    ),
}
#: desc labels used in OUTPUT_DIR, for descriptions.tsv.
DESCRIPTIONS = {kind.desc: kind.description for kind in KINDS.values()}


def image_entities(entities: Mapping[str, object]) -> dict[str, str]:
    """The entities of ``entities`` that name an image's derivatives, as strings."""
    return {key: str(entities[key]) for key in IMAGE_ENTITIES if entities.get(key) is not None}


def derivative_path(
    entities: Mapping[str, object], kind: str, *, extension: str = ".nii.gz"
) -> str:
    """Path of one derivative (or, with ``extension='.json'``, its sidecar) relative to
    OUTPUT_DIR, as the sinks write it."""
    return _build(
        {**image_entities(entities), **KINDS[kind].entities, "extension": extension}, "derivative"
    )


def image_stem(entities: Mapping[str, object]) -> str:
    """The entity part of an image's file names: ``sub-01_ses-A[_acq-x][_run-1]``."""
    return _build(image_entities(entities), "stem")


def subject_report(subject: str) -> str:
    """The subject's HTML report, relative to OUTPUT_DIR."""
    return _build({"subject": subject}, "subject_report")


def subject_figure(entities: Mapping[str, object], figure: str) -> str:
    """One figure of an image in its subject's report, relative to OUTPUT_DIR."""
    return _build({**image_entities(entities), "figure": figure}, "subject_figure")


def group_figure(figure: str, entities: Mapping[str, object] | None = None) -> str:
    """A group report figure, relative to OUTPUT_DIR; with ``entities``, one image's."""
    if entities is None:
        return _build({"figure": figure}, "group_figure")
    return _build({**image_entities(entities), "figure": figure}, "group_image_figure")


def reference_file(field_strength: float, sha256: str) -> str:
    """Where a run publishes a pooled target-field reference, relative to OUTPUT_DIR."""
    return _build({"field": field_label(field_strength), "sha": sha256[:12]}, "reference")


def parse_derivative(relative: str | os.PathLike[str]) -> tuple[str, dict[str, str]] | None:
    """``(kind, image entities)`` of a derivative NIfTI path relative to OUTPUT_DIR, or
    None when the path is not one the sinks write."""
    from bids.layout import parse_file_entities

    relative = Path(relative).as_posix()
    entities = parse_file_entities(f"/{relative}")
    kind = next(
        (
            key
            for key, kind in KINDS.items()
            if entities.get("desc") == kind.desc and entities.get("suffix") == kind.suffix
        ),
        None,
    )
    image = image_entities(entities)
    if kind is None or "subject" not in image:
        return None
    try:
        rebuilt = derivative_path(image, kind, extension=str(entities.get("extension")))
    except ValueError:
        return None
    return (kind, image) if rebuilt == relative else None


@dataclass
class ImageDerivatives:
    """One T1w image's derivatives found in OUTPUT_DIR: its entities and the NIfTI files."""

    output_dir: Path
    entities: dict[str, str]
    paths: dict[str, Path] = field(default_factory=dict)
    stem: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.stem = image_stem(self.entities)

    def path(self, kind: str, *, extension: str = ".nii.gz") -> Path:
        """Where the sinks write this image's ``kind`` (present or not)."""
        return self.output_dir / derivative_path(self.entities, kind, extension=extension)


def find_derivatives(output_dir: Path) -> list[ImageDerivatives]:
    """Every image with at least one derivative NIfTI in OUTPUT_DIR, in stem order."""
    found: dict[str, ImageDerivatives] = {}
    for path in sorted(output_dir.glob("sub-*/**/anat/sub-*.nii.gz")):
        parsed = parse_derivative(path.relative_to(output_dir))
        if parsed is None:
            continue
        kind, entities = parsed
        stem = image_stem(entities)
        found.setdefault(stem, ImageDerivatives(output_dir, entities)).paths[kind] = path
    return [found[stem] for stem in sorted(found)]


# ------------------------------------------------------------------ the output dataset


def init_output_dataset(output_dir: Path, *, bids_dir: Path) -> None:
    """Write the dataset-level files of OUTPUT_DIR: dataset_description.json (once),
    .bidsignore and descriptions.tsv."""
    write_dataset_description(output_dir, bids_dir=bids_dir)
    ensure_bidsignore(output_dir)
    write_text(
        output_dir / DESCRIPTIONS_TABLE,
        "desc_id\tdescription\n"
        + "".join(
            f"{_build({'desc': desc}, 'desc_id')}\t{text}\n" for desc, text in DESCRIPTIONS.items()
        ),
    )


def write_dataset_description(output_dir: Path, *, bids_dir: Path) -> Path:
    """Write OUTPUT_DIR/dataset_description.json once, atomically.

    Concurrent participant jobs (an HPC job array) may all try: the first link wins
    and every reader sees a complete, valid file.
    """
    from . import CODE_URL, __version__

    target = output_dir / DATASET_DESCRIPTION
    if target.is_file():
        return target
    generated_by = {"Name": "harmonize_bids", "Version": __version__, "CodeURL": CODE_URL}
    container = _container()
    if container:
        generated_by["Container"] = container
    source_name = _dataset_name(bids_dir)
    description = {
        "Name": f"harmonize_bids outputs of {source_name}",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by],
        "SourceDatasets": [{"URL": bids_dir.absolute().as_uri()}],
        "DatasetLinks": {"raw": bids_dir.absolute().as_uri()},
    }
    create_once(target, json.dumps(description, indent=2) + "\n")
    return target


def _dataset_name(bids_dir: Path) -> str:
    try:
        return json.loads((bids_dir / DATASET_DESCRIPTION).read_text())["Name"]
    except (OSError, ValueError, KeyError, TypeError):
        return bids_dir.name


def _container() -> dict | None:
    """The container this run is in, when the image told us (Dockerfile/Singularity ENV)."""
    kind = os.environ.get("HARMONIZE_BIDS_CONTAINER_TYPE")
    if not kind:
        return None
    container = {"Type": kind}
    if os.environ.get("HARMONIZE_BIDS_CONTAINER_TAG"):
        container["Tag"] = os.environ["HARMONIZE_BIDS_CONTAINER_TAG"]
    return container


def ensure_bidsignore(output_dir: Path) -> Path:
    """Add our patterns to OUTPUT_DIR/.bidsignore, keeping any lines already there."""
    path = output_dir / ".bidsignore"
    lines = path.read_text().splitlines() if path.is_file() else []
    missing = [line for line in BIDSIGNORE if line not in lines]
    if missing:
        write_text(path, "".join(f"{line}\n" for line in [*lines, *missing]))
    return path
