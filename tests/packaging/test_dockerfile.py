"""The Dockerfile: hadolint-clean, and the contract the README and the app rely on."""

from __future__ import annotations

import fnmatch
import json
import subprocess

from packaging_support import BOUTIQUES, DOCKERFILE, REPO, SINGULARITY_DEF, read_dockerfile, tool

import harmonize_bids
from harmonize_bids.derivatives import _container


def _hadolint(path, cwd=REPO):
    return subprocess.run(
        [tool("hadolint"), "--config", str(REPO / ".hadolint.yaml"), "--no-color", str(path)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_hadolint_is_clean():
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_config_fails_on_every_finding(tmp_path):
    # The same config rejects a sloppy Dockerfile: the clean result above means something.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install torch\nUSER harmonize\n")
    result = _hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3006", "DL3013", "DL3066"):  # untagged base, unpinned pip, named user
        assert rule in result.stdout, result.stdout


def test_multi_stage_with_torch_before_the_app():
    _, stages = read_dockerfile()
    assert len(stages) >= 2 and stages[0].name == "builder"
    builder = stages[0]
    runs = builder.all("RUN")
    torch_first = next(i for i, run in enumerate(runs) if '"torch==${TORCH_VERSION}"' in run)
    app = next(i for i, run in enumerate(runs) if "harmonize_bids-*.whl" in run)
    assert torch_first < app
    # The second install names the same torch, so pip cannot swap the CUDA build out.
    assert '"torch==${TORCH_VERSION}"' in runs[app]
    assert builder.args()["TORCH_VERSION"]
    assert any(source.startswith("--from=builder /opt/venv") for source in stages[-1].all("COPY"))


def test_runtime_stage_contract():
    _, stages = read_dockerfile()
    runtime = stages[-1]
    env = runtime.env()
    assert env["NIPYPE_NO_ET"] == "1"
    assert env["HARMONIZE_BIDS_CONTAINER_TYPE"] == "docker"
    assert env["HARMONIZE_BIDS_CONTAINER_TAG"] == "${IMAGE}:${VERSION}"
    assert env["HOME"] and env["MPLCONFIGDIR"].startswith(env["HOME"])
    assert env["OMP_NUM_THREADS"].isdigit() and env["MKL_NUM_THREADS"].isdigit()
    user = runtime.all("USER")[-1].split(":")[0]
    assert user not in ("0", "root")
    assert f"--uid {user}" in " ".join(runtime.all("RUN"))
    assert json.loads(runtime.all("ENTRYPOINT")[-1]) == ["harmonize-bids"]
    # The offline smoke check at build time: version, validator, deepbet weights, template.
    offline = [run for run in runtime.all("RUN") if run.startswith("--network=none")]
    assert offline and all(
        part in offline[0]
        for part in (
            "harmonize-bids --version",
            "bids-validator-deno --version",
            "BrainExtraction",
            "load_template",
        )
    )


def test_labels_and_version_match_the_package():
    _, stages = read_dockerfile()
    runtime = stages[-1]
    assert runtime.args()["VERSION"] == harmonize_bids.__version__
    labels = " ".join(runtime.all("LABEL"))
    for key in ("title", "description", "version", "source", "licenses", "revision", "created"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    assert 'org.opencontainers.image.version="${VERSION}"' in labels


def test_one_image_name_everywhere():
    _, stages = read_dockerfile()
    args = stages[-1].args()
    image = f"{args['IMAGE']}:{args['VERSION']}"
    assert f"From: {image}" in SINGULARITY_DEF.read_text()
    assert f"HARMONIZE_BIDS_CONTAINER_TAG={image}" in SINGULARITY_DEF.read_text()
    assert json.loads(BOUTIQUES.read_text())["container-image"]["image"] == image


def test_the_image_environment_is_what_the_app_records(monkeypatch):
    _, stages = read_dockerfile()
    env, args = stages[-1].env(), stages[-1].args()
    tag = (
        env["HARMONIZE_BIDS_CONTAINER_TAG"]
        .replace("${IMAGE}", args["IMAGE"])
        .replace("${VERSION}", args["VERSION"])
    )
    monkeypatch.setenv("HARMONIZE_BIDS_CONTAINER_TYPE", env["HARMONIZE_BIDS_CONTAINER_TYPE"])
    monkeypatch.setenv("HARMONIZE_BIDS_CONTAINER_TAG", tag)
    assert _container() == {"Type": "docker", "Tag": tag}


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if any(
            fnmatch.fnmatch(c, pattern)
            or (pattern.startswith("**/") and fnmatch.fnmatch(c.split("/")[-1], pattern[3:]))
            for c in candidates
        ):
            ignored = not negate
    return ignored


def test_dockerignore_lets_the_copied_sources_in():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    _, stages = read_dockerfile()
    sources = [
        word
        for copy in stages[0].all("COPY")
        if not copy.startswith("--from")
        for word in copy.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _ignored(source, patterns), source
        if (REPO / source).is_dir():
            for file in (REPO / source).rglob("*.py"):
                if "__pycache__" not in file.parts:
                    assert not _ignored(str(file.relative_to(REPO)), patterns), file
    assert _ignored("harmonize_bids/__pycache__/x.pyc", patterns)
    assert _ignored(".venv/bin/python", patterns) and _ignored("tests/conftest.py", patterns)
