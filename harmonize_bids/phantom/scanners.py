"""The scanner model: sites whose 1.5 T and 3 T scanners are drawn from realistic ranges.

A site is one study's pair of scanners (protocol, transmit and receive fields, noise) and
the tissue relaxation values its subjects show. Three distributions:

- ``paper``: the paper's Siemens Avanto / Skyra pair with the literature tissue values
  (one fixed site; the original phantom).
- ``core``: what bundled models train on: Siemens MPRAGE and Philips inversion-prepared
  TFE protocols with parameters inside each range's central part, tissue values within
  +-7 % of the literature values.
- ``unseen``: what no training run, setting or calibration sees: GE IR-FSPGR (BRAVO)
  protocols, and Siemens / Philips protocols whose inversion time, flip angle and cycle
  time lie in the bands outside the core ranges; tissue values 7-18 % from the
  literature; stronger receive bias, noise and transmit inhomogeneity bands.

Ranges follow published protocols (ADNI 1.5 T / 3 T, HCP, UK Biobank, vendor defaults):
MPRAGE TR 1800-2500 ms, TI 750-1150 ms (3 T) / 900-1250 ms (1.5 T), flip 6-15 deg;
Philips TFE shot interval 2000-3200 ms; GE BRAVO prep time 400-800 ms, flip 8-15 deg.
Every drawn protocol is kept only if its readout fits between inversions and, with the
site's tissue values, its T1w contrast looks like a real scan's: CSF < GM < WM, GM at
0.45-0.85 and CSF below 0.40 of the WM signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .protocols import PROTOCOLS, Protocol
from .tissues import TISSUES, Tissue

DISTRIBUTIONS = ('paper', 'core', 'unseen')
FIELDS = (1.5, 3.0)
CORE_FAMILIES = ('siemens-mprage', 'philips-tfe')
UNSEEN_FAMILIES = ('ge-irspgr', 'siemens-mprage', 'philips-tfe')


@dataclass(frozen=True)
class Band:
    """A parameter's core range and the outer bands beyond it (lo < core_lo < core_hi < hi)."""

    lo: float
    core_lo: float
    core_hi: float
    hi: float

    def draw(self, rng: np.random.Generator, outer: bool) -> float:
        if not outer:
            return float(rng.uniform(self.core_lo, self.core_hi))
        below, above = self.core_lo - self.lo, self.hi - self.core_hi
        u = rng.uniform(0.0, below + above)
        return float(self.lo + u if u < below else self.core_hi + (u - below))


