"""Every documented exit code, one clear line, no traceback, nothing written."""

from __future__ import annotations

import json

import pytest
from bidsfactory import SIDECAR_3, make_bids

from harmonize_bids import participant
from harmonize_bids.cli.run import main


def _run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    return code, capsys.readouterr().err


def _assert_one_line_error(err: str, *fragments: str) -> None:
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_dry_run_succeeds_and_writes_nothing(travelling_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(capsys, travelling_dataset, out, "participant", "--dry-run")
    assert code == 0, err
    assert "sub-02/ses-B/anat/sub-02_ses-B_T1w.nii.gz" in err
    assert "harmonize 1.5T->3T" in err and "already at target" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--no-such-option"], "--no-such-option"),
        (["--steps", "0"], "--steps"),
        (["--sampler", "ddpm", "--steps", "20"], "--sampler ddpm"),
        (["--steps", "1001"], "--steps 1001"),
        (["--target-field", "7"], "--target-field"),
        (["--device", "gpu"], "--device"),
        (["--slice-planes", "oblique"], "--slice-planes"),
        (["--nprocs", "1", "--omp-nthreads", "2"], "--omp-nthreads"),
        (["--target-field", "1.5", "--scanner-map"], "--scanner-map"),
    ],
)
def test_usage_errors_64(travelling_dataset, tmp_path, capsys, extra, named):
    code, err = _run(capsys, travelling_dataset, tmp_path / "out", "participant", *extra)
    assert code == 64
    _assert_one_line_error(err, named)


def test_missing_analysis_level_64(travelling_dataset, tmp_path, capsys):
    code, err = _run(capsys, travelling_dataset, tmp_path / "out")
    assert code == 64


def test_bad_filter_and_plugin_files_64(travelling_dataset, tmp_path, capsys):
    bad_json = tmp_path / "filters.json"
    bad_json.write_text("{oops")
    code, err = _run(
        capsys, travelling_dataset, tmp_path / "out", "participant", "--bids-filter-file", bad_json
    )
    assert code == 64
    _assert_one_line_error(err, "filters.json")
    bad_yaml = tmp_path / "plugin.yml"
    bad_yaml.write_text("just a string")
    code, err = _run(
        capsys, travelling_dataset, tmp_path / "out", "participant", "--use-plugin", bad_yaml
    )
    assert code == 64
    _assert_one_line_error(err, "plugin.yml")


@pytest.mark.parametrize(
    ("plugin", "named"),
    [("SLURMGraph", "returns before its jobs finish"), ("Slurm", "nipype has no plugin 'Slurm'")],
)
def test_plugins_that_cannot_be_followed_64(travelling_dataset, tmp_path, capsys, plugin, named):
    """A graph plugin submits every job and returns at once: refused before any work."""
    plugin_file = tmp_path / "plugin.yml"
    plugin_file.write_text(f"plugin: {plugin}\nplugin_args: {{}}\n")
    code, err = _run(
        capsys, travelling_dataset, tmp_path / "out", "participant", "--use-plugin", plugin_file
    )
    assert code == 64
    _assert_one_line_error(err, named)
    assert not (tmp_path / "out").exists()


def test_invalid_bids_16(tmp_path, capsys):
    root = make_bids(tmp_path / "bids", {"sub-01/anat/sub-01_T1w.nii.gz": SIDECAR_3})
    (root / "sub-01/anat/sub-01_T1w.nii.gz").rename(root / "sub-01/anat/sub-01_T1W.nii.gz")
    code, err = _run(capsys, root, tmp_path / "out", "participant")
    assert code == 16
    _assert_one_line_error(err, "no T1w", "sub-01_T1W.nii.gz", "--skip-bids-validation")
    assert not (tmp_path / "out").exists()


def test_dataset_level_invalid_bids_16(tmp_path, capsys):
    root = make_bids(tmp_path / "bids", {"sub-01/anat/sub-01_T1w.nii.gz": SIDECAR_3})
    (root / "participants.tsv").write_text("participant_id\nsub-07\n")
    code, err = _run(capsys, root, tmp_path / "out", "participant")
    assert code == 16
    _assert_one_line_error(err, "not valid BIDS", "participants.tsv")


def test_invalid_image_is_skipped_others_go_on_16(travelling_dataset, tmp_path, capsys):
    broken = travelling_dataset / "sub-02/ses-B/anat/sub-02_ses-B_T1w.nii.gz"
    broken.write_bytes(b"\x1f\x8b" + b"not a NIfTI" * 50)
    code, err = _run(capsys, travelling_dataset, tmp_path / "out", "participant", "--dry-run")
    assert code == 16
    skipped = [line for line in err.splitlines() if "Skipped:" in line]
    assert len(skipped) == 1 and "sub-02_ses-B_T1w.nii.gz" in skipped[0]
    assert "NIFTI_HEADER_UNREADABLE" in skipped[0]
    assert "Plan: 3 T1w image(s)" in err and "Traceback" not in err


