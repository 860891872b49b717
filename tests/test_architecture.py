"""The house rules, checked on the source: which room may import which, and the things
that are defined once (STYLE.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "harmonize_bids"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package[: len(package) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _files(room: str) -> list[Path]:
    return sorted((ROOT / room).rglob("*.py"))


def _offending(room: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for path in _files(room):
        hits = sorted(
            m for m in _imports(path) if any(m == f or m.startswith(f + ".") for f in forbidden)
        )
        if hits:
            bad[str(path.relative_to(ROOT))] = hits
    return bad


LEVELS = (
    "harmonize_bids.participant",
    "harmonize_bids.training",
    "harmonize_bids.qc.group",
    "harmonize_bids.cross_validation",
    "harmonize_bids.cli",
)


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [
        # the command line parses and hands settings to a level: no science, no graph
        (
            "harmonize_bids/cli",
            (
                "numpy",
                "torch",
                "nibabel",
                "nipype",
                "harmonize_bids.image",
                "harmonize_bids.workflows",
                "harmonize_bids.interfaces",
                "harmonize_bids.inference",
                "harmonize_bids.qc.metrics",
            ),
        ),
        # interfaces are thin: a spec and one call, the science lives in image/ or inference
        (
            "harmonize_bids/interfaces",
            ("numpy", "scipy", "sklearn", "nibabel", "torch", "harmonize_bids.model"),
        ),
        # the model package is torch only
        (
            "harmonize_bids/model",
            (
                "nipype",
                "nibabel",
                "bids",
                "harmonize_bids.image",
                "harmonize_bids.workflows",
                "harmonize_bids.interfaces",
                "harmonize_bids.qc",
                "harmonize_bids.bids",
                *LEVELS,
            ),
        ),
        (
            "harmonize_bids/image",
            (
                "nipype",
                "harmonize_bids.model",
                "harmonize_bids.workflows",
                "harmonize_bids.interfaces",
                *LEVELS,
            ),
        ),
        (
            "harmonize_bids/qc",
            (
                "harmonize_bids.workflows",
                "harmonize_bids.interfaces",
                "harmonize_bids.participant",
                "harmonize_bids.cli",
            ),
        ),
        (
            "harmonize_bids/phantom",
            (
                "harmonize_bids.workflows",
                "harmonize_bids.interfaces",
                "harmonize_bids.model",
                *LEVELS,
            ),
        ),
        ("benchmarks", LEVELS),
    ],
)
def test_rooms_import_only_what_they_may(room, forbidden):
    assert _offending(room, forbidden) == {}


def test_nothing_names_a_cli_module_by_string():
    for path in _files("harmonize_bids"):
        if "cli" in path.parts:
            continue
        assert "harmonize_bids.cli" not in path.read_text(), path


def _definers(pattern: str, rooms=("harmonize_bids", "benchmarks")) -> list[str]:
    found = []
    for room in rooms:
        for path in _files(room):
            if re.search(pattern, path.read_text(), flags=re.MULTILINE):
                found.append(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize(
    ("pattern", "home"),
    [
        # slice cutting for the network: training and inference share one rule
        (
            r"^def brain_box|^class SliceFrame|rows\[0\], rows\[-1\] \+ 1",
            ["harmonize_bids/model/slicing.py"],
        ),
        # the paired metrics of an image against its target
        (r"metrics\.mse\(", ["harmonize_bids/qc/paired.py"]),
        # derivative names: built from one spec
        (r"desc-harmonized|desc-preproc_T1w", ["harmonize_bids/derivatives.py"]),
        # atomic writes
        (r"os\.replace\(|mkstemp\(", ["harmonize_bids/atomic.py"]),
        # the direction label and slug
        (r":g\}T->|:g\}T-to-|T-to-\{", ["harmonize_bids/choices.py"]),
        # the sampler and skull-strip choices
        (
            r'"ddpm", "ddim", "dpm"|["\']deepbet["\'], ["\']hdbet["\']',
            ["harmonize_bids/choices.py"],
        ),
    ],
)
def test_defined_once(pattern, home):
    assert _definers(pattern) == home
