"""What every entry point sets up before it runs: no TemplateFlow index to build."""

from __future__ import annotations

import os
import subprocess
import sys

from harmonize_bids.cli.common import EMPTY_TEMPLATEFLOW_HOME, run_entry_point


def test_entry_points_use_the_empty_templateflow_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "someone-elses"))
    seen = {}

    def run(_options):
        seen["home"] = os.environ["TEMPLATEFLOW_HOME"]
        return 0

    parse = lambda argv: type("Options", (), {"verbose": 0})()  # noqa: E731
    assert run_entry_point(parse, run, []) == 0
    assert seen["home"] == str(EMPTY_TEMPLATEFLOW_HOME)
    assert EMPTY_TEMPLATEFLOW_HOME.is_dir()


def test_niworkflows_sees_no_template_there():
    code = "import niworkflows.interfaces.bids as b; print(b.STANDARD_SPACES)"
    listed = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "TEMPLATEFLOW_HOME": str(EMPTY_TEMPLATEFLOW_HOME)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.strip() == "[]"
    assert sorted(p.name for p in EMPTY_TEMPLATEFLOW_HOME.iterdir()) == ["README.md"]