def test_skip_bids_validation(tmp_path, capsys):
    root = make_bids(tmp_path / "bids", {"sub-01/anat/sub-01_T1w.nii.gz": SIDECAR_3})
    (root / "sub-01/anat/notes.txt").write_text("a stray file the validator rejects")
    code, err = _run(capsys, root, tmp_path / "out", "participant", "--dry-run")
    assert code == 16
    assert "NOT_INCLUDED at sub-01/anat/notes.txt" in err
    code, err = _run(
        capsys, root, tmp_path / "out", "participant", "--dry-run", "--skip-bids-validation"
    )
    assert code == 0, err


@pytest.mark.parametrize(
    "selection",
    [
        ["--participant-label", "sub-99"],
        ["--session-label", "Z"],
    ],
)
def test_filters_match_nothing_18(travelling_dataset, tmp_path, capsys, selection):
    code, err = _run(capsys, travelling_dataset, tmp_path / "out", "participant", *selection)
    assert code == 18
    _assert_one_line_error(err, "--")
    assert not (tmp_path / "out").exists()


def test_filter_file_matches_nothing_18(travelling_dataset, tmp_path, capsys):
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps({"t1w": {"acquisition": "mp2rage"}}))
    code, err = _run(
        capsys, travelling_dataset, tmp_path / "out", "participant", "--bids-filter-file", filters
    )
    assert code == 18
    _assert_one_line_error(err, "acquisition=mp2rage", "--bids-filter-file")


def test_missing_inputs_66(tmp_path, capsys, travelling_dataset):
    code, err = _run(capsys, tmp_path / "nowhere", tmp_path / "out", "participant")
    assert code == 66
    _assert_one_line_error(err, "nowhere")

    only_t2w = make_bids(tmp_path / "t2w_only", {"sub-01/anat/sub-01_T2w.nii.gz": SIDECAR_3})
    code, err = _run(capsys, only_t2w, tmp_path / "out", "participant")
    assert code == 66
    _assert_one_line_error(err, "no T1w")

    for option in ("--model", "--bids-filter-file", "--use-plugin"):
        code, err = _run(
            capsys,
            travelling_dataset,
            tmp_path / "out",
            "participant",
            option,
            tmp_path / "absent",
        )
        assert code == 66, option
        _assert_one_line_error(err, option, "absent")


def test_unknown_field_strength_66(tmp_path, capsys):
    root = make_bids(tmp_path / "bids", {"sub-01/anat/sub-01_T1w.nii.gz": {}})
    code, err = _run(capsys, root, tmp_path / "out", "participant")
    assert code == 66
    _assert_one_line_error(err, "sub-01_T1w.nii.gz", "MagneticFieldStrength", "--source-field")
    code, err = _run(
        capsys, root, tmp_path / "out", "participant", "--source-field", "1.5", "--dry-run"
    )
    assert code == 0, err
    assert "1.5 T (--source-field)" in err


def test_output_not_creatable_73(travelling_dataset, tmp_path, capsys):
    code, err = _run(capsys, travelling_dataset, travelling_dataset / "out", "participant")
    assert code == 73
    _assert_one_line_error(err, "inside BIDS_DIR", "derivatives")
    assert not (travelling_dataset / "out").exists()

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, err = _run(capsys, travelling_dataset, blocker / "out", "participant")
    assert code == 73
    _assert_one_line_error(err, "a_file")


def test_output_under_derivatives_is_allowed(travelling_dataset, capsys):
    code, err = _run(
        capsys,
        travelling_dataset,
        travelling_dataset / "derivatives" / "hb",
        "participant",
        "--dry-run",
    )
    assert code == 0, err


def test_unexpected_failure_1_traceback_only_with_v(
    travelling_dataset, tmp_path, capsys, monkeypatch
):
    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(participant, "discover_t1w", explode)
    code, err = _run(capsys, travelling_dataset, tmp_path / "out", "participant")
    assert code == 1
    _assert_one_line_error(err, "disk on fire", "-v")
    code, err = _run(capsys, travelling_dataset, tmp_path / "out", "participant", "-v")
    assert code == 1
    assert "Traceback" in err and "disk on fire" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert "harmonize-bids 0." in capsys.readouterr().out


def test_cli_sampling_defaults_are_the_model_package_s():
    """--help states the sampler defaults without importing torch; they must be the real ones."""
    from harmonize_bids.cli import parser
    from harmonize_bids.model import sampling, schedulers

    assert "torch" not in parser.__dict__
    assert parser.SAMPLERS is schedulers.SAMPLERS
    assert (parser.DEFAULT_SAMPLER, parser.DEFAULT_STEPS) == (
        sampling.DEFAULT_SAMPLER,
        sampling.DEFAULT_STEPS,
    )
    text = parser.build_parser().format_help()
    assert f"default: {sampling.DEFAULT_SAMPLER}" in text
    assert f"default: {sampling.DEFAULT_STEPS}" in text
