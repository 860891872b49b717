"""The README documents what the code does: quick start and every exit code."""

from __future__ import annotations

import re
from pathlib import Path

from harmonize_bids.errors import EXIT_CODES

README = Path(__file__).parents[1] / "README.md"


def test_every_exit_code_is_documented():
    table = re.findall(r"^\| (\d+) \|", README.read_text(), flags=re.MULTILINE)
    assert sorted(int(code) for code in table) == sorted(EXIT_CODES)


def test_quick_start_has_exactly_make_demo_and_make_test():
    text = README.read_text()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci
