"""Per-image group measures: tissue volumes, histograms, through-plane consistency and a
thumbnail for every image with complete participant outputs, in parallel processes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..derivatives import group_figure
from ..progress import Progress
from . import metrics
from .discovery import GroupImage, load_outputs
from .figures import plot_thumbnail

LOGGER = logging.getLogger(__name__)


@dataclass
class Measured:
    """Per-image measures kept for the tables and figures (no volumes: 300 sessions must
    fit in memory); segmentations only for the source scans of travelling subjects."""

    hist_preproc: np.ndarray
    hist_harmonized: np.ndarray
    values: dict[str, float]
    thumbnail: Path
    labels: dict[str, np.ndarray] = field(default_factory=dict)


def measure_all(
    images: list[GroupImage], *, output_dir: Path, nprocs: int, sources: set[str]
) -> dict[str, Measured]:
    """Segment and measure every complete image, in ``nprocs`` processes; keep the
    segmentations of the images whose stem is in ``sources``."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    todo = [image for image in images if not image.missing]
    measured: dict[str, Measured] = {}
    progress = Progress(len(todo), LOGGER)

    def done(image: GroupImage, result: Measured) -> None:
        measured[image.stem] = result
        progress.done(image.stem, "measured")

    if nprocs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=min(nprocs, len(todo))) as pool:
            futures = {
                pool.submit(
                    measure_image,
                    image,
                    output_dir=output_dir,
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
                measure_image(image, output_dir=output_dir, keep_labels=image.stem in sources),
            )
    return measured


def measure_image(image: GroupImage, *, output_dir: Path, keep_labels: bool) -> Measured:
    """Tissue volumes before and after, brain histograms, through-plane consistency and
    the group report thumbnail of one image."""
    loaded = load_outputs(image)
    preproc, harmonized, mask, spacing = (
        loaded.preproc,
        loaded.harmonized,
        loaded.mask,
        loaded.spacing,
    )
    voxel = float(np.prod(spacing))
    labels = {"preproc": metrics.segment_tissues(preproc, mask, spacing=spacing)}
    # An image already at the target field is written unchanged: segment it once.
    same = image.record.get("ModelApplied") is False and np.array_equal(preproc, harmonized)
    labels["harmonized"] = (
        labels["preproc"] if same else metrics.segment_tissues(harmonized, mask, spacing=spacing)
    )
    values: dict[str, float] = {"brain_volume_mm3": float(mask.sum() * voxel)}
    for key, label in labels.items():
        for tissue, volume in metrics.tissue_volumes(label, voxel_volume=voxel).items():
            values[f"{tissue.lower()}_volume_{key}_mm3"] = volume
    for key, volume in (("preproc", preproc), ("harmonized", harmonized)):
        values[f"through_plane_{key}"] = metrics.through_plane_consistency(volume, mask)
    thumbnail = plot_thumbnail(
        harmonized, mask, output_dir / group_figure("thumbnail", image.entities)
    )
    return Measured(
        metrics.brain_histogram(preproc, mask),
        metrics.brain_histogram(harmonized, mask),
        values,
        thumbnail,
        labels if keep_labels else {},
    )
