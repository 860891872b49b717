"""boutiques.json: valid, in step with the argparse parser, and runnable with bosh."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bidsfactory import SIDECAR_3, SIDECAR_15, linear_plugin, make_bids, tiny_model
from packaging_support import BOUTIQUES, tool

import harmonize_bids
from harmonize_bids.cli.parser import build_parser
from harmonize_bids.errors import EXIT_CODES

DESCRIPTOR = json.loads(BOUTIQUES.read_text())
INPUTS = {item["id"]: item for item in DESCRIPTOR["inputs"]}
# Options that print and exit: no run to describe.
NOT_INPUTS = (argparse._HelpAction, argparse._VersionAction)


def _actions() -> dict[str, argparse.Action]:
    return {
        action.dest: action
        for action in build_parser()._actions
        if not isinstance(action, NOT_INPUTS)
    }


def test_bosh_validate():
    result = subprocess.run(
        [tool("bosh"), "validate", str(BOUTIQUES)], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip() == "OK", result.stdout + result.stderr


def test_inputs_are_the_argparse_options():
    assert set(INPUTS) == set(_actions())


def test_each_input_matches_its_option():
    for dest, action in _actions().items():
        item = INPUTS[dest]
        assert item["value-key"] in DESCRIPTOR["command-line"], dest
        if isinstance(action, argparse.BooleanOptionalAction) and action.default is None:
            # three states (unset, --x, --no-x): the flag itself is the value
            assert item["type"] == "String" and "command-line-flag" not in item, dest
            assert item["value-choices"] == action.option_strings and item["optional"], dest
            continue
        if not action.option_strings:  # positional
            assert "command-line-flag" not in item and item["optional"] is False, dest
        else:
            assert item["command-line-flag"] in action.option_strings, dest
            assert item["optional"] is True, dest
        is_flag = action.nargs == 0
        assert (item["type"] == "Flag") == is_flag, dest
        assert bool(item.get("list")) == (action.nargs == "+"), dest
        if action.choices:
            assert item["value-choices"] == list(action.choices), dest
        if item["type"] == "Number" and item.get("value-choices"):  # --target/--source-field
            assert all(action.type(str(choice)) == choice for choice in item["value-choices"])
        if "default-value" in item:
            assert item["default-value"] == (
                str(action.default) if isinstance(action.default, Path) else action.default
            ), dest
        if item.get("integer"):
            assert action.type(str(item.get("minimum", 1))) >= item.get("minimum", 1), dest
            with pytest.raises(argparse.ArgumentTypeError):
                action.type(str(item.get("minimum", 1) - 1))


def test_error_codes_and_version():
    assert {e["code"]: e["description"] for e in DESCRIPTOR["error-codes"]} == {
        code: text for code, text in EXIT_CODES.items() if code
    }
    assert DESCRIPTOR["tool-version"] == harmonize_bids.__version__
    assert DESCRIPTOR["container-image"]["type"] == "docker"


def _bosh_launch(descriptor: Path, invocation: dict, cwd: Path) -> subprocess.CompletedProcess:
    invocation_file = cwd / "invocation.json"
    invocation_file.write_text(json.dumps(invocation))
    env = {
        **os.environ,
        "NIPYPE_NO_ET": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        [
            tool("bosh"),
            "exec",
            "launch",
            "--no-container",
            "--skip-data-collection",
            str(descriptor),
            str(invocation_file),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=900,
    )


def _section(stdout: str, title: str) -> list[str]:
    """The '\t- item' lines under one heading of bosh's summary."""
    lines = stdout.splitlines()
    start = lines.index(title) + 1
    items = []
    for line in lines[start:]:
        if not line.startswith("\t- "):
            break
        items.append(line[3:])
    return items


def test_descriptor_tests_give_their_exit_codes(tmp_path):
    for case in DESCRIPTOR["tests"]:
        result = _bosh_launch(BOUTIQUES, case["invocation"], tmp_path)
        assert result.returncode == case["assertions"]["exit-code"], result.stdout[-2000:]


@pytest.mark.slow
def test_bosh_launch_runs_the_participant_level(tmp_path):
    bids = make_bids(
        tmp_path / "bids",
        {
            "sub-01/ses-A/anat/sub-01_ses-A_T1w.nii.gz": SIDECAR_15,
            "sub-01/ses-B/anat/sub-01_ses-B_T1w.nii.gz": SIDECAR_3,
        },
    )
    model = tiny_model(tmp_path, seed=2)
    plugin = linear_plugin(tmp_path)
    out = tmp_path / "out"
    result = _bosh_launch(
        BOUTIQUES,
        {
            "bids_dir": str(bids),
            "output_dir": str(out),
            "analysis_level": "participant",
            "participant_label": ["01"],
            "model": str(model),
            "skull_strip": "none",
            "work_dir": str(tmp_path / "work"),
            "use_plugin": str(plugin),
            "sloppy": True,
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert _section(result.stdout, "Missing files") == []
    found = {
        line.split(" (")[1].split(",")[0]: Path(line.split(" (")[0])
        for line in _section(result.stdout, "Output files")
    }
    assert {
        "dataset_description",
        "citation",
        "reports",
        "harmonized_t1w",
        "preproc_t1w",
        "brain_mask",
    } <= set(found)
    assert "harmonized_t1w_nosession" not in found  # this dataset has sessions
    assert found["harmonized_t1w"].name.endswith("_desc-harmonized_T1w.nii.gz")
    assert found["harmonized_t1w"].is_relative_to(out)
    harmonized = sorted(out.glob("sub-01/ses-*/anat/*_desc-harmonized_T1w.nii.gz"))
    assert [path.name for path in harmonized] == [
        "sub-01_ses-A_desc-harmonized_T1w.nii.gz",
        "sub-01_ses-B_desc-harmonized_T1w.nii.gz",
    ]
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
