"""The 3 T phantom shows the wider GM/WM separation of the paper's Appendix E histograms."""

from __future__ import annotations

from harmonize_bids.phantom.contrast import gm_wm_separation, tissue_stats


def test_3t_wider_gm_wm_separation(tiny_phantom):
    stats = {b0: tissue_stats(tiny_phantom, '01', ses) for b0, ses in ((1.5, '1p5T'),
                                                                       (3.0, '3T'))}
    for s in stats.values():
        assert s['CSF'][0] < s['GM'][0] < s['WM'][0]
    sep = {b0: gm_wm_separation(s) for b0, s in stats.items()}
    # Peaks further apart on the [0, 1] scale, and better separated relative to their width.
    assert sep[3.0][0] > sep[1.5][0], sep
    assert sep[3.0][1] > sep[1.5][1], sep
