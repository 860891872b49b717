"""The README documents what the code does: quick start and every exit code."""

from __future__ import annotations

import json
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


QUALITY = README.parent / "docs" / "quality.json"
PEERS = ("Histogram matching", "Nyul")


def _readme_summary_row(label: str) -> list[str]:
    """The cells after the first of the README quality-summary row whose label starts so."""
    for line in README.read_text().splitlines():
        cells = [cell.strip().replace("**", "") for cell in line.strip().strip("|").split("|")]
        if cells[0].startswith(label):
            return cells[1:]
    raise AssertionError(f"README has no quality-summary row {label!r}")


def _figures(method: dict, original: dict) -> list[str]:
    """MSE, AHD, CSF / GM / WM volume difference (ratios to Original), lesion contrast."""
    volumes = " / ".join(
        f"{method['volume_diff'][c] / original['volume_diff'][c]:.2f}" for c in ("CSF", "GM", "WM")
    )
    return [
        f"{method['mse'] / original['mse']:.3f}",
        f"{method['ahd'] / original['ahd']:.3f}",
        volumes,
        f"{method['lesion_contrast_ratio']:.2f}",
    ]


def _best_per_column(peers: list[list[str]]) -> list[str]:
    mse, ahd = (
        min(column, key=float) for column in zip(*(peer[:2] for peer in peers), strict=True)
    )
    volumes = zip(*(peer[2].split(" / ") for peer in peers), strict=True)
    lesion = min((peer[3] for peer in peers), key=lambda ratio: abs(float(ratio) - 1))
    return [mse, ahd, " / ".join(min(column, key=float) for column in volumes), lesion]


def test_readme_quality_summary_matches_the_benchmark_record():
    for direction, record in json.loads(QUALITY.read_text()).items():
        label = direction.replace("T-to-", " T -> ")[:-1] + " T"  # 3T-to-1.5T: 3 T -> 1.5 T
        methods, original = record["methods"], record["methods"]["Original"]
        ours = _readme_summary_row(f"{label}, ours")
        assert ours[:4] == _figures(methods[record["default"]], original), label
        best = _best_per_column([_figures(methods[name], original) for name in PEERS])
        assert _readme_summary_row(f"{label}, best peer per column")[:4] == best, label
