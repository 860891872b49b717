"""Paired training data from travelling subjects.

Each pair is preprocessed exactly as the participant level preprocesses (image/), and
the target-field image is registered to the source-field image with antspyx (rigid by
default; affine then SyN as the paper on request; mutual information), and its white
matter re-anchored inside the source's brain mask. Finished pairs are cached in the work
directory, so an interrupted preparation resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from .atomic import write_text
from .bids import TravellingPair
from .choices import DEFAULT_REGISTRATION, REGISTRATIONS, Direction

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedPair:
    """Preprocessed source, registered target and the source brain mask, one grid; and the
    target scan as preprocessed on its own grid, with its mask (for references)."""

    subject: str
    source: Path
    target: Path
    mask: Path
    target_scan: Path
    target_mask: Path
    target_name: str = ""  # the raw target image, for records

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float32 source and target in [0, 1] (zero outside the brain), bool mask."""
        mask = np.asanyarray(nib.load(self.mask).dataobj) > 0
        source = np.asanyarray(nib.load(self.source).dataobj).astype(np.float32)
        target = np.asanyarray(nib.load(self.target).dataobj).astype(np.float32)
        target = np.clip(target, 0.0, 1.0)
        source[~mask] = 0.0
        target[~mask] = 0.0
        return source, target, mask


def scaling_problems(pair: PreparedPair, volumes: tuple) -> str | None:
    """Why a prepared pair's source or registered target looks mis-scaled (None if fine).

    Both are checked inside the source brain mask with
    :func:`harmonize_bids.image.scaling_problem`: a pair whose intensities were scaled by
    a few stray bright voxels would teach the model a wrong contrast. ``volumes`` is the
    pair's ``load()``.
    """
    from .image import scaling_problem

    source, target, mask = volumes
    for role, image, path in (("source", source, pair.source), ("target", target, pair.target)):
        problem = scaling_problem(image, mask)
        if problem:
            return f"sub-{pair.subject} {role} {path.name}: {problem}"
    return None


def prepare_pair(
    pair: TravellingPair,
    work_dir: Path,
    *,
    skull_strip: str = "deepbet",
    sloppy: bool = False,
    registration: str = DEFAULT_REGISTRATION,
) -> PreparedPair:
    """Preprocess both images of one subject and bring the target onto the source grid.

    Each session's preprocessing is cached on its own, so the two directions
    (1.5T->3T and 3T->1.5T) share it and differ only in the registration.
    """
    from .image import anchor_white_matter_file, register_pair, resample_pair

    if registration not in REGISTRATIONS:
        raise ValueError(f"registration must be one of {REGISTRATIONS}, got {registration!r}")

    subject_dir = work_dir / f"sub-{pair.subject}"
    done = pair_record(work_dir, pair)
    direction = done.stem.removeprefix("pair_")
    inputs = [str(pair.source.path), str(pair.target.path)]
    source = _preprocessed(pair.source, subject_dir, skull_strip=skull_strip, sloppy=sloppy)
    target = _preprocessed(pair.target, subject_dir, skull_strip=skull_strip, sloppy=sloppy)
    scan = {
        "target_scan": target["preproc"],
        "target_mask": target["mask"],
        "target_name": pair.target.path.name,
    }
    if done.is_file():
        recorded = json.loads(done.read_text())
        if recorded["inputs"] == inputs and recorded.get("registration", "syn") == registration:
            LOGGER.info("sub-%s: reusing prepared %s pair", pair.subject, direction)
            return PreparedPair(
                pair.subject,
                *(Path(recorded[key]) for key in ("source", "target", "mask")),
                Path(scan["target_scan"]),
                Path(scan["target_mask"]),
                scan["target_name"],
            )
    out = subject_dir / f"target_{direction}.nii.gz"  # direction: the record's slug
    if registration == "none":
        registered = resample_pair(source["preproc"], target["preproc"], out)
    else:
        registered = register_pair(
            source["preproc"],
            target["preproc"],
            out,
            fixed_mask=source["mask"],
            transform=registration,
            sloppy=sloppy,
        )
    # Interpolation and the source's brain mask move the target's white matter a little.
    registered = anchor_white_matter_file(registered, source["mask"], registered)
    prepared = PreparedPair(
        pair.subject,
        Path(source["preproc"]),
        registered,
        Path(source["mask"]),
        Path(scan["target_scan"]),
        Path(scan["target_mask"]),
        scan["target_name"],
    )
    _write_record(
        done,
        {
            "inputs": inputs,
            "registration": registration,
            "source": str(prepared.source),
            "target": str(prepared.target),
            "mask": str(prepared.mask),
        },
    )
    return prepared


