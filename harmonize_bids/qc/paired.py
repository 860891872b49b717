"""The paper's paired metrics (Durrer et al., MIDL 2023), and travelling subjects.

:func:`compare_to_target` is the one definition of the paired metrics of an image
against a target scan on the same grid; the group level (Original and Harmonized rows
of ``group_T1w_paired.tsv``) and benchmarks/quality.py both call it. For the group
level the target scan is registered into the source scan's space first
(:func:`register_target`, cached in the work directory).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import write_with
from ..progress import Progress
from . import metrics
from .discovery import GroupImage, Volumes, load_outputs

LOGGER = logging.getLogger(__name__)


def compare_to_target(
    image: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    labels_target: np.ndarray,
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    labels: np.ndarray | None = None,
) -> dict:
    """The paper's paired metrics of ``image`` against ``target`` (same grid).

    MSE and AHD over ``mask``; from the tissue segmentations inside ``mask`` (the
    image's ``labels``, segmented here when not given, and the target's
    ``labels_target``): absolute CSF/GM/WM volume differences (mm^3), Dice, and
    Hausdorff 95 (mm). Returns ``{"mse", "ahd", "volume_diff", "dice", "hd95"}``, the
    last three keyed by tissue (:data:`metrics.TISSUES`).
    """
    voxel = float(np.prod(spacing))
    if labels is None:
        labels = metrics.segment_tissues(image, mask, spacing=spacing)
    volumes = metrics.tissue_volumes(labels, voxel_volume=voxel)
    volumes_target = metrics.tissue_volumes(labels_target, voxel_volume=voxel)
    return {
        "mse": metrics.mse(image, target, mask),
        "ahd": metrics.ahd(image, target, mask),
        "volume_diff": {t: abs(volumes[t] - volumes_target[t]) for t in metrics.TISSUES},
        "dice": metrics.dice(labels, labels_target),
        "hd95": metrics.hausdorff95(labels, labels_target, spacing=spacing),
    }


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
    """Original (source vs target) and Harmonized (harmonized vs target), as the paired
    table's metric columns.

    All three images share one grid (the target registered into the source's space) and
    one mask (the source brain mask). Precomputed segmentations of source and harmonized
    (inside ``mask``) may be passed.
    """
    labels_target = metrics.segment_tissues(target, mask, spacing=spacing)
    return {
        method: _columns(
            compare_to_target(image, target, mask, labels_target, spacing=spacing, labels=labels)
        )
        for method, image, labels in (
            ("Original", source, labels_source),
            ("Harmonized", harmonized, labels_harmonized),
        )
    }


def _columns(result: dict) -> dict[str, float]:
    """:func:`compare_to_target`'s result under the paired table's column names."""
    row = {"mse": result["mse"], "ahd": result["ahd"]}
    for tissue in metrics.TISSUES:
        row[f"{tissue.lower()}_volume_difference_mm3"] = result["volume_diff"][tissue]
    for tissue in metrics.TISSUES:
        row[f"dice_{tissue.lower()}"] = result["dice"][tissue]
    for tissue in metrics.TISSUES:
        row[f"hd95_{tissue.lower()}_mm"] = result["hd95"][tissue]
    return row


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


def registered_target_path(
    work_dir: Path, source_stem: str, target_stem: str, *, sloppy: bool = False
) -> Path:
    """Where the group level keeps a target scan registered (rigidly; ``sloppy``: with
    fewer iterations) into a source scan's space."""
    kind = "rigid-sloppy" if sloppy else "rigid"
    return work_dir / "group" / f"{target_stem}_to_{source_stem}_{kind}.nii.gz"


def register_target(
    source: Volumes,
    target: Volumes,
    cached: Path | None,
    *,
    sloppy: bool,
    inputs: Sequence[Path] = (),
) -> np.ndarray:
    """The target's preprocessed image in the source's space, reusing the work dir's copy
    ``cached`` when it is newer than the participant outputs it came from (``inputs``)."""
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
        transform="rigid",
        sloppy=sloppy,
        seed=1,
    )
    if cached is not None:
        write_with(
            cached, lambda partial: nib.save(nib.Nifti1Image(registered, source.affine), partial)
        )
    return registered


def paired_rows(
    images: list[GroupImage],
    measured: dict,
    target: float,
    *,
    sloppy: bool,
    work_dir: Path | None = None,
) -> list[dict]:
    """The paper's metrics for each travelling subject's source scan vs its target scan.

    ``measured`` maps stems to :class:`~.measures.Measured` (their kept segmentations
    are reused). Pairs run in this process: MONAI/torch in a forked worker can hang when
    the parent process already started torch's threads.
    """
    pairs = [
        (source, reference)
        for source, reference in travelling_pairs(images, target)
        if source.stem in measured and reference.stem in measured
    ]
    progress = Progress(len(pairs), LOGGER)
    rows = []
    for source, reference in pairs:
        rows += _pair_rows(
            source=source,
            reference=reference,
            target=target,
            sloppy=sloppy,
            labels=measured[source.stem].labels,
            cached=None
            if work_dir is None
            else registered_target_path(work_dir, source.stem, reference.stem, sloppy=sloppy),
        )
        progress.done(f"{source.stem} vs {reference.stem}", "compared")
    if not pairs:
        LOGGER.info("No travelling subject (scans at both fields): no paired metrics")
    return rows


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
    registered = register_target(
        s,
        t,
        cached,
        sloppy=sloppy,
        inputs=[source.paths["preproc"], source.paths["mask"], reference.paths["preproc"]],
    )
    return [
        {
            "participant_id": source.subject,
            "source_session_id": source.session,
            "target_session_id": reference.session,
            "source_field": source.field_strength,
            "target_field": target,
            "method": method,
            **row,
        }
        for method, row in paired_metrics(
            s.preproc,
            s.harmonized,
            registered,
            s.mask,
            spacing=s.spacing,
            labels_source=labels.get("preproc"),
            labels_harmonized=labels.get("harmonized"),
        ).items()
    ]
