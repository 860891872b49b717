"""MPRAGE signal at the k-space centre (Deichmann et al., MRM 43:213-219, 2000).

Closed-form steady state of the inversion / FLASH-train / recovery cycle, the same
algebra as the MP2RAGE signal of Marques et al. (NeuroImage 49:1271-1281, 2010) for
one readout block. Magnetisation is relative to M0 = 1; the sign is kept so that partial
volumes add as complex (here real) signals before the magnitude is taken.
"""

from __future__ import annotations

import numpy as np

from .protocols import Protocol
from .tissues import Tissue


def mprage_signal(
    t1: np.ndarray | float, protocol: Protocol, b1: np.ndarray | float = 1.0
) -> np.ndarray:
    """Signed transverse signal of the k-space-centre echo, per unit M0.

    t1 in ms; b1 scales the nominal flip angle (transmit field). The adiabatic inversion is
    taken as B1-insensitive with efficiency ``protocol.inversion_efficiency``.
    """
    t1 = np.asarray(t1, dtype=np.float64)
    alpha = np.deg2rad(protocol.flip_angle) * np.asarray(b1, dtype=np.float64)
    esp, n, kc = protocol.echo_spacing, protocol.echoes, protocol.centre_echo
    ta = protocol.inversion_time - kc * esp  # inversion -> first excitation
    td = protocol.repetition_time - ta - n * esp  # end of train -> next inversion
    problem = protocol.timing_problem()
    if problem:
        raise ValueError(f'{protocol.model}: {problem}.')
    eff = protocol.inversion_efficiency
    e1 = np.exp(-esp / t1)
    ea, ed = np.exp(-ta / t1), np.exp(-td / t1)
    x = np.cos(alpha) * e1
    m_gre = (1.0 - e1) / (1.0 - x)  # FLASH-train steady state
    xn = x**n
    # Mz just before the inversion, solved from one full cycle being periodic.
    m_ss = (1.0 - ed + ed * (m_gre * (1.0 - xn) + xn * (1.0 - ea))) / (1.0 + eff * ea * ed * xn)
    m_a = 1.0 - (1.0 + eff * m_ss) * ea  # at the first excitation
    m_centre = m_gre + (m_a - m_gre) * x**kc
    return m_centre * np.sin(alpha)


def tissue_signal(tissue: Tissue, protocol: Protocol, b1: np.ndarray | float = 1.0) -> np.ndarray:
    """PD * MPRAGE(T1, flip * B1) * exp(-TE / T2*) for one tissue."""
    b0 = protocol.field_strength
    return (
        tissue.pd
        * mprage_signal(tissue.t1[b0], protocol, b1)
        * np.exp(-protocol.echo_time / tissue.t2star[b0])
    )