# family -> field -> parameter -> Band. Times ms, angles deg.
PROTOCOL_BANDS: dict[str, dict[float, dict[str, Band]]] = {
    'siemens-mprage': {
        1.5: {
            'repetition_time': Band(1800, 1950, 2400, 2700),
            'inversion_time': Band(850, 950, 1150, 1250),
            'flip_angle': Band(6, 8, 15, 18),
            'echo_spacing': Band(7.5, 8.0, 9.5, 10.5),
            'echo_time': Band(2.8, 3.0, 4.0, 4.4),
        },
        3.0: {
            'repetition_time': Band(1700, 1900, 2400, 2600),
            'inversion_time': Band(750, 850, 1050, 1150),
            'flip_angle': Band(6, 7, 10, 12),
            'echo_spacing': Band(6.0, 6.5, 8.0, 9.0),
            'echo_time': Band(2.0, 2.2, 3.2, 3.6),
        },
    },
    'philips-tfe': {
        1.5: {
            'repetition_time': Band(1800, 2200, 3000, 3200),
            'inversion_time': Band(750, 850, 1100, 1200),
            'flip_angle': Band(6, 8, 12, 15),
            'echo_spacing': Band(7.5, 8.0, 9.0, 10.0),
            'echo_time': Band(3.0, 3.3, 4.2, 4.6),
        },
        3.0: {
            'repetition_time': Band(1800, 2200, 3000, 3200),
            'inversion_time': Band(700, 800, 1050, 1150),
            'flip_angle': Band(6, 8, 10, 12),
            'echo_spacing': Band(6.0, 6.5, 8.0, 8.5),
            'echo_time': Band(2.8, 3.0, 3.8, 4.2),
        },
    },
    # Unseen only: any value of its range is "outer" for training.
    'ge-irspgr': {
        1.5: {
            'repetition_time': Band(1200, 1200, 1200, 2000),
            'inversion_time': Band(500, 500, 500, 900),
            'flip_angle': Band(8, 8, 8, 15),
            'echo_spacing': Band(8.0, 8.0, 8.0, 10.5),
            'echo_time': Band(3.0, 3.0, 3.0, 4.5),
        },
        3.0: {
            'repetition_time': Band(1100, 1100, 1100, 1800),
            'inversion_time': Band(450, 450, 450, 800),
            'flip_angle': Band(8, 8, 8, 13),
            'echo_spacing': Band(6.5, 6.5, 6.5, 8.5),
            'echo_time': Band(2.6, 2.6, 2.6, 3.4),
        },
    },
}
#: Parameters that set the T1 contrast; an unseen Siemens / Philips protocol draws all of
#: them from the outer bands (the others from either part, evenly).
CONTRAST_PARAMETERS = ('repetition_time', 'inversion_time', 'flip_angle')
#: Echoes per inversion and where the k-space centre sits in the train, per family.
TRAIN_SHAPE = {
    'siemens-mprage': ((160, 208), (0.5, 0.5)),
    'philips-tfe': ((150, 240), (0.35, 0.5)),
    'ge-irspgr': ((110, 200), (0.1, 0.3)),
}
MODELS = {
    ('siemens-mprage', 1.5): ('Magnetom Avanto', 'Magnetom Aera', 'Magnetom Sola'),
    ('siemens-mprage', 3.0): ('Magnetom Prisma', 'Magnetom Skyra', 'Magnetom Trio'),
    ('philips-tfe', 1.5): ('Achieva', 'Ingenia'),
    ('philips-tfe', 3.0): ('Achieva dStream', 'Ingenia Elition'),
    ('ge-irspgr', 1.5): ('Signa HDxt', 'Optima MR450w'),
    ('ge-irspgr', 3.0): ('Discovery MR750', 'Signa Premier'),
}
#: Relative (core, outer) half-widths of the tissue parameter draws.
T1_SPREAD = (0.07, 0.18)
PD_SPREAD = (0.03, 0.07)
#: The GM / WM and largest CSF / WM signal ratio a drawn protocol may give.
GM_WM_RATIO = (0.45, 0.85)
MAX_CSF_WM_RATIO = 0.40


@dataclass(frozen=True)
class Scanner:
    """One scanner at a site: its protocol and the physics around it.

    Transmit field B1 = calibration x (``transmit_base`` + ``transmit_peak`` x a Gaussian
    bump of the head centre + a linear tilt of ``transmit_tilt_sd`` % per 100 mm);
    ``receive_bias_sd`` is the log-sd of the residual receive bias; noise scales with
    ``noise_scale`` / ``coil_gain``.
    """

    protocol: Protocol
    coil_gain: float
    receive_bias_sd: float
    transmit_base: float
    transmit_peak: float
    transmit_tilt_sd: float
    noise_scale: float = 1.0

    def describe(self) -> dict:
        """What a phantom session records about its scanner (ms, degrees)."""
        p = self.protocol
        return {
            'family': p.family,
            'model': p.model,
            'repetition_time_ms': p.repetition_time,
            'inversion_time_ms': p.inversion_time,
            'echo_time_ms': p.echo_time,
            'flip_angle_deg': p.flip_angle,
            'echo_spacing_ms': p.echo_spacing,
            'echoes_per_inversion': p.echoes,
            'centre_fraction': p.centre_fraction,
            'voxel_size_mm': [round(v, 4) for v in p.voxel_size],
            'coil_gain': self.coil_gain,
            'receive_bias_sd': self.receive_bias_sd,
            'transmit_peak': self.transmit_peak,
            'noise_scale': self.noise_scale,
        }


@dataclass(frozen=True)
class Site:
    """A study's scanners (one per field) and its tissue relaxation values."""

    index: int
    distribution: str
    scanners: dict[float, Scanner]
    tissues: dict[str, Tissue] = field(default_factory=lambda: dict(TISSUES))

    def describe(self) -> dict:
        return {
            'site': self.index,
            'distribution': self.distribution,
            'tissues': {
                name: {'t1_ms': t.t1, 'pd': t.pd}
                for name, t in self.tissues.items()
                if name in ('csf', 'gm', 'wm', 'lesion')
            },
        }


