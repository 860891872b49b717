"""Cutting volumes into network slices: one rule for training and inference.

Slices run along the model's slice axis (moved first). Each is cropped to an in-plane
brain bounding box, centred in a frame padded to the network's multiple, zeroed outside
the brain mask, and stacked with ``context`` neighbouring slices on each side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def brain_box(mask: np.ndarray) -> tuple[slice, slice]:
    """In-plane bounding box of a slice-axis-first brain mask over all its slices."""
    rows = np.flatnonzero(mask.any(axis=(0, 2)))
    cols = np.flatnonzero(mask.any(axis=(0, 1)))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def padded(size: int, multiple: int) -> int:
    return math.ceil(size / multiple) * multiple


@dataclass(frozen=True)
class SliceFrame:
    """Where a volume's brain box sits in the network's (height, width) frame."""

    rows: slice
    cols: slice
    height: int
    width: int

    @classmethod
    def around(
        cls, mask: np.ndarray, multiple: int, frame: tuple[int, int] | None = None
    ) -> SliceFrame:
        """The frame of a slice-axis-first mask: its own padded box, or ``frame``."""
        rows, cols = brain_box(mask)
        if frame is None:
            frame = (
                padded(rows.stop - rows.start, multiple),
                padded(cols.stop - cols.start, multiple),
            )
        return cls(rows, cols, *frame)

    @property
    def box_shape(self) -> tuple[int, int]:
        return self.rows.stop - self.rows.start, self.cols.stop - self.cols.start

    @property
    def corner(self) -> tuple[int, int]:
        h, w = self.box_shape
        return (self.height - h) // 2, (self.width - w) // 2

    def cut(
        self, volume: np.ndarray, mask: np.ndarray, indices: np.ndarray, *, context: int = 0
    ) -> np.ndarray:
        """Slices ``indices`` of a slice-axis-first volume, (n, 2 * context + 1, H, W),
        masked, with neighbours beyond the volume's ends left at zero."""
        h, w = self.box_shape
        top, left = self.corner
        out = np.zeros((len(indices), 2 * context + 1, self.height, self.width), np.float32)
        for b, i in enumerate(indices):
            for c, j in enumerate(range(i - context, i + context + 1)):
                if 0 <= j < len(volume):
                    out[b, c, top : top + h, left : left + w] = np.where(
                        mask[j, self.rows, self.cols], volume[j, self.rows, self.cols], 0.0
                    )
        return out

    def paste(
        self, out: np.ndarray, slices: np.ndarray, mask: np.ndarray, indices: np.ndarray
    ) -> None:
        """Write (n, H, W) network slices back into a slice-axis-first volume, masked."""
        h, w = self.box_shape
        top, left = self.corner
        for b, i in enumerate(indices):
            out[i, self.rows, self.cols] = np.where(
                mask[i, self.rows, self.cols], slices[b, top : top + h, left : left + w], 0.0
            )


def brain_slices(mask: np.ndarray, min_voxels: int = 1) -> np.ndarray:
    """Indices of the slices of a slice-axis-first mask with at least ``min_voxels``."""
    return np.flatnonzero(mask.reshape(len(mask), -1).sum(axis=1) >= min_voxels)
