"""docs/hpc: the SLURM array script and the nipype plugin files work as docs/hpc.md says."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
from pathlib import Path

import pytest
from packaging_support import REPO

from harmonize_bids.cli.run import load_plugin_settings as _load_plugin_settings

HPC = REPO / "docs" / "hpc"
SCRIPT = HPC / "harmonize_bids_array.sbatch"


@pytest.mark.parametrize("name", ["nipype_multiproc.yml", "nipype_slurm.yml"])
def test_plugin_files_name_real_nipype_settings(name):
    settings = _load_plugin_settings(HPC / name)
    module = importlib.import_module(f"nipype.pipeline.plugins.{settings['plugin'].lower()}")
    plugin_class = getattr(module, f"{settings['plugin']}Plugin")
    source = "".join(
        inspect.getsource(cls)
        for cls in plugin_class.__mro__
        if cls.__module__.startswith("nipype.")
    )
    for key in settings["plugin_args"]:  # every setting is one nipype reads
        assert f'"{key}"' in source or f"'{key}'" in source, key


def _dry_run(tmp_path: Path, task: int, **env) -> subprocess.CompletedProcess:
    bids = tmp_path / "bids"
    bids.mkdir(exist_ok=True)
    (bids / "participants.tsv").write_text("participant_id\tage\nsub-01\t30\nsub-02\t41\n")
    return subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "USER": "tester",
            "BIDS_DIR": str(bids),
            "OUTPUT_DIR": str(tmp_path / "out"),
            "WORK_ROOT": str(tmp_path / "work"),
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_CPUS_PER_TASK": "4",
            "DRY_RUN": "1",
            **env,
        },
    )


def test_array_task_runs_its_own_participant_with_its_own_work_dir(tmp_path):
    result = _dry_run(tmp_path, 2)
    assert result.returncode == 0, result.stderr
    command = result.stdout
    assert command.startswith("apptainer run --cleanenv --containall ")
    assert "--nv" not in command
    assert f"-B {tmp_path}/work/sub-02:/work" in command
    assert f"-B {tmp_path}/out:/out" in command and f"-B {tmp_path}/bids:/data:ro" in command
    assert re.search(
        r" /data /out participant --participant-label 02 -w /work --nprocs 4 ", command
    )
    assert not (tmp_path / "out").exists()  # a dry run creates nothing


def test_array_script_gpu_and_extra_options(tmp_path):
    result = _dry_run(tmp_path, 1, GPU="1", EXTRA_ARGS="--ensemble 3 --device cuda")
    assert result.returncode == 0, result.stderr
    assert "--containall --nv -B" in result.stdout
    assert "--participant-label 01" in result.stdout
    assert result.stdout.rstrip().endswith("--ensemble 3 --device cuda")


def test_array_task_without_a_participant_fails_clearly(tmp_path):
    result = _dry_run(tmp_path, 3)
    assert result.returncode == 66
    assert "No participant for array task 3" in result.stderr


def test_group_level_runs_once_after_the_array(tmp_path):
    result = _dry_run(tmp_path, 1, LEVEL="group", SLURM_ARRAY_TASK_ID="")
    assert result.returncode == 0, result.stderr
    assert f"-B {tmp_path}/work/group:/work" in result.stdout
    assert re.search(r" /data /out group -w /work --nprocs 4 ", result.stdout)
    assert "--participant-label" not in result.stdout
    bad = _dry_run(tmp_path, 1, LEVEL="subject")
    assert bad.returncode == 64 and "LEVEL must be participant or group" in bad.stderr


def test_native_install_runs_harmonize_bids_from_path(tmp_path):
    result = _dry_run(tmp_path, 2, CONTAINER="none")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"harmonize-bids {tmp_path}/bids {tmp_path}/out participant --participant-label 02 "
        f"-w {tmp_path}/work/sub-02 --nprocs 4 --omp-nthreads 4"
    )


def test_the_script_asks_for_nothing_a_node_may_lack():
    """Resources come from the sbatch command line: a request larger than a node never
    runs. The log goes to the submit folder: SLURM creates no folder for it."""
    header = [
        line.split(maxsplit=1)[1]
        for line in SCRIPT.read_text().splitlines()
        if line.startswith("#SBATCH")
    ]
    assert header, "no #SBATCH lines"
    for option in header:
        name = option.split("=")[0]
        assert name not in ("-c", "--cpus-per-task", "--mem", "--mem-per-cpu", "--gres"), option
        if name in ("--output", "-o", "--error", "-e"):
            assert "/" not in option.split("=", 1)[1], option
