"""The scanner model: site draws, held-out ranges, vendor sidecars, shared head pose."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harmonize_bids.phantom import write_phantom_dataset
from harmonize_bids.phantom.scanners import (
    CONTRAST_PARAMETERS,
    CORE_FAMILIES,
    GM_WM_RATIO,
    MAX_CSF_WM_RATIO,
    PROTOCOL_BANDS,
    T1_SPREAD,
    draw_site,
    paper_site,
)
from harmonize_bids.phantom.signal import tissue_signal
from harmonize_bids.phantom.tissues import TISSUES


def _sites(distribution, n=25):
    return [draw_site(np.random.default_rng([5, k]), k, distribution) for k in range(n)]


def test_same_seed_same_site():
    a = draw_site(np.random.default_rng(1), 0, 'unseen')
    b = draw_site(np.random.default_rng(1), 0, 'unseen')
    assert a.describe() == b.describe()
    assert a.scanners[3.0].describe() == b.scanners[3.0].describe()


@pytest.mark.parametrize('distribution', ['core', 'unseen'])
def test_every_drawn_protocol_fits_and_looks_like_a_t1w_scan(distribution):
    for site in _sites(distribution):
        for scanner in site.scanners.values():
            protocol = scanner.protocol
            assert protocol.timing_problem() is None
            s = {
                t: abs(float(tissue_signal(site.tissues[t], protocol)))
                for t in ('csf', 'gm', 'wm')
            }
            assert s['csf'] < s['gm'] < s['wm']
            assert GM_WM_RATIO[0] <= s['gm'] / s['wm'] <= GM_WM_RATIO[1]
            assert s['csf'] / s['wm'] <= MAX_CSF_WM_RATIO


def test_core_never_draws_what_unseen_holds_out():
    for site in _sites('core'):
        for b0, scanner in site.scanners.items():
            protocol = scanner.protocol
            assert protocol.family in CORE_FAMILIES
            bands = PROTOCOL_BANDS[protocol.family][b0]
            for name in ('inversion_time', 'flip_angle'):
                assert bands[name].core_lo <= getattr(protocol, name) <= bands[name].core_hi
            for tissue in ('gm', 'wm'):
                ratio = site.tissues[tissue].t1[b0] / TISSUES[tissue].t1[b0]
                assert abs(ratio - 1) <= T1_SPREAD[0] + 0.03


def test_unseen_holds_other_families_and_outer_ranges():
    sites = _sites('unseen', 30)
    families = {s.protocol.family for site in sites for s in site.scanners.values()}
    assert 'ge-irspgr' in families
    for site in sites:
        for b0, scanner in site.scanners.items():
            protocol = scanner.protocol
            if protocol.family == 'ge-irspgr':
                continue
            bands = PROTOCOL_BANDS[protocol.family][b0]
            # TI and flip angle come from the outer bands (TR may have been lengthened).
            for name in ('inversion_time', 'flip_angle'):
                value = getattr(protocol, name)
                assert not bands[name].core_lo < value < bands[name].core_hi, (name, value)
        for tissue in ('gm', 'wm'):
            ratio = site.tissues[tissue].t1[1.5] / TISSUES[tissue].t1[1.5]
            assert abs(ratio - 1) >= T1_SPREAD[0] - 0.03
    assert {'inversion_time', 'flip_angle'} <= set(CONTRAST_PARAMETERS)


def test_vendor_sidecars_name_their_repetition_time():
    site = paper_site()
    siemens = site.scanners[3.0].protocol.sidecar()
    assert siemens['RepetitionTime'] == 2.3
    assert siemens['RepetitionTimeExcitation'] == pytest.approx(0.0071)
    for site in _sites('unseen', 30):
        for scanner in site.scanners.values():
            protocol = scanner.protocol
            sidecar = protocol.sidecar()
            if protocol.family == 'siemens-mprage':
                assert sidecar['RepetitionTime'] == pytest.approx(protocol.repetition_time / 1e3)
            else:
                assert sidecar['RepetitionTime'] == pytest.approx(protocol.echo_spacing / 1e3)
                assert 'RepetitionTimeExcitation' not in sidecar
            assert sidecar['Manufacturer'] in ('Siemens', 'Philips', 'GE')


def test_sites_and_shared_pose_in_a_dataset(tmp_path):
    root = write_phantom_dataset(
        tmp_path / 'ds',
        n_subjects=3,
        seed=2,
        size='tiny',
        scanners='core',
        subjects_per_site=2,
        same_pose=True,
    )
    rows = [r.split('\t') for r in (root / 'participants.tsv').read_text().split('\n') if r]
    assert rows[0][-1] == 'site' and [r[-1] for r in rows[1:]] == ['0', '0', '1']

    def truth(sub, ses):
        path = root / f'derivatives/phantom/sub-{sub}/ses-{ses}/anat/sub-{sub}_ses-{ses}_dseg.json'
        return json.loads(path.read_text())['PhantomTruth']

    for sub in ('01', '02', '03'):
        assert (
            truth(sub, '1p5T')['pose_rotation_xyz_deg']
            == truth(sub, '3T')['pose_rotation_xyz_deg']
        )
    assert truth('01', '3T')['scanner'] == truth('02', '3T')['scanner']
    assert truth('01', '3T')['scanner'] != truth('03', '3T')['scanner']
    assert truth('01', '3T')['distribution'] == 'core'
