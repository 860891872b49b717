"""Helpers for the packaging tests: where the files are, and the Dockerfile read as data."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
DOCKERFILE = REPO / "Dockerfile"
SINGULARITY_DEF = REPO / "singularity.def"
BOUTIQUES = REPO / "boutiques.json"


def tool(name: str) -> str:
    """A console script of the test extra: beside this interpreter first, then on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run `pip install -e '.[test]'` (make test does).")
    return found


def networking_off_prefix() -> list[str]:
    """`unshare -rn` when this machine allows it, else skip with the reason."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed, so networking cannot be switched off here")
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -rn is not permitted on this machine: {probe.stderr.strip()}")
    return ["unshare", "-rn"]


@dataclass
class Stage:
    """One FROM ... stage of a Dockerfile: its name and its instructions, in order."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]

    def env(self) -> dict[str, str]:
        """ENV key=value pairs (later ones win), quotes removed, ${ARG} left as written."""
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for token in shlex.split(args, posix=True):
                key, _, value = token.partition("=")
                values[key] = value
        return values

    def args(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ARG"):
            key, _, value = args.partition("=")
            values[key.strip()] = value.strip()
        return values


def read_dockerfile(path: Path = DOCKERFILE) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages, with continuation lines joined and comments dropped."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        ),
    )
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), " ".join(rest.split())
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            if keyword == "ARG":
                key, _, value = rest.partition("=")
                global_args[key] = value
        else:
            stages[-1].instructions.append((keyword, rest))
    return global_args, stages
