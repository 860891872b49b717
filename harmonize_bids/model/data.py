"""Paired training slices from co-registered source/target volumes.

Volumes are preprocessed float arrays in [0, 1] (RAS+, 1 mm, skull stripped, source and
target registered).  Slices along ``axis`` that contain brain are kept; every slice is
cropped to its volume's in-plane brain bounding box, centred in a common frame (the
largest box over all volumes, rounded up to the network's multiple) and masked by
:mod:`harmonize_bids.model.slicing`, the rule inference uses too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .slicing import SliceFrame, brain_slices


@dataclass
class SlicePairs:
    """Paired slices in image scale [0, 1]."""

    source: torch.Tensor  # (N, C, H, W): the slice and k neighbours on each side[, matched]
    target: torch.Tensor  # (N, 1, H, W)
    volume_index: np.ndarray  # (N,) which volume each slice comes from
    lesion: torch.Tensor | None = None  # (N, 1, H, W) bool, where lesion masks were given
    position: np.ndarray | None = None  # (N,) each slice's index along its volume's axis

    def __len__(self) -> int:
        return int(self.source.shape[0])

    @property
    def frame(self) -> tuple[int, int]:
        return int(self.source.shape[2]), int(self.source.shape[3])

    def next_in_volume(self) -> np.ndarray:
        """(N,) index of the slice that follows each slice in its volume, -1 where none."""
        if self.position is None:
            raise ValueError("these slices carry no positions")
        follows = (self.volume_index[1:] == self.volume_index[:-1]) & (
            self.position[1:] == self.position[:-1] + 1
        )
        return np.append(np.where(follows, np.arange(1, len(self)), -1), -1)

    def patch_corners(
        self, n: int, patch: tuple[int, int], generator: torch.Generator | None = None
    ) -> list[tuple[int, int]]:
        """``n`` random top-left corners of a ``patch`` (H, W) in the frame."""
        (ph, pw), (h, w) = patch, self.frame
        tops = torch.randint(0, h - ph + 1, (n,), generator=generator)
        lefts = torch.randint(0, w - pw + 1, (n,), generator=generator)
        return list(zip(tops.tolist(), lefts.tolist(), strict=True))

    def batch(
        self,
        indices: torch.Tensor,
        *,
        patch: tuple[int, int] | None = None,
        generator: torch.Generator | None = None,
        corners: list[tuple[int, int]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Gather slices ``indices`` (source, target and lesion mask or None), each cut to
        one ``patch`` (H, W) if given, at ``corners`` or random ones."""
        arrays = [a[indices] for a in (self.source, self.target, self.lesion) if a is not None]
        if patch is not None and tuple(patch) != self.frame:
            ph, pw = patch
            if corners is None:
                corners = self.patch_corners(len(indices), patch, generator)
            arrays = [
                torch.stack(
                    [
                        a[:, y : y + ph, x : x + pw]
                        for a, (y, x) in zip(array, corners, strict=True)
                    ]
                )
                for array in arrays
            ]
        return arrays[0], arrays[1], arrays[2] if len(arrays) == 3 else None


def extract_slice_pairs(
    sources: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    *,
    axis: int = 0,
    context_slices: int = 0,
    multiple: int = 8,
    min_brain_voxels: int = 1,
    lesions: Sequence[np.ndarray | None] | None = None,
    matched: Sequence[np.ndarray] | None = None,
) -> SlicePairs:
    """Cut paired brain-containing slices out of co-registered volumes.

    ``masks`` are boolean brain masks (one per pair; voxels outside are zeroed in both
    source and target).  Slices with fewer than ``min_brain_voxels`` mask voxels are skipped.
    ``lesions`` optionally gives a boolean lesion mask per pair on the same grid (None: no
    lesions), cut the same way. ``matched`` optionally gives each source matched to its
    target-field reference, appended to the source channels.
    """
    if not (len(sources) == len(targets) == len(masks)) or not sources:
        raise ValueError("sources, targets and masks must be non-empty lists of equal length.")
    for name, extra in (("lesion masks", lesions), ("matched sources", matched)):
        if extra is not None and len(extra) != len(sources):
            raise ValueError(f"Got {len(extra)} {name} for {len(sources)} pairs.")
    views = []
    for n, (s, t, m) in enumerate(zip(sources, targets, masks, strict=True)):
        s, t, m = np.asarray(s), np.asarray(t), np.asarray(m, dtype=bool)
        if s.ndim != 3 or s.shape != t.shape or s.shape != m.shape:
            raise ValueError(
                f"Pair {n}: source, target and mask must be 3-D arrays of one "
                f"shape; got {s.shape}, {t.shape}, {m.shape}."
            )
        if not m.any():
            raise ValueError(f"Pair {n}: the brain mask is empty.")
        extras = {}
        for name, extra in (("lesion", lesions), ("matched", matched)):
            volume = extra[n] if extra is not None else None
            if volume is not None:
                volume = np.asarray(volume)
                if volume.shape != m.shape:
                    raise ValueError(
                        f"Pair {n}: the {name} volume's shape {volume.shape} is "
                        f"not the brain mask's {m.shape}."
                    )
                volume = np.moveaxis(volume, axis, 0)
            extras[name] = volume
        views.append((*(np.moveaxis(a, axis, 0) for a in (s, t, m)), extras))
    frames = [SliceFrame.around(m, multiple) for _, _, m, _ in views]
    frame = (max(f.height for f in frames), max(f.width for f in frames))
    srcs, tgts, lsns, vidx, positions = [], [], [], [], []
    for n, (s, t, m, extras) in enumerate(views):
        cutter = SliceFrame.around(m, multiple, frame)
        keep = brain_slices(m, min_brain_voxels)
        src = cutter.cut(s, m, keep, context=context_slices)
        if extras["matched"] is not None:
            src = np.concatenate([src, cutter.cut(extras["matched"], m, keep)], axis=1)
        srcs.append(torch.from_numpy(src))
        tgts.append(torch.from_numpy(cutter.cut(t, m, keep)))
        if lesions is not None:
            les = extras["lesion"]
            lsn = (
                np.zeros((keep.size, 1, *frame), bool)
                if les is None
                else cutter.cut(les.astype(np.float32), m, keep) > 0.5
            )
            lsns.append(torch.from_numpy(lsn))
        vidx.append(np.full(keep.size, n))
        positions.append(keep)
    return SlicePairs(
        torch.cat(srcs),
        torch.cat(tgts),
        np.concatenate(vidx),
        torch.cat(lsns) if lesions is not None else None,
        np.concatenate(positions),
    )
