"""benchmarks/speed.py --device: the device suite's code runs (on the CPU here), and a
missing accelerator is one clear line, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harmonize_bids.choices import DEFAULT_STEPS

SPEED = Path(__file__).parents[1] / "benchmarks" / "speed.py"

ROWS = (
    f"default (dpm {DEFAULT_STEPS}), bf16",
    f"default (dpm {DEFAULT_STEPS}), fp32",
    f"dpm {DEFAULT_STEPS}, ensemble 4, bf16",
    "ddpm 1000 (the paper), bf16",
)


def _speed(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SPEED), *argv], capture_output=True, text=True, timeout=900
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_says_so():
    result = _speed("--device", "cuda")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "speed.py: Device 'cuda' requested but CUDA is not available; use --device cpu. "
        "No cuda table can be measured here."
    ]


@pytest.mark.slow
def test_device_suite_prints_every_measurement():
    result = _speed("--device", "cpu", "--quick", "--train-iterations", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0].removeprefix("| ") for line in table[1:]] == list(ROWS)
    for line in table[1:]:
        seconds = float(line.split(" | ")[1])
        assert seconds > 0, line
    assert "against the CPU: |difference| n/a (the device is the CPU)" in result.stdout
    assert "Training: 2 iterations of the default network" in result.stdout
    assert "--device cpu --quick" in result.stdout
