"""Participant level end to end, on tiny datasets with a tiny random-weight test model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bidsfactory import SIDECAR_15, linear_plugin, make_bids, tiny_model, unreadable_file_prefix

from harmonize_bids.choices import DEFAULT_EVEN_OUT_SLICES, DEFAULT_SLICE_PLANES
from harmonize_bids.cli.run import main

pytestmark = pytest.mark.slow
DERIVATIVES = ("desc-preproc_T1w", "desc-brain_mask", "desc-harmonized_T1w")


@pytest.fixture(scope="module")
def test_model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(name="linear_plugin")
def linear_plugin_file(tmp_path) -> Path:
    return linear_plugin(tmp_path)


def _outputs(out: Path, stem: str) -> list[Path]:
    folder = out / stem.split("_")[0] / stem.split("_")[1] / "anat"
    return [folder / f"{stem}_{name}.nii.gz" for name in DERIVATIVES]


def _run(*argv) -> int:
    return main([str(arg) for arg in argv])


def test_end_to_end_multiproc(travelling_dataset, test_model, tmp_path, capfd):
    out = tmp_path / "out"
    code = _run(
        travelling_dataset,
        out,
        "participant",
        "-w",
        tmp_path / "work",
        "--model",
        test_model,
        "--skull-strip",
        "none",
        "--sloppy",
        "--nprocs",
        "2",
    )
    printed = "".join(capfd.readouterr())
    assert code == 0, printed
    assert "[Node]" not in printed  # the workers log as the command line does
    assert "[4/4] " in printed and "all done)" in printed  # per-image progress
    for subject in ("01", "02"):
        for session in ("A", "B"):
            for path in _outputs(out, f"sub-{subject}_ses-{session}"):
                assert path.is_file(), path
                assert path.with_name(path.name.replace(".nii.gz", ".json")).is_file()
    harmonized = out / "sub-01/ses-A/anat/sub-01_ses-A_desc-harmonized_T1w.json"
    sidecar = json.loads(harmonized.read_text())
    model_meta = json.loads((test_model / "model.json").read_text())
    record = sidecar["Harmonization"]
    assert record["ModelApplied"] is True
    assert record["ModelSHA256"] == model_meta["weights_sha256"]
    assert (record["SourceFieldStrength"], record["TargetFieldStrength"]) == (1.5, 3.0)
    assert {"Sampler", "Steps", "EnsembleSize", "Seed", "Device"} <= set(record)
    assert record["SlicePlanes"] == list(DEFAULT_SLICE_PLANES)
    assert record["SlicesEvenedOut"] is DEFAULT_EVEN_OUT_SLICES
    assert record["WhiteMatterLevel"] == 0.81
    schedule = json.loads((test_model / "scheduler_config.json").read_text())
    assert record["NoiseSchedule"] == schedule
    assert record["SoftwareVersions"]["harmonize_bids"]
    assert sidecar["SkullStripped"] is True
    assert sidecar["Sources"] == [
        "bids::sub-01/ses-A/anat/sub-01_ses-A_desc-preproc_T1w.nii.gz",
        "bids::sub-01/ses-A/anat/sub-01_ses-A_desc-brain_mask.nii.gz",
    ]
    at_target = json.loads(
        (out / "sub-01/ses-B/anat/sub-01_ses-B_desc-harmonized_T1w.json").read_text()
    )
    assert at_target["Harmonization"]["ModelApplied"] is False
    preproc = json.loads(
        (out / "sub-01/ses-A/anat/sub-01_ses-A_desc-preproc_T1w.json").read_text()
    )
    assert preproc["Sources"] == ["bids:raw:sub-01/ses-A/anat/sub-01_ses-A_T1w.nii.gz"]
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "harmonize_bids"
    assert "raw" in description["DatasetLinks"]
    assert "desc-harmonized" in (out / "descriptions.tsv").read_text()
    assert "Durrer" in (out / "logs" / "CITATION.md").read_text()
    html = (out / "sub-01.html").read_text()
    for figure in (
        "sub-01_ses-A_mask.png",
        "sub-01_ses-A_beforeafter.png",
        "sub-01_ses-A_histogram.png",
    ):
        assert f"sub-01/figures/{figure}" in html and (out / "sub-01/figures" / figure).is_file()
    assert not (out / ".staging").exists()
    validator = Path(sys.executable).with_name("bids-validator-deno")
    result = subprocess.run([validator, str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]


def test_sloppy_end_to_end_on_tiny_phantom(test_model, tmp_path, linear_plugin):
    from nibabel.processing import resample_from_to

    from harmonize_bids.phantom import write_phantom_dataset

    bids = write_phantom_dataset(
        tmp_path / "phantom", n_subjects=1, seed=5, size="tiny", lesion_fraction=1.0
    )
    out = tmp_path / "out"
    code = _run(
        bids,
        out,
        "participant",
        "-w",
        tmp_path / "work",
        "--model",
        test_model,
        "--sloppy",
        "--use-plugin",
        linear_plugin,
        "--slice-planes",
        "axial",
        "sagittal",
        "--even-out-slices",
    )  # default skull stripping: deepbet
    assert code == 0
    for session in ("1p5T", "3T"):
        for path in _outputs(out, f"sub-01_ses-{session}"):
            assert path.is_file(), path
    harmonized = _outputs(out, "sub-01_ses-1p5T")[2]
    sidecar = json.loads(
        harmonized.with_name(harmonized.name.replace(".nii.gz", ".json")).read_text()
    )
    assert sidecar["Harmonization"]["SlicePlanes"] == ["sagittal", "axial"]  # RAS axis order
    assert sidecar["Harmonization"]["SlicesEvenedOut"] is True
    # The brain mask, brought back to the raw grid, matches the phantom's ground truth.
    raw = nib.load(bids / "sub-01/ses-1p5T/anat/sub-01_ses-1p5T_T1w.nii.gz")
    ours = resample_from_to(nib.load(_outputs(out, "sub-01_ses-1p5T")[1]), raw, order=0)
    truth = (
        nib.load(
            bids / "derivatives/phantom/sub-01/ses-1p5T/anat/"
            "sub-01_ses-1p5T_desc-brain_mask.nii.gz"
        ).get_fdata()
        > 0
    )
    mask = ours.get_fdata() > 0
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.85
    validator = Path(sys.executable).with_name("bids-validator-deno")
    result = subprocess.run([validator, str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]


def test_outputs_overlay_the_raw_image(
    travelling_dataset, test_model, tmp_path, linear_plugin, monkeypatch
):
    # A non-RAS, anisotropic raw image: outputs must sit on the same world coordinates.
    # The model is given as a relative path, as users type it.
    monkeypatch.chdir(test_model.parent)
    raw = travelling_dataset / "sub-01/ses-A/anat/sub-01_ses-A_T1w.nii.gz"
    data = np.zeros((20, 16, 12), np.int16)
    data[6:14, 4:12, 3:9] = 900
    # Few voxels, but a field of view that can hold a brain (60 x 56 x 54 mm).
    affine = np.array([[0, 0, 4.5, -10], [-3.0, 0, 0, 20], [0, 3.5, 0, 5], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), raw)
    out = tmp_path / "out"
    code = _run(
        travelling_dataset,
        out,
        "participant",
        "-w",
        tmp_path / "work",
        "--model",
        test_model.name,
        "--skull-strip",
        "none",
        "--participant-label",
        "01",
        "--session-label",
        "A",
        "--use-plugin",
        linear_plugin,
    )
    assert code == 0
    mask_img = nib.load(out / "sub-01/ses-A/anat/sub-01_ses-A_desc-brain_mask.nii.gz")
    assert np.allclose(mask_img.header.get_zooms(), 1.0)

    def world_centroid(image, selection):
        voxels = np.argwhere(selection).mean(axis=0)
        return image.affine[:3, :3] @ voxels + image.affine[:3, 3]

    offset = world_centroid(mask_img, mask_img.get_fdata() > 0) - world_centroid(
        nib.load(raw), data > 0
    )
    assert np.linalg.norm(offset) < 1.0, offset


def test_resume_skips_finished_work(travelling_dataset, test_model, tmp_path, linear_plugin):
    argv = [
        travelling_dataset,
        tmp_path / "out",
        "participant",
        "-w",
        tmp_path / "work",
        "--model",
        test_model,
        "--skull-strip",
        "none",
        "--sloppy",
        "--participant-label",
        "01",
        "--use-plugin",
        linear_plugin,
    ]
    assert _run(*argv) == 0
    harmonized = next((tmp_path / "work").rglob("harmonize/harmonized.nii.gz"))
    first = harmonized.stat().st_mtime_ns
    final = tmp_path / "out/sub-01/ses-A/anat/sub-01_ses-A_desc-harmonized_T1w.nii.gz"
    final.unlink()
    assert _run(*argv) == 0
    assert harmonized.stat().st_mtime_ns == first  # the cached node was not rerun
    assert final.is_file()  # sinks always run: the missing output is restored


def test_bad_inputs_fail_alone(tmp_path, test_model, linear_plugin, capsys):
    root = make_bids(
        tmp_path / "bids", {f"sub-0{i}/anat/sub-0{i}_T1w.nii.gz": SIDECAR_15 for i in range(1, 5)}
    )
    (root / "sub-05/anat").mkdir(parents=True)
    shutil.copy(root / "sub-01/anat/sub-01_T1w.nii.gz", root / "sub-05/anat/sub-05_T1w.nii.gz")
    with (root / "participants.tsv").open("a") as table:
        table.write("sub-05\n")
    (root / "sub-02/anat/sub-02_T1w.nii.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 100)
    head_sized = np.diag([8.0, 8.0, 8.0, 1.0])  # few voxels, a field of view that holds a brain
    nib.save(
        nib.Nifti1Image(np.ones((12, 14, 10, 3), np.float32), head_sized),
        root / "sub-03/anat/sub-03_T1w.nii.gz",
    )
    nib.save(
        nib.Nifti1Image(np.zeros((12, 14, 10), np.int16), head_sized),
        root / "sub-04/anat/sub-04_T1w.nii.gz",
    )
    out = tmp_path / "out"
    argv = [
        root,
        out,
        "participant",
        "-w",
        tmp_path / "work",
        "--model",
        test_model,
        "--skull-strip",
        "none",
        "--sloppy",
        "--use-plugin",
        linear_plugin,
    ]

    # With validation: corrupt and 4-D files are skipped (16), the missing sidecar is
    # skipped (66), the all-zero image fails in processing (1): exit 1, sub-01 complete.
    code = _run(*argv)
    err = capsys.readouterr().err
    assert code == 1
    for name in DERIVATIVES:
        assert (out / f"sub-01/anat/sub-01_{name}.nii.gz").is_file()
    for subject in ("02", "03", "04", "05"):
        assert not list(out.glob(f"sub-{subject}/**/*.nii.gz")), subject
    lines = err.splitlines()
    assert any("sub-02_T1w.nii.gz" in line and "NIFTI_HEADER_UNREADABLE" in line for line in lines)
    assert any("sub-03_T1w.nii.gz" in line and "TOO_MANY_DIMENSIONS" in line for line in lines)
    assert any("sub-05_T1w.nii.gz" in line and "--source-field" in line for line in lines)
    assert any(
        "FAILED sub-04/anat/sub-04_T1w.nii.gz" in line and "zero" in line.lower() for line in lines
    )
    assert "Traceback" not in err

    # Without validation, the corrupt and 4-D files fail in conform, each on its own.
    shutil.rmtree(out)
    code = _run(*argv, "--skip-bids-validation", "--participant-label", "01", "02", "03")
    err = capsys.readouterr().err
    assert code == 1
    assert any("FAILED sub-02/anat/sub-02_T1w.nii.gz" in line for line in err.splitlines())
    assert any(
        "FAILED sub-03/anat/sub-03_T1w.nii.gz" in line and "(12, 14, 10, 3)" in line
        for line in err.splitlines()
    )
    assert (out / "sub-01/anat/sub-01_desc-harmonized_T1w.nii.gz").is_file()
    progress = [
        line.split("] ", 1)[1].split(" (")[0] for line in err.splitlines() if "/3] " in line
    ]
    assert sorted(progress) == [
        "sub-01_T1w.nii.gz finished",
        "sub-02_T1w.nii.gz failed",
        "sub-03_T1w.nii.gz failed",
    ]


def test_missing_unreadable_and_cropped_images_are_skipped_alone(
    tmp_path, test_model, linear_plugin
):
    """A DataLad file not fetched (a broken symlink), a file this user cannot read and a
    16 mm crop: each skipped with one line, the good image finished, the README's codes."""
    root = make_bids(
        tmp_path / "bids", {f"sub-0{i}/anat/sub-0{i}_T1w.nii.gz": SIDECAR_15 for i in range(1, 5)}
    )
    broken = root / "sub-02/anat/sub-02_T1w.nii.gz"
    broken.unlink()
    broken.symlink_to("../../.git/annex/objects/Xk/MD5E-s1--0.nii.gz/MD5E-s1--0.nii.gz")
    (root / "sub-03/anat/sub-03_T1w.nii.gz").chmod(0)
    whole = nib.load(root / "sub-01/anat/sub-01_T1w.nii.gz")  # 2 mm voxels
    nib.save(whole.slicer[12:20, 12:20, 12:20], root / "sub-04/anat/sub-04_T1w.nii.gz")
    out = tmp_path / "out"
    command = [
        *unreadable_file_prefix(),
        str(Path(sys.executable).with_name("harmonize-bids")),
        str(root),
        str(out),
        "participant",
        "-w",
        str(tmp_path / "work"),
        "--model",
        str(test_model),
        "--skull-strip",
        "none",
        "--sloppy",
        "--use-plugin",
        str(linear_plugin),
    ]
    expected = {
        "sub-02": f"datalad get {broken}",
        "sub-03": "cannot be read (Permission denied)",
        "sub-04": "field of view, 16 x 16 x 16 mm, cannot hold a brain",
    }

    def run(*extra: str) -> tuple[int, list[str]]:
        result = subprocess.run([*command, *extra], capture_output=True, text=True, timeout=600)
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        return result.returncode, result.stderr.splitlines()

    # The crop is present and valid BIDS but cannot be processed: 1, before 66.
    code, lines = run()
    assert code == 1, "\n".join(lines[-30:])
    for subject, reason in expected.items():
        mentions = [line for line in lines if f"{subject}_T1w.nii.gz" in line]
        assert len(mentions) == 1 and "Skipped:" in mentions[0], (subject, mentions)
        assert reason in mentions[0], (subject, mentions)
    for name in DERIVATIVES:
        assert (out / f"sub-01/anat/sub-01_{name}.nii.gz").is_file(), name
    assert not list(out.glob("sub-0[234]/**/*.nii.gz"))

    # The missing and the unreadable file alone: 66, also without the BIDS validator.
    shutil.rmtree(out)
    code, lines = run("--skip-bids-validation", "--participant-label", "01", "02", "03")
    assert code == 66, "\n".join(lines[-30:])
    assert sum("Skipped:" in line for line in lines) == 2
    assert (out / "sub-01/anat/sub-01_desc-harmonized_T1w.nii.gz").is_file()


def test_two_jobs_into_one_output_dir(travelling_dataset, test_model, tmp_path, linear_plugin):
    out = tmp_path / "out"
    jobs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harmonize_bids.cli.run",
                str(travelling_dataset),
                str(out),
                "participant",
                "-w",
                str(tmp_path / f"work{label}"),
                "--model",
                str(test_model),
                "--skull-strip",
                "none",
                "--sloppy",
                "--participant-label",
                label,
                "--use-plugin",
                str(linear_plugin),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NIPYPE_NO_ET": "1"},
        )
        for label in ("01", "02")
    ]
    for job in jobs:
        _, err = job.communicate(timeout=600)
        assert job.returncode == 0, err[-2000:]
    for path in out.rglob("*.nii.gz"):
        assert nib.load(path).get_fdata().size > 0
    for path in out.rglob("*.json"):
        json.loads(path.read_text())
    assert len(list(out.rglob("*_desc-harmonized_T1w.nii.gz"))) == 4
    assert (
        json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    )


def test_runs_with_networking_off(travelling_dataset, test_model, tmp_path, linear_plugin):
    if (
        shutil.which("unshare") is None
        or subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0
    ):
        pytest.skip("unshare -rn is not permitted on this machine")
    result = subprocess.run(
        [
            "unshare",
            "-rn",
            sys.executable,
            "-m",
            "harmonize_bids.cli.run",
            str(travelling_dataset),
            str(tmp_path / "out"),
            "participant",
            "-w",
            str(tmp_path / "work"),
            "--model",
            str(test_model),
            "--sloppy",
            "--participant-label",
            "01",
            "--use-plugin",
            str(linear_plugin),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "NIPYPE_NO_ET": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out/sub-01/ses-A/anat/sub-01_ses-A_desc-harmonized_T1w.nii.gz").is_file()
