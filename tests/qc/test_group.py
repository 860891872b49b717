"""Group level: errors, sidecar inheritance, and participant -> group on a tiny phantom."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bidsfactory import SIDECAR_15, make_bids
from scipy import ndimage

from harmonize_bids.cli.run import main


def _run(*argv) -> int:
    return main([str(arg) for arg in argv])


def _read_tsv(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("harmonize-bids: error:")]


# ------------------------------------------------------------------------ fast tests


def test_group_without_participant_outputs_is_exit_66(tmp_path, capsys):
    bids = make_bids(tmp_path / "bids", {"sub-01/anat/sub-01_T1w.nii.gz": SIDECAR_15})
    out = tmp_path / "out"
    assert _run(bids, out, "group") == 66
    (err,) = _error_lines(capsys)
    assert "Run the participant level" in err
    assert not out.exists()  # nothing written

    anat = out / "sub-01/anat"
    anat.mkdir(parents=True)
    for name in ("desc-preproc_T1w", "desc-brain_mask", "desc-harmonized_T1w"):
        nib.save(
            nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)),
            anat / f"sub-01_{name}.nii.gz",
        )
    assert _run(bids, out, "group", "--participant-label", "02") == 66
    (err,) = _error_lines(capsys)
    assert "--participant-label 02" in err and "sub-01" in err
    assert _run(bids, out, "group", "--session-label", "x") == 66
    assert "Traceback" not in capsys.readouterr().err
    assert not (out / "group_T1w.tsv").exists()


# ------------------------------------------------------------------- end to end (tiny)


def _small_head(field: float, *, shift: int, seed: int) -> np.ndarray:
    """A skull-stripped 1 mm 'brain' (ellipsoids: WM core, GM shell, CSF ventricles) in
    the contrast of a field strength; sessions of a subject differ by a small shift."""
    rng = np.random.default_rng(seed)
    shape = (34, 38, 32)
    grid = np.indices(shape).astype(float)
    centre = np.array([17.0 + shift, 19.0, 16.0])[:, None, None, None]

    def inside(radii):
        return (((grid - centre) / np.array(radii)[:, None, None, None]) ** 2).sum(0) <= 1

    csf, gm, wm = (180.0, 560.0, 800.0) if field == 1.5 else (120.0, 430.0, 900.0)
    data = np.zeros(shape)
    data[inside((14, 16, 13))] = gm
    data[inside((10, 12, 9))] = wm
    data[inside((3, 6, 3))] = csf
    brain = data > 0
    data[brain] += rng.normal(0, 20, brain.sum())
    return np.clip(data, 1, None) * brain


@pytest.fixture(scope="module")
def group_run(tmp_path_factory):
    """Two travelling subjects (1.5 T and 3 T sessions) through the participant level,
    then the group level with a BIDS_DIR that holds only the JSON sidecars."""
    from bidsfactory import SIDECAR_3, linear_plugin, tiny_model, write_image

    root = tmp_path_factory.mktemp("group")
    bids = make_bids(root / "bids", {})
    for number, subject in enumerate(("01", "02")):
        for session, field, sidecar in (("1p5T", 1.5, SIDECAR_15), ("3T", 3.0, SIDECAR_3)):
            write_image(
                bids / f"sub-{subject}/ses-{session}/anat/sub-{subject}_ses-{session}_T1w.nii.gz",
                sidecar=sidecar,
                data=_small_head(
                    field, shift=number + (field == 3.0), seed=number * 2 + (field == 3.0)
                ).astype(np.int16),
            )
    (bids / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\n")
    model = tiny_model(root)
    plugin = linear_plugin(root)
    out = root / "out"
    assert (
        _run(
            bids,
            out,
            "participant",
            "-w",
            root / "work",
            "--model",
            model,
            "--sloppy",
            "--skull-strip",
            "none",
            "--use-plugin",
            plugin,
        )
        == 0
    )
    sidecars_only = root / "bids_sidecars"
    shutil.copytree(bids, sidecars_only, ignore=shutil.ignore_patterns("*.nii.gz", "*.nii"))
    assert not list(sidecars_only.rglob("*.nii*"))
    assert _run(sidecars_only, out, "group", "--sloppy", "-w", root / "work", "--nprocs", "2") == 0
    return {"bids": bids, "out": out, "model": model, "work": root / "work"}


@pytest.mark.slow
def test_group_tables(group_run):
    out = group_run["out"]
    rows = _read_tsv(out / "group_T1w.tsv")
    assert [(r["participant_id"], r["session_id"]) for r in rows] == [
        ("01", "1p5T"),
        ("01", "3T"),
        ("02", "1p5T"),
        ("02", "3T"),
    ]
    sha = json.loads((group_run["model"] / "model.json").read_text())["weights_sha256"]
    for row in rows:
        applied = row["session_id"] == "1p5T"
        assert row["source_field"] == ("1.5" if applied else "3")
        assert row["target_field"] == "3"
        assert row["model_applied"] == ("true" if applied else "false")
        assert row["model_sha256"] == (sha if applied else "n/a")
        if applied:
            assert row["sampler"] != "n/a" and int(row["steps"]) > 0 and row["seed"] == "0"
        volumes = [
            float(row[f"{t}_volume_{k}_mm3"])
            for t in ("csf", "gm", "wm")
            for k in ("preproc", "harmonized")
        ]
        assert all(v > 0 for v in volumes)
        assert float(row["ahd_preproc"]) > 0 and float(row["ahd_harmonized"]) > 0
        assert 0.2 < float(row["through_plane_preproc"]) < 5
        # 4 sessions: too few for robust z flags; only the sidecar's DomainWarnings flag
        sidecar = next(
            out.glob(
                f"sub-{row['participant_id']}/ses-{row['session_id']}/anat/"
                "*_desc-harmonized_T1w.json"
            )
        )
        warnings = json.loads(sidecar.read_text())["Harmonization"].get("DomainWarnings", [])
        assert row["flagged"] == ("true" if warnings else "false")
        if warnings:
            assert row["flag_reason"] == "; ".join(
                f"outside the model's domain: {w}" for w in warnings
            )
    at_target = [r for r in rows if r["session_id"] == "3T"]
    for row in at_target:  # preprocessed only: before and after are the same image
        assert row["ahd_preproc"] == row["ahd_harmonized"]
        assert row["gm_volume_preproc_mm3"] == row["gm_volume_harmonized_mm3"]
    columns = json.loads((out / "group_T1w.json").read_text())
    assert set(columns) == set(rows[0])
    paired = _read_tsv(out / "group_T1w_paired.tsv")
    assert [(r["participant_id"], r["method"]) for r in paired] == [
        ("01", "Original"),
        ("01", "Harmonized"),
        ("02", "Original"),
        ("02", "Harmonized"),
    ]
    html = (out / "group_T1w.html").read_text()
    assert 'href="sub-01.html#sub-01_ses-1p5T"' in html
    for figure in ("histograms.png", "tissue_volumes.png", "sub-02_ses-3T_thumbnail.png"):
        assert f"group/figures/{figure}" in html and (out / "group/figures" / figure).is_file()
    validator = Path(sys.executable).with_name("bids-validator-deno")
    result = subprocess.run([validator, str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]


def _hd95(a: np.ndarray, b: np.ndarray, spacing) -> float:
    """Symmetric 95th-percentile surface distance, written out with scipy."""

    def edges(x):
        return x ^ ndimage.binary_erosion(x)

    def directed(x, y):
        distance = ndimage.distance_transform_edt(~edges(y), sampling=spacing)
        return np.percentile(distance[edges(x)], 95)

    return max(directed(a, b), directed(b, a))


@pytest.mark.slow
def test_paired_original_row_matches_an_independent_computation(group_run):
    from harmonize_bids.qc.metrics import segment_tissues
    from harmonize_bids.qc.paired import registered_target_path

    out = group_run["out"]
    anat = out / "sub-02/ses-{}/anat/sub-02_ses-{}_desc-{}.nii.gz"

    def load(session, desc):
        img = nib.load(str(anat).format(session, session, desc))
        return np.asanyarray(img.dataobj, dtype=np.float32), img.affine

    source, source_affine = load("1p5T", "preproc_T1w")
    # the participant level's voxel size (1 mm, coarser with --sloppy)
    spacing = nib.load(str(anat).format("1p5T", "1p5T", "preproc_T1w")).header.get_zooms()[:3]
    voxel = float(np.prod(spacing))
    mask = load("1p5T", "brain_mask")[0] > 0
    # The registration the group level used (kept in the work dir; ANTs' multi-threaded
    # metric is not bitwise reproducible across runs); the metrics are recomputed here.
    registered_img = nib.load(
        registered_target_path(group_run["work"], "sub-02_ses-1p5T", "sub-02_ses-3T", sloppy=True)
    )
    assert np.allclose(registered_img.affine, source_affine)
    registered = np.asanyarray(registered_img.dataobj, dtype=np.float32)
    assert registered.shape == source.shape and registered[mask].std() > 0
    a, b = source[mask].astype(np.float64), registered[mask].astype(np.float64)
    expected = {"mse": np.mean((a - b) ** 2)}
    h1 = np.histogram(np.clip(a, 0, 1), bins=255, range=(0, 1))[0]
    h2 = np.histogram(np.clip(b, 0, 1), bins=255, range=(0, 1))[0]
    expected["ahd"] = np.abs(h1 - h2).sum()
    labels_source = segment_tissues(source, mask, spacing=spacing)
    labels_target = segment_tissues(registered, mask, spacing=spacing)
    for value, tissue in enumerate(("csf", "gm", "wm"), start=1):
        x, y = labels_source == value, labels_target == value
        expected[f"{tissue}_volume_difference_mm3"] = abs(int(x.sum()) - int(y.sum())) * voxel
        expected[f"dice_{tissue}"] = 2 * (x & y).sum() / (x.sum() + y.sum())
        expected[f"hd95_{tissue}_mm"] = _hd95(x, y, spacing)
    row = next(
        r
        for r in _read_tsv(out / "group_T1w_paired.tsv")
        if r["participant_id"] == "02" and r["method"] == "Original"
    )
    for key, value in expected.items():
        assert float(row[key]) == pytest.approx(value, rel=1e-6, abs=1e-9), key
    harmonized = next(
        r
        for r in _read_tsv(out / "group_T1w_paired.tsv")
        if r["participant_id"] == "02" and r["method"] == "Harmonized"
    )
    assert float(harmonized["mse"]) != float(row["mse"])


@pytest.mark.slow
def test_reports_render_in_chromium(group_run, browser, tmp_path):
    out = group_run["out"]
    for page, minimum in (("group_T1w.html", 2 + 4), ("sub-01.html", 3)):
        shot = tmp_path / page.replace(".html", ".png")
        result = browser.open(out / page, screenshot=shot)
        assert len(result.images) >= minimum, result.images
        broken = [image["src"] for image in result.images if image["naturalWidth"] <= 0]
        assert not broken, broken
        assert result.errors == [], result.errors
        assert shot.stat().st_size > 10_000
    assert browser.open(out / "group_T1w.html").title == "harmonize_bids: group report"


def test_browser_check_catches_a_missing_image(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head>'
        '<body><img src="nowhere.png"><script>console.error("boom")</script>'
        "</body></html>"
    )
    result = browser.open(page)
    assert result.images[0]["naturalWidth"] == 0
    assert any("boom" in error for error in result.errors)


def test_domain_warnings_flag_an_image_whatever_the_count():
    from harmonize_bids.qc.tables import flag_outliers

    rows = []
    for warnings in ([], ["the input's GM/WM contrast 0.91 lies outside the training range"]):
        rows.append(
            {
                "reasons": [],
                "domain_warnings": warnings,
                "brain_volume_mm3": 1e6,
                **{f"{t}_volume_harmonized_mm3": 3e5 for t in ("csf", "gm", "wm")},
            }
        )
    flag_outliers(rows)
    assert [row["flagged"] for row in rows] == [False, True]
    assert rows[1]["flag_reason"].startswith("outside the model's domain: the input's GM/WM")
