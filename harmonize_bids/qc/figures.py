"""Static report figures (matplotlib, Agg), each saved atomically.

Subject report: mask overlay, before/after, histograms. Group report: per-image
thumbnails, brain histograms by field, tissue fractions by field.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import write_with
from .metrics import HISTOGRAM_BINS
from .tables import tissue_fraction

#: Curve and marker colour of each acquisition field (tesla).
FIELD_COLOURS = {1.5: "tab:orange", 3.0: "tab:blue"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, out_file: Path, *, dpi: int = 80) -> Path:
    """Save a matplotlib figure atomically (on its own background colour) and close it."""
    import matplotlib.pyplot as plt

    write_with(
        out_file,
        lambda partial: figure.savefig(
            partial, dpi=dpi, bbox_inches="tight", facecolor=figure.get_facecolor()
        ),
    )
    plt.close(figure)
    return out_file


def _middle_slices(volume: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """Sagittal, coronal and axial slices through the brain's centre, display-oriented."""
    centre = (
        [int(round(c)) for c in np.argwhere(mask).mean(axis=0)]
        if mask.any()
        else [s // 2 for s in volume.shape]
    )
    return [
        np.rot90(volume[centre[0], :, :]),
        np.rot90(volume[:, centre[1], :]),
        np.rot90(volume[:, :, centre[2]]),
    ]


# ----------------------------------------------------------------------- subject report


def plot_mask_overlay(t1w: np.ndarray, mask: np.ndarray, out_file: Path) -> Path:
    """The brain mask's outline over the preprocessed T1w in three planes."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(9, 3), facecolor="black")
    for axis, image, outline in zip(
        axes, _middle_slices(t1w, mask), _middle_slices(mask.astype(np.float32), mask), strict=True
    ):
        axis.imshow(image, cmap="gray", vmin=0, vmax=1)
        axis.contour(outline, levels=[0.5], colors="tab:red", linewidths=0.8)
        axis.axis("off")
    return save_figure(figure, out_file)


def plot_before_after(
    before: np.ndarray,
    after: np.ndarray,
    mask: np.ndarray,
    out_file: Path,
    *,
    labels: tuple[str, str],
) -> Path:
    """Input (top row) and harmonized image (bottom row) in three planes."""
    plt = _pyplot()
    figure, axes = plt.subplots(2, 3, figsize=(9, 6), facecolor="black")
    for row, (volume, label) in enumerate(zip((before, after), labels, strict=True)):
        for axis, image in zip(axes[row], _middle_slices(volume, mask), strict=True):
            axis.imshow(image, cmap="gray", vmin=0, vmax=1)
            axis.axis("off")
        axes[row][0].set_title(label, color="white", loc="left", fontsize=10)
    return save_figure(figure, out_file)


def plot_histograms(volumes: dict[str, np.ndarray], mask: np.ndarray, out_file: Path) -> Path:
    """Brain-intensity histograms (255 bins on [0, 1]) of each named volume."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3), facecolor="white")
    for label, volume in volumes.items():
        axis.hist(volume[mask], bins=HISTOGRAM_BINS, range=(0, 1), histtype="step", label=label)
    axis.set_xlabel("intensity (preprocessed scale)")
    axis.set_ylabel("voxels")
    axis.legend()
    return save_figure(figure, out_file)


# ------------------------------------------------------------------------- group report


def plot_thumbnail(volume: np.ndarray, mask: np.ndarray, out_file: Path) -> Path:
    """Small sagittal, coronal and axial views through the brain's centre."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(4.2, 1.5), facecolor="black")
    for axis, view in zip(axes, _middle_slices(volume, mask), strict=True):
        axis.imshow(view, cmap="gray", vmin=0, vmax=1)
        axis.axis("off")
    figure.subplots_adjust(left=0, right=1, top=1, bottom=0, wspace=0.02)
    return save_figure(figure, out_file, dpi=60)


def plot_group_histograms(
    histograms: Sequence[tuple[float | None, np.ndarray, np.ndarray]],
    target: float,
    out_file: Path,
) -> Path:
    """Brain histograms (density) per image, coloured by field, before and after.

    ``histograms`` holds one ``(field strength, preprocessed counts, harmonized counts)``
    per image; the pooled preprocessed counts at ``target`` are the dashed reference.
    """
    plt = _pyplot()
    centres = (np.arange(HISTOGRAM_BINS) + 0.5) / HISTOGRAM_BINS
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True, facecolor="white")
    reference = [before for field, before, _ in histograms if field == target]
    for axis, column, title in zip(
        axes, (1, 2), ("before: preprocessed", "after: harmonized"), strict=True
    ):
        seen = set()
        for entry in histograms:
            field, counts = entry[0], entry[column]
            label = None
            if field not in seen:
                seen.add(field)
                label = f"acquired at {field:g} T"
            axis.plot(
                centres,
                counts / max(counts.sum(), 1),
                color=FIELD_COLOURS.get(field, "tab:gray"),
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
    peaks = [(before / max(before.sum(), 1)).max() for _, before, _ in histograms]
    if peaks:
        axes[0].set_ylim(0, 1.6 * max(peaks))
    return save_figure(figure, out_file)


def plot_group_volumes(rows: list[dict], out_file: Path) -> Path:
    """CSF/GM/WM fraction of the brain by acquisition field, before and after."""
    plt = _pyplot()
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
                        100 * tissue_fraction(row, tissue, key)
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