def pair_record(work_dir: Path, pair: TravellingPair) -> Path:
    """Where a prepared pair is recorded: ``sub-X/pair_<direction slug>.json``."""
    direction = Direction(pair.source.field_strength, pair.target.field_strength)
    return work_dir / f"sub-{pair.subject}" / f"pair_{direction.slug}.json"


def load_target_scan(pair: PreparedPair) -> tuple[np.ndarray, np.ndarray, str]:
    """The pair's target scan on its own grid, its brain mask and its file name."""
    mask = np.asanyarray(nib.load(pair.target_mask).dataobj) > 0
    image = np.asanyarray(nib.load(pair.target_scan).dataobj).astype(np.float32)
    return image, mask, pair.target_name


def _preprocessed(image, subject_dir: Path, *, skull_strip: str, sloppy: bool) -> dict:
    """preprocess_t1w for one session, cached in the work dir."""
    from .image import SLOPPY_SPACING_MM, preprocess_t1w

    session_dir = subject_dir / f"ses-{image.session or 'none'}-run-{image.run or 'none'}"
    done = session_dir / "preprocessed.json"
    if done.is_file():
        recorded = json.loads(done.read_text())
        if recorded["input"] == str(image.path):
            return recorded
    shutil.rmtree(session_dir, ignore_errors=True)
    outputs = preprocess_t1w(
        image.path,
        session_dir,
        skull_strip=skull_strip,
        sloppy=sloppy,
        spacing=SLOPPY_SPACING_MM if sloppy else 1.0,
    )
    record = {
        "input": str(image.path),
        "preproc": str(outputs["preproc"]),
        "mask": str(outputs["mask"]),
    }
    _write_record(done, record)
    return record


def _write_record(path: Path, record: dict) -> None:
    write_text(path, json.dumps(record, indent=2))


def prepare_pairs(
    pairs: list[TravellingPair],
    work_dir: Path,
    *,
    skull_strip: str = "deepbet",
    sloppy: bool = False,
    registration: str = DEFAULT_REGISTRATION,
    progress: bool = True,
) -> list[PreparedPair]:
    """Prepare every pair, with a progress bar; cached pairs are reused."""
    from tqdm import tqdm

    work_dir.mkdir(parents=True, exist_ok=True)
    return [
        prepare_pair(
            pair, work_dir, skull_strip=skull_strip, sloppy=sloppy, registration=registration
        )
        for pair in tqdm(pairs, desc="preparing pairs", unit="subject", disable=not progress)
    ]


def wait_for_pairs(
    pairs: list[TravellingPair],
    work_dir: Path,
    *,
    skull_strip: str = "deepbet",
    sloppy: bool = False,
    registration: str = DEFAULT_REGISTRATION,
    timeout_s: float = 24 * 3600,
    poll_s: float = 5.0,
) -> list[PreparedPair]:
    """Non-zero ranks under torchrun: wait for rank 0 to prepare every pair."""
    import time

    deadline = time.monotonic() + timeout_s

    while not all(pair_record(work_dir, pair).is_file() for pair in pairs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"prepared pairs did not appear in {work_dir}")
        time.sleep(poll_s)
    return [
        prepare_pair(
            pair, work_dir, skull_strip=skull_strip, sloppy=sloppy, registration=registration
        )
        for pair in pairs
    ]


def find_lesion_mask(derivatives: Path, image) -> Path | None:
    """The ``label-lesion`` mask of one T1w session in a BIDS derivatives folder (None if
    it has none): ``sub-X[/ses-Y]/anat/sub-X[_ses-Y]*_label-lesion_mask.nii[.gz]``, in the
    T1w's space. More than one match is an error.
    """
    anat = derivatives / f"sub-{image.subject}"
    stem = f"sub-{image.subject}"
    if image.session:
        anat, stem = anat / f"ses-{image.session}", f"{stem}_ses-{image.session}"
    found = sorted((anat / "anat").glob(f"{stem}_*label-lesion_mask.nii*"))
    if len(found) > 1:
        raise ValueError(
            f"{anat / 'anat'}: {len(found)} lesion masks for {image.path.name} "
            f"({', '.join(p.name for p in found)}); keep one."
        )
    return found[0] if found else None


def load_lesion_mask(path: Path, pair: PreparedPair) -> np.ndarray:
    """A lesion mask (any grid in the source T1w's world space) on the prepared pair's
    source grid, by nearest-neighbour resampling, as a boolean array."""
    from nibabel.processing import resample_from_to

    resampled = resample_from_to(nib.load(path), nib.load(pair.source), order=0)
    return np.asanyarray(resampled.dataobj) > 0
