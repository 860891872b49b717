"""Static report figures (matplotlib, Agg): mask overlay, before/after, histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HISTOGRAM_BINS = 255  # as the paper's AHD


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


def _save(figure, out_file: Path, *, facecolor: str = "black") -> Path:
    """Save atomically (a reader never sees a half-written PNG) and close the figure."""
    import matplotlib.pyplot as plt

    out_file.parent.mkdir(parents=True, exist_ok=True)
    partial = out_file.with_name(f".{out_file.name}.tmp.png")
    figure.savefig(partial, dpi=80, bbox_inches="tight", facecolor=facecolor)
    plt.close(figure)
    partial.replace(out_file)
    return out_file


def plot_mask_overlay(t1w: np.ndarray, mask: np.ndarray, out_file: Path) -> Path:
    """The brain mask's outline over the preprocessed T1w in three planes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(9, 3), facecolor="black")
    for axis, image, outline in zip(
        axes, _middle_slices(t1w, mask), _middle_slices(mask.astype(np.float32), mask), strict=True
    ):
        axis.imshow(image, cmap="gray", vmin=0, vmax=1)
        axis.contour(outline, levels=[0.5], colors="tab:red", linewidths=0.8)
        axis.axis("off")
    return _save(figure, out_file)


def plot_before_after(
    before: np.ndarray,
    after: np.ndarray,
    mask: np.ndarray,
    out_file: Path,
    *,
    labels: tuple[str, str],
) -> Path:
    """Input (top row) and harmonized image (bottom row) in three planes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(9, 6), facecolor="black")
    for row, (volume, label) in enumerate(zip((before, after), labels, strict=True)):
        for axis, image in zip(axes[row], _middle_slices(volume, mask), strict=True):
            axis.imshow(image, cmap="gray", vmin=0, vmax=1)
            axis.axis("off")
        axes[row][0].set_title(label, color="white", loc="left", fontsize=10)
    return _save(figure, out_file)


def plot_histograms(volumes: dict[str, np.ndarray], mask: np.ndarray, out_file: Path) -> Path:
    """Brain-intensity histograms (255 bins on [0, 1]) of each named volume."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3))
    for label, volume in volumes.items():
        axis.hist(volume[mask], bins=HISTOGRAM_BINS, range=(0, 1), histtype="step", label=label)
    axis.set_xlabel("intensity (preprocessed scale)")
    axis.set_ylabel("voxels")
    axis.legend()
    return _save(figure, out_file, facecolor="white")
