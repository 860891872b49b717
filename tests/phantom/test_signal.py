"""MPRAGE signal equation and protocol table."""

from __future__ import annotations

import numpy as np

from harmonize_bids.phantom import PROTOCOLS
from harmonize_bids.phantom.signal import mprage_signal, tissue_signal
from harmonize_bids.phantom.tissues import TISSUES


def test_protocols_match_paper_table4():
    p15, p3 = PROTOCOLS[1.5], PROTOCOLS[3.0]
    assert (p15.repetition_time, p15.inversion_time, p15.echo_time, p15.flip_angle) == (
        2080.0,
        1100.0,
        3.1,
        15.0,
    )
    assert (p3.repetition_time, p3.inversion_time, p3.echo_time, p3.flip_angle) == (
        2300.0,
        900.0,
        2.94,
        9.0,
    )
    assert p15.model == 'Magnetom Avanto' and p3.model.startswith('Magnetom Skyra')


def test_t1_weighting_order():
    # Short T1 is bright in MPRAGE: WM > GM > CSF at both fields.
    for protocol in PROTOCOLS.values():
        s = {k: float(tissue_signal(TISSUES[k], protocol)) for k in ('wm', 'gm', 'csf')}
        assert s['wm'] > s['gm'] > s['csf'] > 0


def test_signal_matches_bloch_simulation():
    """Closed form against an explicit step-by-step simulation of many TRs."""
    p = PROTOCOLS[3.0]
    t1 = 1000.0
    alpha = np.deg2rad(p.flip_angle)
    mz, ta = 1.0, p.inversion_time - p.centre_echo * p.echo_spacing
    td = p.repetition_time - ta - p.n_partitions * p.echo_spacing

    def relax(m, t):
        return 1.0 - (1.0 - m) * np.exp(-t / t1)

    for _ in range(30):
        mz = relax(-p.inversion_efficiency * mz, ta)
        for k in range(p.n_partitions):
            if k == p.centre_echo:
                centre = mz * np.sin(alpha)
            mz = relax(mz * np.cos(alpha), p.echo_spacing)
        mz = relax(mz, td)
    assert np.isclose(float(mprage_signal(t1, p)), centre, rtol=1e-6)
