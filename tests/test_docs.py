"""The documentation's structure against the code: tables, links and layout, not prose."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from harmonize_bids.cli.parser import build_parser
from harmonize_bids.errors import EXIT_CODES

REPO = Path(__file__).parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
MODELS = REPO / "harmonize_bids" / "data" / "models"
MAX_README_LINES = 250

#: Markdown files whose relative links must resolve.
PAGES = sorted(
    [README, REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md", *DOCS.rglob("*.md")]
    + list((REPO / "research").rglob("*.md"))
)
_FENCE = re.compile(r"^```.*?^```", flags=re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(text: str, first_header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose first column is headed `first_header`."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and _cells(line)[0] == first_header:
            body = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                body.append(_cells(row))
            return body
    raise AssertionError(f"no table with a first column {first_header!r}")


def _links(page: Path) -> list[str]:
    """Relative link targets of a Markdown page (code blocks, URLs and anchors left out)."""
    text = _FENCE.sub("", page.read_text())
    targets = [target.split("#", 1)[0] for target in _LINK.findall(text)]
    return [t for t in targets if t and ":" not in t]


def _documented_options() -> set[str]:
    rows = _table(README.read_text(), "option")
    return {option for row in rows for option in _OPTION.findall(row[0])}


def _parser_actions() -> list[argparse.Action]:
    return [
        action
        for action in build_parser()._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    ]


def test_every_documented_option_exists_in_the_parser():
    known = {string for action in _parser_actions() for string in action.option_strings}
    assert _documented_options() <= known, _documented_options() - known


def test_every_parser_option_is_documented():
    documented = _documented_options()
    missing = [
        a.option_strings for a in _parser_actions() if not documented & set(a.option_strings)
    ]
    assert not missing


def test_every_exit_code_is_documented():
    codes = [int(row[0]) for row in _table(README.read_text(), "code")]
    assert sorted(codes) == sorted(EXIT_CODES)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_point_to_files(page):
    broken = [target for target in _links(page) if not (page.parent / target).exists()]
    assert not broken


def test_every_docs_file_is_linked():
    linked = {(page.parent / target).resolve() for page in PAGES for target in _links(page)}
    files = [path for path in DOCS.rglob("*") if path.is_file() and path.name != "README.md"]
    orphans = [str(path.relative_to(REPO)) for path in files if path.resolve() not in linked]
    assert not orphans


def test_every_bundled_model_has_a_model_card():
    folders = {path.parent.name for path in MODELS.glob("*/model.json")}
    cards = {path.stem for path in (DOCS / "models").glob("*.md")}
    assert folders and folders == cards


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= MAX_README_LINES


def test_docs_hold_no_python():
    assert not list(DOCS.rglob("*.py"))


def test_ci_runs_make_test():
    assert "make test" in (REPO / ".ci" / "run").read_text()
