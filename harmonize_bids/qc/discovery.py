"""Group level input: the participant outputs in OUTPUT_DIR and their raw sidecars.

The outputs are found through the derivatives spec; from BIDS_DIR only the raw JSON
sidecars are read (by BIDS inheritance), so the raw NIfTI files need not be present.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..bids import round_field_strength, strip_prefix
from ..derivatives import KINDS, ImageDerivatives, find_derivatives
from ..errors import HarmonizeBidsError, MissingInputError

LOGGER = logging.getLogger(__name__)


@dataclass
class GroupImage(ImageDerivatives):
    """One image's participant outputs and what their sidecars say."""

    record: dict = field(default_factory=dict)
    field_strength: float | None = None
    target_field: float | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return self.entities["subject"]

    @property
    def session(self) -> str | None:
        return self.entities.get("session")


def find_participant_outputs(
    output_dir: Path, *, participant_labels: Sequence[str] = (), session_labels: Sequence[str] = ()
) -> list[GroupImage]:
    """The images the participant level wrote to OUTPUT_DIR, after the label filters.

    Raises MissingInputError when OUTPUT_DIR holds no participant output, or none for
    the selected participants and sessions.
    """
    found = [
        GroupImage(output_dir, outputs.entities, outputs.paths)
        for outputs in find_derivatives(output_dir)
    ]
    if not found:
        raise MissingInputError(
            f"No participant outputs in {output_dir}. Run the participant level into this "
            "OUTPUT_DIR first."
        )
    subjects = set(strip_prefix(participant_labels, "sub-"))
    sessions = set(strip_prefix(session_labels, "ses-"))
    selected = [
        image
        for image in found
        if (not subjects or image.subject in subjects)
        and (not sessions or image.session in sessions)
    ]
    if not selected:
        have = sorted({f"sub-{image.subject}" for image in found})
        raise MissingInputError(
            f"No participant outputs in {output_dir} match --participant-label "
            f"{' '.join(sorted(subjects)) or '(all)'} --session-label "
            f"{' '.join(sorted(sessions)) or '(all)'}; outputs exist for {', '.join(have)}."
        )
    for image in selected:
        image.missing = [kind.label for key, kind in KINDS.items() if key not in image.paths]
    return sorted(selected, key=lambda image: image.stem)


def raw_sidecar(bids_dir: Path, entities: Mapping[str, str]) -> dict:
    """The T1w metadata of one raw image by BIDS inheritance, from the JSON files only.

    ``entities`` are pybids names (subject, session, acquisition, run). Every
    ``*T1w.json`` at the top level, in the subject folder, the session folder and the
    anat folder whose entities are a subset of the image's applies; deeper (more
    specific) files override shallower ones. The NIfTI file itself is not needed.
    """
    from bids.layout import parse_file_entities

    folders = [bids_dir, bids_dir / f"sub-{entities['subject']}"]
    if entities.get("session") is not None:
        folders.append(folders[-1] / f"ses-{entities['session']}")
    folders.append(folders[-1] / "anat")
    metadata: dict = {}
    for folder in folders:
        candidates = []
        for path in sorted(folder.glob("*T1w.json")) if folder.is_dir() else []:
            own = {
                key: str(value)
                for key, value in parse_file_entities(f"/{path.name}").items()
                if key not in ("suffix", "extension", "datatype")
            }
            if all(entities.get(key) == value for key, value in own.items()):
                candidates.append((len(own), path))
        for _, path in sorted(candidates):
            try:
                metadata.update(json.loads(path.read_text()))
            except (OSError, ValueError) as error:
                LOGGER.warning("Ignoring unreadable sidecar %s: %s", path, error)
    return metadata


def read_sidecars(image: GroupImage, bids_dir: Path) -> None:
    """Harmonization record (derivative sidecar) and field strength (raw sidecar)."""
    if "harmonized" in image.paths:
        try:
            sidecar = image.path("harmonized", extension=".json")
            image.record = json.loads(sidecar.read_text()).get("Harmonization") or {}
        except (OSError, ValueError):
            image.missing.append(f"{KINDS['harmonized'].label}.json")
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