def paper_scanner(field_strength: float) -> Scanner:
    """The paper's scanner at one field (its protocol and the original physics)."""
    if field_strength < 2:
        return Scanner(
            PROTOCOLS[1.5],
            coil_gain=1.0,
            receive_bias_sd=0.06,
            transmit_base=1.0,
            transmit_peak=0.0,
            transmit_tilt_sd=0.02,
        )
    return Scanner(
        PROTOCOLS[3.0],
        coil_gain=1.4,
        receive_bias_sd=0.12,
        transmit_base=0.80,
        transmit_peak=0.40,
        transmit_tilt_sd=0.05,
    )


def paper_site() -> Site:
    return Site(0, 'paper', {b0: paper_scanner(b0) for b0 in FIELDS})


def _draw_protocol(rng: np.random.Generator, family: str, b0: float, unseen: bool) -> Protocol:
    bands = PROTOCOL_BANDS[family][b0]
    values = {}
    for name, band in bands.items():
        if family == 'ge-irspgr':
            outer = True
        elif unseen:
            outer = name in CONTRAST_PARAMETERS or bool(rng.random() < 0.5)
        else:
            outer = False
        values[name] = round(band.draw(rng, outer), 2 if name == 'echo_time' else 1)
    (n_lo, n_hi), (c_lo, c_hi) = TRAIN_SHAPE[family]
    echoes = int(rng.integers(n_lo, n_hi + 1))
    centre = round(float(rng.uniform(c_lo, c_hi)), 2)
    # Voxel size: 1 mm isotropic or thicker slices (core); finer or coarser (unseen).
    if unseen:
        in_plane = float(rng.choice([0.8, 0.9, 1.1, 1.2]))
        thickness = float(rng.choice([0.8, 0.9, 1.3, 1.5]))
    else:
        in_plane = float(rng.choice([0.94, 1.0]))
        thickness = float(rng.choice([1.0, 1.1, 1.2]))
    fov_read, fov_phase = 256.0, 240.0
    slices = int(round(176 / thickness))
    bandwidth = float(rng.uniform(130, 250) if b0 < 2 else rng.uniform(180, 300))
    siemens = family == 'siemens-mprage'
    reported = b0 if not siemens or b0 < 2 else float(rng.choice([2.89, 3.0]))
    if siemens:  # all partitions of a phase line per inversion
        echoes = slices
    return Protocol(
        field_strength=b0,
        model=str(rng.choice(MODELS[family, b0])),
        software_version='phantom',
        repetition_time=values['repetition_time'],
        inversion_time=values['inversion_time'],
        echo_time=values['echo_time'],
        flip_angle=values['flip_angle'],
        pixel_bandwidth=round(bandwidth),
        echo_spacing=values['echo_spacing'],
        n_partitions=slices,
        slice_thickness=thickness,
        fov_read=fov_read,
        fov_phase=fov_phase,
        matrix_read=int(round(fov_read / in_plane)),
        matrix_phase=int(round(fov_phase / in_plane)),
        family=family,
        train_length=None if siemens else echoes,
        centre_fraction=centre,
        reported_field_strength=reported,
    )


def _fit_cycle(protocol: Protocol, rng: np.random.Generator) -> Protocol:
    """Lengthen the cycle (TR) just enough for the readout plus a short recovery."""
    before = protocol.inversion_time - protocol.centre_echo * protocol.echo_spacing
    needed = before + protocol.echoes * protocol.echo_spacing + rng.uniform(0.0, 400.0)
    if protocol.repetition_time < needed:
        protocol = replace(protocol, repetition_time=round(float(needed), 1))
    return protocol


def _contrast_ok(protocol: Protocol, tissues: dict[str, Tissue]) -> bool:
    from .signal import tissue_signal

    if protocol.timing_problem():
        return False
    s = {k: abs(float(tissue_signal(tissues[k], protocol))) for k in ('csf', 'gm', 'wm')}
    gm, csf = s['gm'] / s['wm'], s['csf'] / s['wm']
    return csf < gm and GM_WM_RATIO[0] <= gm <= GM_WM_RATIO[1] and csf <= MAX_CSF_WM_RATIO


