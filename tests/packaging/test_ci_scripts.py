"""The shell scripts CI and users run (ci/, .ci/run, docs/hpc): shellcheck-clean, and
the integration scripts refuse to work inside the repository."""

from __future__ import annotations

import os
import subprocess

import pytest
from packaging_support import REPO, tool

SCRIPTS = sorted(
    [*REPO.glob("ci/*.sh"), REPO / ".ci" / "run", *REPO.glob("docs/hpc/*.sbatch")],
    key=str,
)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(REPO)))
def test_shellcheck_is_clean(script):
    result = subprocess.run(
        [tool("shellcheck"), "--severity=info", str(script)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_finds_what_it_should(tmp_path):
    # The same call rejects a sloppy script: the clean results above mean something.
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/bash\nrm -rf $1/*\n")
    result = subprocess.run([tool("shellcheck"), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "SC2086" in result.stdout


@pytest.mark.parametrize(
    ("script", "variable"),
    [("container-smoke.sh", "SMOKE_WORK"), ("slurm-integration.sh", "SLURM_WORK")],
)
def test_integration_scripts_keep_their_work_outside_the_repository(script, variable):
    if os.geteuid() != 0:
        pytest.skip("the scripts check for root first")
    result = subprocess.run(
        ["bash", str(REPO / "ci" / script)],
        capture_output=True,
        text=True,
        env={**os.environ, variable: str(REPO / "work-inside")},
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{variable} must lie outside the repository" in result.stdout
    assert not (REPO / "work-inside").exists()
