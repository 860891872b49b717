"""Sampling speed and memory for one full-size 1 mm volume on this machine.

Volume: nilearn's brain-extracted ICBM152 2009a T1 template (197x233x189, 1 mm), RAS+,
clipped to its 0.1/99.9 brain percentiles and scaled to [0, 1]; mask = nonzero voxels.
Network: the default config (32-64-64-128, 2.88 M parameters) with random weights; speed
does not depend on the weights.  Each configuration runs in a fresh subprocess so its
peak resident memory (ru_maxrss) is its own.  Prints a Markdown table with wall time and
CPU time; on a shared machine CPU time / threads estimates the uncontended wall time.

    python benchmarks/speed.py            # dpm/ddim at 10 steps measured, others extrapolated
    python benchmarks/speed.py --full     # measure 20 and 50 steps too (slow)

With ``--device`` it measures one device in this process instead, with the bundled
1.5 T -> 3 T model (real weights, so that outputs can be compared): seconds per volume
for the default sampler in bf16 and fp32, an ensemble of 4 and ddpm's 1000 steps, the
output difference from the CPU for the same seed (on a central slab), peak device memory
and a 300-iteration training run. On an accelerator it takes a few minutes::

    python benchmarks/speed.py --device cuda      # the GPU table for docs/speed.md
    python benchmarks/speed.py --device cpu --quick   # the same code, small, on the CPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REFERENCE_HOURS = 70.0  # ANCHORS.md: reference implementation, 1000 steps, 2-core CPU


def load_volume() -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib
    import nilearn

    path = (
        Path(nilearn.__file__).parent
        / "datasets"
        / "data"
        / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    )
    img = nib.as_closest_canonical(nib.load(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    mask = data > 0
    lo, hi = np.percentile(data[mask], [0.1, 99.9])
    volume = np.where(mask, np.clip((data - lo) / (hi - lo), 0, 1), 0).astype(np.float32)
    return volume, mask


def run_one(sampler: str, steps: int, precision: str, slices: int | None) -> None:
    """Child process: harmonize once, print a JSON line."""
    import torch

    from harmonize_bids.model import new_model, sample_volume

    volume, mask = load_volume()
    if slices:  # a central slab only (for the precision comparison)
        keep = np.zeros_like(mask)
        mid = mask.shape[0] // 2
        keep[mid - slices // 2 : mid - slices // 2 + slices] = True
        mask &= keep
    model = new_model("default", seed=0)
    start, cpu_start = time.perf_counter(), time.process_time()
    out = sample_volume(
        model,
        volume,
        mask,
        sampler=sampler,
        steps=steps,
        device="cpu",
        precision=precision,
        progress=False,
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    n_slices = int(mask.any(axis=(1, 2)).sum())
    np.save(os.environ["BENCH_OUT"], out[mask])
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "slices": n_slices,
                "threads": torch.get_num_threads(),
            }
        )
    )


def child(
    sampler: str,
    steps: int,
    precision: str = "auto",
    slices: int | None = None,
    out: str = "/tmp/speed_out.npy",
) -> dict:
    cmd = [sys.executable, __file__, "--one", sampler, str(steps), precision]
    if slices:
        cmd += ["--slices", str(slices)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=True, env={**os.environ, "BENCH_OUT": out}
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"# {sampler} {steps} steps ({precision}, slices={slices}): {result}", flush=True)
    return result


def slab(mask: np.ndarray, slices: int) -> np.ndarray:
    """The mask restricted to ``slices`` central sagittal slices."""
    keep = np.zeros_like(mask)
    mid = mask.shape[0] // 2
    keep[mid - slices // 2 : mid - slices // 2 + slices] = True
    return mask & keep


@dataclass(frozen=True)
class DeviceRun:
    """One configuration of the device suite."""

    label: str
    sampler: str
    steps: int
    precision: str
    ensemble: int = 1


def device_suite(device: str, *, quick: bool, train_iterations: int) -> None:
    """Measure one device in this process and print the table for docs/speed.md."""
    import platform

    import torch

    from harmonize_bids.choices import DEFAULT_STEPS
    from harmonize_bids.image.reference import match_to_reference
    from harmonize_bids.inference import default_reference
    from harmonize_bids.model import load_model_folder, new_model, sample_volume
    from harmonize_bids.model.device import resolve_device
    from harmonize_bids.model.folder import bundled_model_dir
    from harmonize_bids.model.training import PairedVolumes, TrainingSchedule, train

    try:
        dev = resolve_device(device)
    except RuntimeError as error:
        raise SystemExit(f"speed.py: {error} No {device} table can be measured here.") from None
    cuda = dev.type == "cuda"
    model = load_model_folder(bundled_model_dir(1.5, 3.0), source_field=1.5, target_field=3.0)
    volume, brain = load_volume()
    if quick:  # the same code on two 4 mm slices, for tests and dry runs without a GPU
        volume, brain = volume[::4, ::4, ::4], brain[::4, ::4, ::4]
    mask = slab(brain, 2) if quick else brain
    # the bundled model sees the source matched to a target-field reference: its own
    matched = None
    if model.reference_channel:
        matched = match_to_reference(volume, brain, default_reference(model).quantiles)
    default = f"default (dpm {DEFAULT_STEPS})"
    runs = [
        DeviceRun(f"{default}, bf16", "dpm", DEFAULT_STEPS, "bf16"),
        DeviceRun(f"{default}, fp32", "dpm", DEFAULT_STEPS, "fp32"),
        DeviceRun(
            f"dpm {DEFAULT_STEPS}, ensemble 4, bf16", "dpm", DEFAULT_STEPS, "bf16", ensemble=4
        ),
        DeviceRun("ddpm 1000 (the paper), bf16", "ddpm", 3 if quick else 1000, "bf16"),
    ]

    def harmonize(
        run: DeviceRun, on: torch.device, region: np.ndarray
    ) -> tuple[float, np.ndarray]:
        if on.type == "cuda":
            torch.cuda.synchronize(on)
        start = time.perf_counter()
        out = sample_volume(
            model,
            volume,
            region,
            sampler=run.sampler,
            steps=run.steps,
            ensemble=run.ensemble,
            seed=0,
            device=on,
            precision=run.precision,
            progress=False,
            matched=matched,
        )
        if on.type == "cuda":
            torch.cuda.synchronize(on)
        return time.perf_counter() - start, out

    def peak_gb() -> str:
        return f"{torch.cuda.max_memory_allocated(dev) / 1024**3:.2f}" if cuda else "-"

    def reset_peak() -> None:
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)

    harmonize(DeviceRun("warm-up", "dpm", 2, "bf16"), dev, slab(mask, 2))  # kernels, autotune
    slices = int(mask.any(axis=(1, 2)).sum())
    rows = []
    for run in runs:
        reset_peak()
        seconds, _ = harmonize(run, dev, mask)
        rows.append((run.label, f"{seconds:.1f}", f"{seconds / slices * 1000:.0f}", peak_gb()))
        print(f"# {run.label}: {seconds:.2f} s", flush=True)

    # Same seed, same model, fp32 on both: how far the device's output is from the CPU's.
    compare = slab(mask, 2 if quick else 16)
    fp32 = DeviceRun("compare", "dpm", 10, "fp32")
    _, here = harmonize(fp32, dev, compare)
    if dev.type == "cpu":
        difference = "n/a (the device is the CPU)"
    else:
        _, on_cpu = harmonize(fp32, torch.device("cpu"), compare)
        delta = np.abs(here[compare] - on_cpu[compare])
        difference = f"mean {delta.mean():.2e}, max {delta.max():.2e}"

    # Training: the default network from scratch, whole slices of this volume, batch 4.
    target = np.where(brain, volume**1.2, 0).astype(np.float32)  # any contrast change
    schedule = TrainingSchedule(
        iterations=train_iterations, checkpoint_every=train_iterations, val_fraction=0.1
    )
    reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        if cuda:
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        train(
            PairedVolumes([volume], [target], [brain]),
            new_model("default", seed=0),
            Path(tmp) / "model",
            schedule,
            work_dir=Path(tmp) / "work",
            device=dev,
            progress=False,
        )
        if cuda:
            torch.cuda.synchronize(dev)
        train_seconds = time.perf_counter() - start

    name = torch.cuda.get_device_name(dev) if cuda else platform.processor() or "CPU"
    print(
        f"Command: `python benchmarks/speed.py --device {device}"
        f"{' --quick' if quick else ''}`, {time.strftime('%Y-%m-%d')}, {name}, torch "
        f"{torch.__version__}" + (f", CUDA {torch.version.cuda}" if cuda else "") + "."
    )
    print(
        f"Volume: ICBM152 2009a T1, {'x'.join(map(str, volume.shape))} @ {4 if quick else 1} "
        f"mm, {slices} sagittal brain slices; the bundled 1p5T-to-3T model; sampling batch "
        "chosen from free memory."
    )
    print()
    print("| configuration | seconds per volume | ms per slice | peak device memory (GB) |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(
        f"Same seed, dpm 10 steps in fp32 on {int(compare.any(axis=(1, 2)).sum())} central "
        f"slices, {dev} against the CPU: |difference| {difference} ([0, 1] scale)."
    )
    print(
        f"Training: {train_iterations} iterations of the default network (batch "
        f"{schedule.batch_size}, whole slices) in {train_seconds:.1f} s "
        f"({train_iterations / train_seconds:.1f} it/s), peak device memory {peak_gb()} GB."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="measure 20 and 50 steps too")
    parser.add_argument("--one", nargs=3, metavar=("SAMPLER", "STEPS", "PRECISION"))
    parser.add_argument("--slices", type=int)
    parser.add_argument(
        "--device", help="measure this device in-process (cuda, cuda:N, cpu) instead"
    )
    parser.add_argument(
        "--quick", action="store_true", help="with --device: 2 slices, few steps (for tests)"
    )
    parser.add_argument(
        "--train-iterations", type=int, default=300, help="with --device (default 300)"
    )
    args = parser.parse_args()
    if args.one:
        run_one(args.one[0], int(args.one[1]), args.one[2], args.slices)
        return
    if args.device:
        device_suite(args.device, quick=args.quick, train_iterations=args.train_iterations)
        return
    load = os.getloadavg()
    rows: list[tuple] = []
    per_step: dict[str, float] = {}
    cpu_step: dict[str, float] = {}
    for sampler in ("dpm", "ddim"):
        for steps in (10, 20, 50):
            if steps == 10 or args.full:
                res = child(sampler, steps)
                per_step[sampler] = res["seconds"] / steps
                cpu_step[sampler] = res["cpu_seconds"] / steps
                rows.append(
                    (
                        sampler,
                        steps,
                        f"{res['seconds']:.0f}",
                        f"{res['cpu_seconds']:.0f}",
                        f"{res['cpu_seconds'] / res['threads']:.0f}",
                        f"{res['maxrss_mb']:.0f}",
                        "measured",
                    )
                )
                slices, threads = res["slices"], res["threads"]
                mem = f"{res['maxrss_mb']:.0f}"
            else:
                cpu = cpu_step[sampler] * steps
                rows.append(
                    (
                        sampler,
                        steps,
                        f"{per_step[sampler] * steps:.0f}",
                        f"{cpu:.0f}",
                        f"{cpu / threads:.0f}",
                        f"~{mem}",
                        f"extrapolated from measured {sampler} per-step cost",
                    )
                )
    ddpm, ddpm_cpu = per_step["ddim"] * 1000, cpu_step["ddim"] * 1000
    rows.append(
        (
            "ddpm",
            1000,
            f"{ddpm:.0f} ({ddpm / 3600:.2f} h)",
            f"{ddpm_cpu:.0f}",
            f"{ddpm_cpu / threads:.0f} ({ddpm_cpu / threads / 3600:.2f} h)",
            f"~{mem}",
            "extrapolated: 1000 x measured ddim per-step cost",
        )
    )
    rows.append(
        (
            "reference (ANCHORS.md)",
            1000,
            f"{REFERENCE_HOURS * 3600:.0f} (70 h)",
            "-",
            "-",
            "-",
            "guided-diffusion UNet 11.4 M, one slice at a time",
        )
    )

    # bf16 (the CPU default when supported) against fp32 on a 16-slice central slab
    bf16 = child("dpm", 10, "bf16", slices=16, out="/tmp/speed_bf16.npy")
    fp32 = child("dpm", 10, "fp32", slices=16, out="/tmp/speed_fp32.npy")
    diff = np.abs(np.load("/tmp/speed_bf16.npy") - np.load("/tmp/speed_fp32.npy"))

    print(
        f"Volume: ICBM152 2009a T1, 197x233x189 @ 1 mm, {slices} sagittal brain slices; "
        f"default network (2.88 M params, random weights); CPU, {threads} torch threads, "
        f"load average at start {load[0]:.1f} (CPU shared with other jobs)."
    )
    print()
    print(
        "| sampler | steps | wall time (s) | CPU time (s) | CPU time / threads (s) | "
        "peak RSS (MB) | note |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print()
    print(
        f"16 central slices, dpm 10 steps: bf16 {bf16['seconds']:.1f} s, fp32 "
        f"{fp32['seconds']:.1f} s; |bf16 - fp32| mean {diff.mean():.4f}, "
        f"max {diff.max():.4f} (random weights, [0, 1] scale)."
    )


if __name__ == "__main__":
    main()