def draw_scanner(
    rng: np.random.Generator,
    b0: float,
    *,
    unseen: bool,
    tissues: dict[str, Tissue] = TISSUES,
    family: str | None = None,
) -> Scanner:
    """A random scanner at field ``b0`` from the core or the unseen distribution, whose
    contrast with ``tissues`` looks like a real scan's."""
    if family is None:
        families = UNSEEN_FAMILIES if unseen else CORE_FAMILIES
        family = str(rng.choice(families))
    for _ in range(200):
        protocol = _fit_cycle(_draw_protocol(rng, family, b0, unseen), rng)
        if _contrast_ok(protocol, tissues):
            break
    else:
        raise RuntimeError(f'no {family} protocol at {b0:g} T with a usable T1w contrast')
    low = b0 < 2
    # (core range, outer bands) per physical parameter.
    bias = Band(0.03, 0.04, 0.08, 0.13) if low else Band(0.06, 0.08, 0.15, 0.22)
    peak = Band(0.0, 0.0, 0.08, 0.15) if low else Band(0.15, 0.30, 0.45, 0.55)
    noise = Band(0.6, 0.8, 1.25, 1.7)
    coil = (1.0, 1.2) if low else (1.2, 1.4, 1.6)
    peak_value = round(peak.draw(rng, unseen), 3)
    return Scanner(
        protocol,
        coil_gain=float(rng.choice(coil)),
        receive_bias_sd=round(bias.draw(rng, unseen), 3),
        transmit_base=round(1.0 - peak_value / 2, 4),
        transmit_peak=peak_value,
        transmit_tilt_sd=0.02 if low else 0.05,
        noise_scale=round(noise.draw(rng, unseen), 3),
    )


def _factor(rng: np.random.Generator, spread: tuple[float, float], unseen: bool) -> float:
    """1 +- a draw from the core half-width, or from the band between core and outer."""
    core, outer = spread
    if not unseen:
        return float(1.0 + rng.uniform(-core, core))
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return float(1.0 + sign * rng.uniform(core, outer))


def draw_tissues(rng: np.random.Generator, *, unseen: bool) -> dict[str, Tissue]:
    """Brain tissue T1 and PD drawn around the literature values (others unchanged).

    Each tissue's T1 moves by one factor at both fields (its biology, or a relaxometry
    method's bias) and by up to 2 % more per field; the T1 order WM < GM and
    WM < lesion < CSF is kept.
    """
    out = dict(TISSUES)
    for _ in range(100):
        drawn = {}
        for name in ('csf', 'gm', 'wm', 'lesion'):
            tissue = TISSUES[name]
            shared = _factor(rng, T1_SPREAD, unseen)
            t1 = {b0: round(tissue.t1[b0] * shared * rng.uniform(0.98, 1.02), 1) for b0 in FIELDS}
            pd = round(min(1.0, tissue.pd * _factor(rng, PD_SPREAD, unseen)), 3)
            drawn[name] = replace(tissue, t1=t1, pd=pd)
        if all(
            drawn['wm'].t1[b0] < drawn['lesion'].t1[b0] < drawn['csf'].t1[b0]
            and drawn['wm'].t1[b0] < drawn['gm'].t1[b0]
            for b0 in FIELDS
        ):
            out.update(drawn)
            return out
    raise RuntimeError('no tissue draw kept the T1 order')


def draw_site(rng: np.random.Generator, index: int, distribution: str) -> Site:
    """One site of the ``core`` or ``unseen`` distribution (``paper``: the fixed site)."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f'Unknown scanner distribution {distribution!r}; choose one of {DISTRIBUTIONS}.'
        )
    if distribution == 'paper':
        return paper_site()
    unseen = distribution == 'unseen'
    tissues = draw_tissues(rng, unseen=unseen)
    scanners = {b0: draw_scanner(rng, b0, unseen=unseen, tissues=tissues) for b0 in FIELDS}
    return Site(index, distribution, scanners, tissues)
