"""Paired training slices from co-registered source/target volumes.

Volumes are preprocessed float arrays in [0, 1] (RAS+, 1 mm, skull stripped, source and
target registered).  Slices along ``axis`` that contain brain are kept; every slice is
cropped to its volume's in-plane brain bounding box, centred in a common frame (the
largest box over all volumes, rounded up to the network's multiple) and masked, exactly
as :func:`harmonize_bids.model.sampling.harmonize_volume` prepares inference input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class SlicePairs:
    """Paired slices in image scale [0, 1]."""

    source: torch.Tensor  # (N, 2k+1, H, W): the slice and k neighbours on each side
    target: torch.Tensor  # (N, 1, H, W)
    volume_index: np.ndarray  # (N,) which volume each slice comes from
    lesion: torch.Tensor | None = None  # (N, 1, H, W) bool, where lesion masks were given

    def __len__(self) -> int:
        return int(self.source.shape[0])

    @property
    def frame(self) -> tuple[int, int]:
        return int(self.source.shape[2]), int(self.source.shape[3])

    def batch(self, indices: torch.Tensor, *, patch: tuple[int, int] | None = None,
              generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Gather slices ``indices`` (source, target and lesion mask or None), each cut to
        one random ``patch`` (H, W) if given."""
        arrays = [a[indices] for a in (self.source, self.target, self.lesion) if a is not None]
        if patch is not None and tuple(patch) != self.frame:
            ph, pw = patch
            h, w = self.frame
            tops = torch.randint(0, h - ph + 1, (len(indices),), generator=generator)
            lefts = torch.randint(0, w - pw + 1, (len(indices),), generator=generator)
            corners = list(zip(tops.tolist(), lefts.tolist(), strict=True))
            arrays = [torch.stack([a[:, y:y + ph, x:x + pw]
                                   for a, (y, x) in zip(array, corners, strict=True)])
                      for array in arrays]
        return arrays[0], arrays[1], arrays[2] if len(arrays) == 3 else None


def _bbox(mask: np.ndarray) -> tuple[slice, slice]:
    rows = np.flatnonzero(mask.any(axis=(0, 2)))
    cols = np.flatnonzero(mask.any(axis=(0, 1)))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def extract_slice_pairs(sources: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                        masks: Sequence[np.ndarray], *, axis: int = 0, context_slices: int = 0,
                        multiple: int = 8, min_brain_voxels: int = 1,
                        lesions: Sequence[np.ndarray | None] | None = None) -> SlicePairs:
    """Cut paired brain-containing slices out of co-registered volumes.

    ``masks`` are boolean brain masks (one per pair; voxels outside are zeroed in both
    source and target).  Slices with fewer than ``min_brain_voxels`` mask voxels are skipped.
    ``lesions`` optionally gives a boolean lesion mask per pair on the same grid (None: no
    lesions), cut the same way.
    """
    if not (len(sources) == len(targets) == len(masks)) or not sources:
        raise ValueError("sources, targets and masks must be non-empty lists of equal length.")
    if lesions is not None and len(lesions) != len(sources):
        raise ValueError(f"Got {len(lesions)} lesion masks for {len(sources)} pairs.")
    views, boxes = [], []
    for n, (s, t, m) in enumerate(zip(sources, targets, masks, strict=True)):
        s, t, m = np.asarray(s), np.asarray(t), np.asarray(m, dtype=bool)
        if s.ndim != 3 or s.shape != t.shape or s.shape != m.shape:
            raise ValueError(f"Pair {n}: source, target and mask must be 3-D arrays of one "
                             f"shape; got {s.shape}, {t.shape}, {m.shape}.")
        if not m.any():
            raise ValueError(f"Pair {n}: the brain mask is empty.")
        les = lesions[n] if lesions is not None else None
        if les is not None:
            les = np.asarray(les, dtype=bool)
            if les.shape != m.shape:
                raise ValueError(f"Pair {n}: the lesion mask's shape {les.shape} is not the "
                                 f"brain mask's {m.shape}.")
            les = np.moveaxis(les, axis, 0)
        s, t, m = (np.moveaxis(a, axis, 0) for a in (s, t, m))
        views.append((s, t, m, les))
        boxes.append(_bbox(m))
    height = math.ceil(max(b[0].stop - b[0].start for b in boxes) / multiple) * multiple
    width = math.ceil(max(b[1].stop - b[1].start for b in boxes) / multiple) * multiple
    k = context_slices
    srcs, tgts, lsns, vidx = [], [], [], []
    for n, ((s, t, m, les), (rows, cols)) in enumerate(zip(views, boxes, strict=True)):
        h, w = rows.stop - rows.start, cols.stop - cols.start
        top, left = (height - h) // 2, (width - w) // 2
        keep = np.flatnonzero(m[:, rows, cols].sum(axis=(1, 2)) >= min_brain_voxels)
        src = np.zeros((keep.size, 2 * k + 1, height, width), dtype=np.float32)
        tgt = np.zeros((keep.size, 1, height, width), dtype=np.float32)
        lsn = np.zeros((keep.size if lesions is not None else 0, 1, height, width), dtype=bool)
        for b, i in enumerate(keep):
            for c, j in enumerate(range(i - k, i + k + 1)):
                if 0 <= j < len(s):
                    src[b, c, top:top + h, left:left + w] = np.where(
                        m[j, rows, cols], s[j, rows, cols], 0.0)
            tgt[b, 0, top:top + h, left:left + w] = np.where(m[i, rows, cols],
                                                             t[i, rows, cols], 0.0)
            if les is not None:
                lsn[b, 0, top:top + h, left:left + w] = les[i, rows, cols] & m[i, rows, cols]
        srcs.append(torch.from_numpy(src))
        tgts.append(torch.from_numpy(tgt))
        lsns.append(torch.from_numpy(lsn))
        vidx.append(np.full(keep.size, n))
    return SlicePairs(torch.cat(srcs), torch.cat(tgts), np.concatenate(vidx),
                      torch.cat(lsns) if lesions is not None else None)
