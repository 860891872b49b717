"""singularity.def: spython parses it, and its shell sections do what they say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from packaging_support import SINGULARITY_DEF, tool

import harmonize_bids

SECTIONS = ("help", "labels", "environment", "runscript", "test")


def _sections() -> dict[str, str]:
    text = SINGULARITY_DEF.read_text()
    parts = re.split(r"^%(\w+)[ \t]*$", text, flags=re.MULTILINE)
    return {name: body for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_spython_recipe_parses_and_converts():
    result = subprocess.run(
        [tool("spython"), "recipe", str(SINGULARITY_DEF)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    dockerfile = result.stdout
    assert "ENV HARMONIZE_BIDS_CONTAINER_TYPE=singularity" in dockerfile
    assert 'exec harmonize-bids "$@"' in dockerfile
    assert "harmonize-bids --version" in dockerfile


def test_recipe_structure():
    from spython.main.parse.parsers import SingularityParser

    (recipe,) = SingularityParser(str(SINGULARITY_DEF)).recipe.values()
    header = SINGULARITY_DEF.read_text().split("%", 1)[0]
    assert re.search(r"^Bootstrap: docker$", header, flags=re.MULTILINE)
    assert recipe.fromHeader.endswith(f":{harmonize_bids.__version__}")
    assert "HARMONIZE_BIDS_CONTAINER_TYPE=singularity" in recipe.environ
    assert f"org.opencontainers.image.version {harmonize_bids.__version__}" in recipe.labels
    assert set(SECTIONS) <= set(_sections())
    assert "apptainer run" in _sections()["help"]


def _bin_path() -> str:
    return f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin"


def test_environment_section_gives_a_writable_matplotlib_folder(tmp_path):
    script = _sections()["environment"] + '\nenv\n'
    result = subprocess.run(
        ["sh", "-c", script],
        capture_output=True,
        text=True,
        env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    env = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert env["HARMONIZE_BIDS_CONTAINER_TYPE"] == "singularity"
    assert env["NIPYPE_NO_ET"] == "1"
    assert Path(env["MPLCONFIGDIR"]).parent == tmp_path


def test_runscript_and_test_sections_run_the_app():
    for section in ("runscript", "test"):
        argv = ["--version"] if section == "runscript" else []
        result = subprocess.run(
            ["sh", "-c", _sections()[section], "sh", *argv],
            capture_output=True,
            text=True,
            env={"PATH": _bin_path(), "NIPYPE_NO_ET": "1"},
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"harmonize-bids {harmonize_bids.__version__}"
