"""Shared NIfTI helpers: robust loading, saving, grid checks, nibabel <-> ANTs."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from .errors import ImageError

if TYPE_CHECKING:  # pragma: no cover
    import ants

PathT = str | PathLike


def load_image(path: PathT) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Load a NIfTI image and its data as float32; any read failure becomes ImageError."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f'{path}: file not found. Check the path.')
    try:
        img = nib.load(path)
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel raises many types for corrupt/truncated files
        raise ImageError(
            f'{path}: cannot read image ({type(exc).__name__}: {exc}). '
            'Re-export or re-convert the file (e.g. dcm2niix).'
        ) from exc
    return img, data


def save_like(
    data: np.ndarray,
    ref: nib.spatialimages.SpatialImage,
    out_file: PathT,
    dtype: type = np.float32,
) -> Path:
    """Save ``data`` on exactly the grid (affine, qform/sform codes) of ``ref``."""
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    header = ref.header.copy() if isinstance(ref, nib.Nifti1Image) else None
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), ref.affine, header)
    img.set_data_dtype(dtype)
    img.header.set_slope_inter(1.0, 0.0)
    if header is not None:
        img.set_qform(ref.affine, int(header['qform_code']) or 1)
        img.set_sform(ref.affine, int(header['sform_code']) or 1)
    img.to_filename(out_file)
    return out_file


def check_same_grid(
    img: nib.spatialimages.SpatialImage,
    ref: nib.spatialimages.SpatialImage,
    img_file: PathT,
    ref_file: PathT,
) -> None:
    """Raise ImageError unless both images share shape and affine."""
    if img.shape[:3] != ref.shape[:3] or not np.allclose(img.affine, ref.affine, atol=1e-4):
        raise ImageError(
            f'{img_file}: grid {img.shape[:3]} does not match {ref_file} {ref.shape[:3]} '
            '(shape or affine differ). Resample both to the same grid first.'
        )


def zooms_from_affine(affine: np.ndarray) -> np.ndarray:
    """Voxel sizes (mm) of the three axes, valid for oblique affines too."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def to_ants(data: np.ndarray, affine: np.ndarray) -> ants.ANTsImage:
    """ANTs image with the same physical geometry as a nibabel (RAS) array/affine pair."""
    import ants

    lps = np.diag([-1.0, -1.0, 1.0])
    zooms = zooms_from_affine(affine)
    direction = lps @ affine[:3, :3] / zooms
    origin = lps @ affine[:3, 3]
    return ants.from_numpy(
        np.ascontiguousarray(data, dtype=np.float32),
        origin=origin.tolist(),
        spacing=zooms.tolist(),
        direction=direction,
    )


def crop_box(
    mask: np.ndarray, affine: np.ndarray, margin: int = 8
) -> tuple[tuple[slice, ...], np.ndarray]:
    """Bounding box of ``mask`` (+ ``margin`` voxels) and the affine of that sub-grid."""
    idx = np.argwhere(mask)
    if idx.size == 0:
        return tuple(slice(0, s) for s in mask.shape), np.asarray(affine, dtype=float)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + 1 + margin, mask.shape)
    box_affine = np.array(affine, dtype=float)
    box_affine[:3, 3] += box_affine[:3, :3] @ lo
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True)), box_affine
