"""One MPRAGE acquisition of a phantom subject: pose, transmit / receive fields, noise, grid.

Signals are formed on the subject's working grid, where partial volumes add as signed
(real) signals, then resampled to the scanner grid: a sagittal 3D slab stored as
(phase A->P, read S->I, slices R->L), i.e. 'PIL' axis codes, as a scanner would write it.

SNR model (documented, not fitted): signal per voxel ~ B0 (body-noise-dominated regime,
SNR ~ B0), voxel volume, 1 / sqrt(pixel bandwidth) and the receive coil's gain (the paper's
12-channel Head Matrix on the Avanto 1.0, its 32-channel head coil on the Skyra ~1.4;
Wiggins et al., MRM 56:216-223, 2006), times a scanner's ``noise_scale``. The one free
constant (NOISE_SIGMA) anchors the paper's 1.5 T protocol at a 1 mm white-matter SNR of
~20 (pure WM, B1 = 1, no bias); the 3 T SNR follows from the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation

from .anatomy import Anatomy
from .fields import smooth_field
from .protocols import Protocol
from .scanners import Scanner
from .signal import tissue_signal
from .tissues import TISSUES, Tissue

HEAD_CENTRE_MM = np.array([0.0, -18.0, 0.0])  # subject point placed near the isocentre
NOISE_SIGMA = 0.0023  # per 1 mm^3 voxel at 130 Hz/px, 12-channel coil (M0 = 1 at 1.5 T)
INT_GAIN = 7000.0  # stored integer units per M0 at 1.5 T
INT_MAX = 4095  # 12-bit scanner range
# Tissue signal is magnetisation-weighted map names -> relaxation tissue.
SIGNAL_TISSUE = {
    'csf': 'csf',
    'gm': 'gm',
    'wm': 'wm',
    'lesion': 'lesion',
    'ecsf': 'csf',
    'bone': 'bone',
    'marrow': 'marrow',
    'muscle': 'muscle',
    'fat': 'fat',
}


@dataclass
class Acquisition:
    image: np.ndarray  # int16, scanner grid
    affine: np.ndarray
    dseg: np.ndarray  # uint8, same grid
    brain_mask: np.ndarray  # uint8
    info: dict


def scanner_grid(protocol: Protocol, factor: int) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine (PIL axis codes, centred on the isocentre) of the stored image."""
    shape = (
        protocol.matrix_phase // factor,
        protocol.matrix_read // factor,
        protocol.n_partitions // factor,
    )
    vox = np.array(protocol.voxel_size) * factor
    axes = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # P, I, L
    affine = np.eye(4)
    affine[:3, :3] = axes * vox[None, :]
    affine[:3, 3] = -affine[:3, :3] @ ((np.array(shape) - 1) / 2.0)
    return shape, affine


