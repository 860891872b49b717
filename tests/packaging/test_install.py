"""Install fidelity: the wheel, installed the way the Dockerfile does, runs offline.

The module builds the wheel from exactly the files the Dockerfile copies, installs it into
a fresh virtual environment (torch first, pinned as in the Dockerfile), then runs the
Dockerfile's own build-time checks and a --sloppy participant run with the image's
environment and the network switched off.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from bidsfactory import SIDECAR_3, SIDECAR_15, linear_plugin, make_bids, tiny_model
from packaging_support import REPO, networking_off_prefix, read_dockerfile

import harmonize_bids

pytestmark = pytest.mark.slow
_, STAGES = read_dockerfile()
BUILDER, RUNTIME = STAGES[0], STAGES[-1]


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{argv}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


class Install:
    """A fresh environment laid out like the image's: venv, HOME."""

    def __init__(self, root: Path):
        self.root = root
        self.venv = root / "venv"
        self.home = root / "home"
        self.wheel: Path | None = None

    def translate(self, text: str) -> str:
        """An image path or ${ARG} in the Dockerfile, as it is in this environment."""
        args = RUNTIME.args()
        for old, new in (
            ("/opt/venv", str(self.venv)),
            ("/home/harmonize", str(self.home)),
            ("${IMAGE}", args["IMAGE"]),
            ("${VERSION}", args["VERSION"]),
        ):
            text = text.replace(old, new)
        return text

    def env(self) -> dict[str, str]:
        env = {key: self.translate(value) for key, value in RUNTIME.env().items()}
        env["PATH"] = f"{self.venv / 'bin'}:/usr/bin:/bin"
        return env


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Install:
    setup = Install(tmp_path_factory.mktemp("install"))
    torch_version = BUILDER.args()["TORCH_VERSION"]
    # The sources: what the builder stage COPYs, nothing else.
    source = setup.root / "src"
    for copy in BUILDER.all("COPY"):
        *paths, _ = copy.split()
        for name in paths:
            target = source / name
            if (REPO / name).is_dir():
                shutil.copytree(
                    REPO / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, target)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(setup.root / "wheels"),
            str(source),
        ]
    )
    (setup.wheel,) = (setup.root / "wheels").glob("harmonize_bids-*.whl")

    _run([sys.executable, "-m", "venv", str(setup.venv)])
    # --no-compile: the image byte-compiles at install; here that is a minute of CPU spent
    # on modules the run never imports.
    pip = [str(setup.venv / "bin/python"), "-m", "pip", "install", "--quiet", "--no-compile"]
    # torch from local disk only: never let a test pull a multi-GB CUDA build.
    local = subprocess.run(
        [*pip, "--no-index", "--no-deps", f"torch=={torch_version}"],
        capture_output=True,
        text=True,
    )
    if local.returncode != 0:
        pytest.skip(
            f"torch=={torch_version} is not on this machine's local wheel paths "
            "(pip find-links); not downloading a CUDA build for a test"
        )
    _run([*pip, f"torch=={torch_version}", str(setup.wheel)])
    setup.home.mkdir()
    return setup


def test_wheel_ships_the_package_data(install):
    names = set(zipfile.ZipFile(install.wheel).namelist())
    data = REPO / "harmonize_bids" / "data"
    shipped = {
        str(path.relative_to(REPO))
        for path in data.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert shipped and shipped <= names, sorted(shipped - names)
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)


def test_installed_torch_is_the_pinned_one(install):
    version = _run(
        [str(install.venv / "bin/python"), "-c", "import torch; print(torch.__version__)"]
    ).stdout.strip()
    assert version.split("+")[0] == BUILDER.args()["TORCH_VERSION"]


def test_version(install):
    result = _run([str(install.venv / "bin/harmonize-bids"), "--version"], env=install.env())
    assert result.stdout.strip() == f"harmonize-bids {harmonize_bids.__version__}"


def test_the_dockerfile_offline_check_passes(install):
    """The runtime stage's RUN --network=none check, with the network off here too."""
    offline = networking_off_prefix()
    (check,) = [run for run in RUNTIME.all("RUN") if run.startswith("--network=none")]
    command = install.translate(check.removeprefix("--network=none").strip())
    result = _run([*offline, "bash", "-o", "pipefail", "-c", command], env=install.env())
    assert harmonize_bids.__version__ in result.stdout


def test_participant_run_offline_with_the_image_environment(install, tmp_path):
    offline = networking_off_prefix()
    bids = make_bids(
        tmp_path / "bids",
        {
            "sub-01/ses-A/anat/sub-01_ses-A_T1w.nii.gz": SIDECAR_15,
            "sub-01/ses-B/anat/sub-01_ses-B_T1w.nii.gz": SIDECAR_3,
        },
    )
    model = tiny_model(tmp_path, seed=3)
    plugin = linear_plugin(tmp_path)
    out = tmp_path / "out"
    # deepbet (the default skull stripper) runs: its weights must be in the install.
    result = subprocess.run(
        [
            *offline,
            str(install.venv / "bin/harmonize-bids"),
            str(bids),
            str(out),
            "participant",
            "-w",
            str(tmp_path / "work"),
            "--model",
            str(model),
            "--sloppy",
            "--use-plugin",
            str(plugin),
            "--nprocs",
            "1",
        ],
        capture_output=True,
        text=True,
        env=install.env(),
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for session in ("A", "B"):
        stem = out / f"sub-01/ses-{session}/anat/sub-01_ses-{session}"
        assert Path(f"{stem}_desc-harmonized_T1w.nii.gz").is_file()
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["GeneratedBy"][0]["Container"] == {
        "Type": "docker",
        "Tag": install.translate(RUNTIME.env()["HARMONIZE_BIDS_CONTAINER_TAG"]),
    }
    # TemplateFlow's home is the package's empty one: nothing unpacked into HOME.
    assert not (install.home / ".cache" / "templateflow").exists()
