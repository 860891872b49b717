"""benchmarks/quality.py end to end on a tiny phantom with sites (plumbing, not quality)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from bidsfactory import reference_model

from harmonize_bids.cli.train import main as train_main
from harmonize_bids.phantom import write_phantom_dataset

pytestmark = pytest.mark.slow
BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _quality():
    spec = importlib.util.spec_from_file_location("quality_benchmark", BENCHMARKS / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lesion_contrast_compares_lesions_with_white_matter():
    quality = _quality()
    truth = np.zeros((10, 10, 10), np.uint8)
    truth[:5] = 3
    truth[5:] = 4
    image = np.where(truth == 4, 0.6, 0.8)
    assert quality.lesion_contrast(image, truth) == pytest.approx(0.25)
    truth[5:] = 0
    assert np.isnan(quality.lesion_contrast(image, truth))


def test_site_deviation_error_compares_each_subjects_gap_to_its_site_mates():
    quality = _quality()

    def row(site, out, target):
        return {
            "site": site,
            "volumes": {"CSF": out, "GM": 2 * out, "WM": 0.0},
            "target_volumes": {"CSF": target, "GM": target, "WM": 0.0},
        }

    # site A: the outputs keep the targets' 10 mm^3 gap for CSF; site B: every output
    # alike, so each subject misses its 4 mm^3 deviation
    rows = [
        row("A", 100, 50),
        row("A", 110, 60),
        row("B", 70, 68),
        row("B", 70, 76),
        row("C", 1, 9),
    ]
    errors = quality.site_deviation_error(rows)
    assert errors["CSF"] == pytest.approx((0 + 0 + 4 + 4) / 4)
    assert errors["GM"] == pytest.approx((5 + 5 + 4 + 4) / 4)
    assert errors["WM"] == 0
    # rows cached before volumes were kept, or no site with two subjects: no figure
    assert quality.site_deviation_error([{"site": "A", "subject": "01"}]) is None
    assert quality.site_deviation_error([row("A", 1, 1), row("B", 1, 1)]) is None


def test_mean_summary_averages_every_number_of_two_seeds():
    quality = _quality()
    seed0 = {"mse": 1.0, "volume_diff": {"GM": 2.0}, "anisotropy_ratios": [1.0, 3.0]}
    seed1 = {"mse": 3.0, "volume_diff": {"GM": 4.0}, "anisotropy_ratios": [2.0, 5.0]}
    assert quality.mean_summary(seed0, seed1) == {
        "mse": 2.0,
        "volume_diff": {"GM": 3.0},
        "anisotropy_ratios": [1.5, 4.0],
    }
    with pytest.raises(ValueError):
        quality.mean_summary({"a": [1.0]}, {"a": [1.0, 2.0]})


def test_within_seed_spread_allows_a_rise_up_to_the_seeds_own_difference():
    quality = _quality()
    assert quality.within_seed_spread(1.1, 1.0, 1.2)  # +0.0 over the mean
    assert quality.within_seed_spread(1.3, 1.0, 1.2)  # +0.2, the spread
    assert not quality.within_seed_spread(1.31, 1.0, 1.2)
    assert not quality.within_seed_spread(1.01, 1.0, 1.0)  # no spread: no rise allowed


def test_a_cache_folder_refuses_a_second_phantom(tmp_path):
    quality = _quality()
    cache = tmp_path / "cache" / "unseen" / "1.5T-to-3T"
    quality.claim_cache(cache, tmp_path / "phantom_a")
    quality.claim_cache(cache, tmp_path / "phantom_a")  # the same phantom again
    with pytest.raises(SystemExit, match="phantom_a, not .*phantom_b"):
        quality.claim_cache(cache, tmp_path / "phantom_b")


def test_quality_tables_on_a_tiny_phantom_with_sites(tmp_path, capsys):
    quality = _quality()
    bids = write_phantom_dataset(
        tmp_path / "unseen_set",
        n_subjects=3,
        seed=12,
        size="tiny",
        lesion_fraction=1.0,
        scanners="unseen",
        subjects_per_site=2,
    )
    work = tmp_path / "work"
    assert (
        train_main(
            [
                str(bids),
                str(tmp_path / "unused"),
                "--source-field",
                "1.5",
                "--target-field",
                "3",
                "-w",
                str(work),
                "--sloppy",
                "--skull-strip",
                "none",
                "--prepare-only",
                "--skip-bids-validation",
            ]
        )
        == 0
    )
    model = reference_model(tmp_path)
    model_json = (model / "model.json").read_bytes()
    report, record = tmp_path / "quality.md", tmp_path / "quality.json"
    common = [
        "--set",
        "unseen",
        str(bids),
        str(work),
        "--directions",
        "1.5T-to-3T",
        "--model-1p5T-to-3T",
        str(model),
        "--threads",
        "1",
        "--cache",
        str(tmp_path / "cache"),
    ]
    assert (
        quality.main(
            [*common, "--steps", "2", "1", "--output", str(report), "--json", str(record)]
        )
        == 0
    )
    summary = json.loads(record.read_text())["unseen 1.5T-to-3T"]
    # sub-03 is alone at its site: it has no site mates' scans and is left out
    assert summary["subjects"] == 2 and summary["sites"] == 2
    assert "no other subject at its site" in capsys.readouterr().err
    methods = summary["methods"]
    assert set(methods) == {
        "Original",
        "Histogram matching",
        "Nyul",
        "Ours (dpm, 2 steps)",
        "Ours (dpm, 1 step)",
    }
    assert methods["Original"]["mse"] > 0 and methods["Original"]["seconds"] < 1
    assert summary["model"]["timesteps"]["Ours (dpm, 2 steps)"] == [999, 50]
    assert [c["check"] for c in summary["acceptance"]][0] == "MSE <= histogram matching's"
    assert "detail energy" in report.read_text()
    assert "within-site volume deviation error" in report.read_text()
    assert set(methods["Original"]["site_deviation_error"]) == {"CSF", "GM", "WM"}
    # the benchmark writes its own records only: the model folder is left as it was
    assert (model / "model.json").read_bytes() == model_json
    # a rerun is served from the cache and gives the same figures
    assert quality.main([*common, "--steps", "2", "--json", str(record)]) == 0
    again = json.loads(record.read_text())["unseen 1.5T-to-3T"]["methods"]
    assert again["Ours (dpm, 2 steps)"]["mse"] == methods["Ours (dpm, 2 steps)"]["mse"]
    # with the site mates' scanner map as the reference: its own row and cache entries
    site_map = [*common, "--steps", "2", "--reference", "site-map", "--json", str(record)]
    assert quality.main(site_map) == 0
    mapped = json.loads(record.read_text())["unseen 1.5T-to-3T"]
    name = "Ours (dpm, 2 steps, site-mapped reference)"
    assert mapped["default"] == name and name in mapped["methods"]
    assert mapped["methods"][name]["mse"] != methods["Ours (dpm, 2 steps)"]["mse"]


def test_a_calibrated_models_outputs_are_cached_apart_from_the_plain_ones():
    quality = _quality()
    name = "Ours (dpm, 2 steps)"
    plain = {"weights_sha256": "a" * 64, "timesteps": {name: [999, 500]}}
    calibrated = {**plain, "calibration_sha256": "b" * 64}
    assert quality.cache_stem(name, plain) == quality.cache_stem(
        name, {**plain, "calibration_sha256": None}
    )
    assert quality.cache_stem(name, calibrated) != quality.cache_stem(name, plain)


def test_site_mapped_reference_keeps_the_subjects_own_tissue_proportions():
    from harmonize_bids.image.reference import brain_quantiles, match_to_reference

    quality = _quality()
    rng = np.random.default_rng(0)

    def scan(dark_fraction, dark, bright):
        labels = rng.random((20, 20, 20)) < dark_fraction
        image = np.where(labels, dark, bright) + rng.normal(0, 0.01, labels.shape)
        return image.astype(np.float32), np.ones(labels.shape, bool), labels

    # the mates: half dark tissue, 0.3 / 0.6 at the source field, 0.2 / 0.8 at the target
    mates_source = [scan(0.5, 0.3, 0.6)[:2] for _ in range(2)]
    mates_target = [scan(0.5, 0.2, 0.8)[:2] for _ in range(2)]
    quantiles = [brain_quantiles(image, mask) for image, mask in mates_source]
    peers = quality.SitePeers(mates_target, ["sub-02", "sub-03"], 3.0, quantiles)
    source, mask, dark = scan(0.8, 0.3, 0.6)  # this subject: 80 % dark tissue
    reference = peers.site_mapped_reference(source, mask)
    assert reference.field_strength == 3.0
    mapped = match_to_reference(source, mask, reference.quantiles)
    assert np.mean(np.abs(mapped[dark] - 0.2) < 0.05) > 0.95
    assert np.mean(np.abs(mapped[~dark] - 0.8) < 0.05) > 0.95
    # the pooled mates' reference carries their 50 % into this subject's dark tissue
    pooled = match_to_reference(source, mask, peers.reference.quantiles)
    assert np.mean(pooled[dark] > 0.5) > 0.3


def test_the_scanner_map_row_follows_the_apps_rule(tmp_path):
    quality = _quality()
    up, down = quality.DIRECTIONS["1.5T-to-3T"], quality.DIRECTIONS["3T-to-1.5T"]
    site_of = {f"sub-{i:02d}": str(i // 6) for i in range(12)}
    for subject in site_of:
        folder = tmp_path / "pairs" / subject
        folder.mkdir(parents=True)
        for direction in (up, down):
            (folder / f"pair_{direction.slug}.json").write_text("{}")

    def applies(mode, direction, site_of=site_of, calibrated=False):
        return quality.scanner_map_applies(mode, direction, tmp_path, site_of, calibrated)

    assert applies("auto", up)  # 5 mates at each site, towards 3 T
    assert not applies("auto", down)  # not offered towards 1.5 T
    assert applies("on", down) and not applies("off", up)
    assert not applies("auto", up, calibrated=True)  # the model's own calibration rules
    assert not applies("auto", up, {s: str(int(s[-2:]) // 3) for s in site_of})  # 2 mates
    name = quality.ours_name(2, "dpm", {"slice_planes": ("sagittal",), "even_out_slices": False})
    assert name == "Ours (dpm, 2 steps)"
    mapped = quality.ours_name(
        2, "dpm", {"slice_planes": ("sagittal",), "even_out_slices": False, "scanner_map": True}
    )
    assert mapped == "Ours (dpm, 2 steps, scanner map)"


def test_site_peers_fit_the_apps_scanner_map_from_enough_mates_only():
    from harmonize_bids.choices import SCANNER_MAP_SUBJECTS_MAX, SCANNER_MAP_SUBJECTS_MIN
    from harmonize_bids.image.reference import brain_quantiles

    quality = _quality()
    rng = np.random.default_rng(1)
    mask = np.ones((8, 8, 8), bool)

    def scan(level):
        return (level + rng.normal(0, 0.01, mask.shape)).astype(np.float32)

    def peers(n):
        names = [f"sub-{k:02d}" for k in range(n)]
        sources = [brain_quantiles(scan(0.05 * k), mask) for k in range(n)]
        targets = [(scan(0.06 * k), mask) for k in range(n)]
        return quality.SitePeers(targets, names, 3.0, sources)

    assert peers(SCANNER_MAP_SUBJECTS_MIN - 1).app_scanner_map is None
    assert peers(SCANNER_MAP_SUBJECTS_MIN).app_scanner_map is not None
    many = peers(SCANNER_MAP_SUBJECTS_MAX + 4)
    chosen = many.app_scanner_map.target.sources
    assert len(chosen) == SCANNER_MAP_SUBJECTS_MAX and chosen[0] == "sub-00"
    assert chosen[-1] == f"sub-{SCANNER_MAP_SUBJECTS_MAX + 3:02d}"
    assert many.scanner_map.target.sources == [f"sub-{k:02d}" for k in range(12)]


def test_the_scanner_map_row_is_the_output_matched_through_the_mates_map(tmp_path):
    from harmonize_bids.choices import SCANNER_MAP_SUBJECTS_MIN
    from harmonize_bids.image.reference import brain_quantiles
    from harmonize_bids.model.folder import load_model_folder

    quality = _quality()
    model = load_model_folder(reference_model(tmp_path), source_field=1.5, target_field=3.0)
    rng = np.random.default_rng(2)
    mask = np.zeros((16, 24, 24), bool)
    mask[2:-2, 4:-4, 4:-4] = True

    def scan(gain):
        return np.where(mask, gain * rng.uniform(0.2, 1.0, mask.shape), 0).astype(np.float32)

    n = SCANNER_MAP_SUBJECTS_MIN
    names = [f"sub-{k:02d}" for k in range(n)]
    mates = [(scan(0.9), mask) for _ in names]
    sources = [brain_quantiles(scan(0.6), mask) for _ in names]
    peers = quality.SitePeers(mates, names, 3.0, sources)
    source = scan(0.6)
    options = {"slice_planes": ("sagittal",), "even_out_slices": False, "reference": "site-mates"}
    plain = quality.methods(model, peers, source, mask, [1], "dpm", options)
    mapped = quality.methods(
        model, peers, source, mask, [1], "dpm", {**options, "scanner_map": True}
    )
    output = plain["Ours (dpm, 1 step)"]()
    expected = peers.app_scanner_map.match(output, source, mask)
    np.testing.assert_allclose(mapped["Ours (dpm, 1 step, scanner map)"](), expected, atol=1e-6)
    assert not np.allclose(expected, output)