def draw_pose(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Subject mm -> scanner mm: a few degrees of rotation, a few mm of translation."""
    angles = rng.normal(0.0, 3.0, 3)
    shift = rng.normal(0.0, 4.0, 3)
    rot = Rotation.from_euler('xyz', angles, degrees=True).as_matrix()
    pose = np.eye(4)
    pose[:3, :3] = rot
    pose[:3, 3] = shift - rot @ HEAD_CENTRE_MM
    return pose, {
        'pose_rotation_xyz_deg': [round(float(a), 3) for a in angles],
        'pose_translation_mm': [round(float(a), 3) for a in shift],
    }


def _b1_map(rng: np.random.Generator, scanner: Scanner, world: np.ndarray) -> np.ndarray:
    """Relative transmit field at scanner coordinates ``world`` (..., 3), mm.

    At 3 T a dielectric centre brightening of the head (the paper's scanner: ~+20 %
    centre, ~-15 % periphery, e.g. Vaughan et al., MRM 46:24-30, 2001); at 1.5 T nearly
    uniform. Both with a small linear tilt and a few percent calibration error.
    """
    calib = rng.normal(1.0, 0.03)
    tilt = rng.normal(0.0, scanner.transmit_tilt_sd, 3) / 100.0
    if scanner.transmit_peak == 0:
        return calib * (scanner.transmit_base + world @ tilt)
    r2 = (world**2).sum(-1)
    return calib * (
        scanner.transmit_base + scanner.transmit_peak * np.exp(-r2 / (2 * 65.0**2)) + world @ tilt
    )


def _signal_lut(tissue: Tissue, protocol: Protocol) -> tuple[np.ndarray, np.ndarray]:
    b1 = np.linspace(0.4, 1.6, 121)
    return b1, tissue_signal(tissue, protocol, b1)


def acquire(
    anat: Anatomy,
    scanner: Scanner,
    rng: np.random.Generator,
    *,
    factor: int = 1,
    tissues: dict[str, Tissue] = TISSUES,
    pose: tuple[np.ndarray, dict] | None = None,
) -> Acquisition:
    """Image one subject on one scanner; ``factor`` coarsens the scanner matrix.

    ``pose`` (from :func:`draw_pose`) places the head; by default each acquisition draws
    its own, as a subject lies differently in each session.
    """
    protocol = scanner.protocol
    shape, affine = scanner_grid(protocol, factor)
    pose, pose_info = pose if pose is not None else draw_pose(rng)
    wshape = anat.maps['wm'].shape

    # Transmit field on the working grid, evaluated every ~8 mm and upsampled.
    sub = max(1, int(round(8.0 / anat.step)))
    idx = np.stack(
        np.meshgrid(*[np.arange(0, n + sub, sub) for n in wshape], indexing='ij'), -1
    ).astype(np.float64)
    world = (idx @ anat.affine[:3, :3].T + anat.affine[:3, 3]) @ pose[:3, :3].T + pose[:3, 3]
    b1 = _b1_map(rng, scanner, world)
    b1 = ndi.zoom(b1, sub, order=1, grid_mode=False)[: wshape[0], : wshape[1], : wshape[2]]
    b1 = np.ascontiguousarray(b1, dtype=np.float32)

    signal = np.zeros(wshape, np.float32)
    flat = signal.reshape(-1)
    for name, prob in anat.maps.items():
        x, s = _signal_lut(tissues[SIGNAL_TISSUE[name]], protocol)
        idx = np.flatnonzero(prob)  # most tissues occupy a small part of the grid
        flat[idx] += prob.reshape(-1)[idx] * np.interp(b1.reshape(-1)[idx], x, s).astype(
            np.float32
        )
    del b1

    # Scanner voxel -> subject working voxel.
    m = np.linalg.inv(anat.affine) @ np.linalg.inv(pose) @ affine

    def to_scanner(vol: np.ndarray) -> np.ndarray:
        return ndi.affine_transform(
            vol, m[:3, :3], offset=m[:3, 3], output_shape=shape, order=1, mode='constant', cval=0.0
        )

    img = to_scanner(signal)
    del signal
    b0 = protocol.field_strength
    vox_vol = float(np.prod(np.abs(np.array(protocol.voxel_size)))) * factor**3
    # Residual receive bias after prescan normalisation (stronger at 3 T).
    bias_sd = scanner.receive_bias_sd
    bias = np.exp(bias_sd * smooth_field(rng, shape, 4.0 * factor, 90.0))
    # Head-coil sensitivity falls off below the coil (neck), ~10 mm wide around z = -105 mm.
    z = affine[2, 1] * np.arange(shape[1]) + affine[2, 3]
    bias *= (1.0 / (1.0 + np.exp(-(z + 105.0) / 10.0))).astype(np.float32)[None, :, None]
    img *= bias * (b0 / 1.5) * vox_vol
    sigma = (
        NOISE_SIGMA
        * np.sqrt(protocol.pixel_bandwidth / 130.0)
        / scanner.coil_gain
        * scanner.noise_scale
    )
    noisy = np.hypot(
        img + sigma * rng.standard_normal(shape, dtype=np.float32),
        sigma * rng.standard_normal(shape, dtype=np.float32),
    )
    image = np.clip(np.rint(noisy * INT_GAIN / vox_vol), 0, INT_MAX).astype(np.int16)

    # Hard labels (max probability inside the brain mask) on the working grid, carried to
    # the scanner grid by nearest neighbour.
    dseg = ndi.affine_transform(
        anat.labels,
        m[:3, :3],
        offset=m[:3, 3],
        output_shape=shape,
        order=0,
        mode='constant',
        cval=0,
    )
    brain = dseg > 0
    info = {
        **pose_info,
        'noise_sigma': round(float(sigma * INT_GAIN), 3),
        'receive_bias_sd': bias_sd,
    }
    return Acquisition(
        image=image, affine=affine, dseg=dseg, brain_mask=brain.astype(np.uint8), info=info
    )
