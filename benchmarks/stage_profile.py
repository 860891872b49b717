"""Where the time goes: wall and CPU time per stage of one image, participant and group.

    python benchmarks/stage_profile.py [--work DIR] [--sampler dpm --steps 10] [--output FILE]

Makes a one-subject full-size phantom (seed 3000, lesions; a 1.5 T and a 3 T session, as
the demo), then:

1. times each stage of the participant level on the 1.5 T image, in this process, by
   calling the functions the nodes call (import, validation, discovery, conform, skull
   strip, N4, resample, clip and scale, model load, sampling, anchoring and checks,
   writing the derivative, the subject report);
2. times the whole participant level on the 1.5 T image alone, cold (a fresh process with
   an empty work directory), and the group level on both sessions and their pair, cold;
3. times each stage of the group level (segmentation of each image, registration of the
   pair, the paired metrics, figures, HTML).

CPU time is this process's user + system time (all threads), or the child's for the cold
runs. Report the machine's load average with the figures: it is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

STAGES: list[tuple[str, float, float]] = []


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def stage(name: str):
    wall, cpu = time.perf_counter(), _cpu()
    yield
    STAGES.append((name, time.perf_counter() - wall, _cpu() - cpu))
    print(f"{name}: {STAGES[-1][1]:.1f} s", file=sys.stderr, flush=True)


def cold(command: list[str], env: dict | None = None) -> tuple[float, float, int]:
    """Wall and CPU seconds of a command in a fresh process, and its exit code."""
    before, wall = _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    code = subprocess.run(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode
    return time.perf_counter() - wall, _cpu(resource.RUSAGE_CHILDREN) - before, code


def participant_stages(bids: Path, work: Path, sampler: str, steps: int) -> None:
    import numpy as np

    with stage("import (numpy, nibabel, torch, nipype, the package)"):
        import nibabel as nib
        import nipype  # noqa: F401
        import torch

        from harmonize_bids import image as img
        from harmonize_bids import inference  # noqa: F401
        from harmonize_bids.bids import discover_t1w, load_layout, validate_bids
        from harmonize_bids.image import intensity
        from harmonize_bids.model.folder import bundled_model_dir, load_model_folder
    torch.set_num_threads(2)
    with stage("BIDS validation (bids-validator-deno)"):
        validate_bids(bids)
    with stage("discovery (pybids layout, sidecars)"):
        images = discover_t1w(load_layout(bids), session_labels=["1p5T"]).images
    raw = images[0].path
    out = work / "stages"
    out.mkdir(parents=True, exist_ok=True)
    with stage("conform"):
        conformed = img.conform(raw, out / "conformed.nii.gz")
    with stage("skull strip (deepbet)"):
        brain, brain_mask = img.skull_strip(conformed, out, num_threads=2)
    with stage("N4 bias correction"):
        n4 = img.n4_correct(brain, brain_mask, out / "n4.nii.gz")
    with stage("resample to 1 mm (image and mask)"):
        resampled = img.resample_to_1mm(n4, out / "resampled.nii.gz")
        mask_file = img.resample_to_1mm(brain_mask, out / "mask.nii.gz", interpolation="nearest")
    with stage("clip, scale, anchor white matter"):
        preproc = img.clip_and_scale(resampled, mask_file, out / "preproc.nii.gz")
    with stage("model load"):
        model = load_model_folder(bundled_model_dir(1.5, 3.0), source_field=1.5, target_field=3.0)
    volume = np.asanyarray(nib.load(preproc).dataobj, dtype=np.float32)
    mask = np.asanyarray(nib.load(mask_file).dataobj) > 0
    from harmonize_bids.image.domain import contrast_profile
    from harmonize_bids.image.reference import match_to_reference
    from harmonize_bids.inference import default_reference, domain_warnings
    from harmonize_bids.model.sampling import sample_volume

    reference = default_reference(model)
    matched = None
    if model.reference_channel:
        with stage("histogram match to the reference"):
            matched = match_to_reference(volume, mask, reference.quantiles)
    with stage(f"sampling ({sampler}, {steps} steps)"):
        sampled = sample_volume(
            model, volume, mask, sampler=sampler, steps=steps, progress=False, matched=matched
        )
    with stage("white-matter anchoring and domain checks"):
        before, after = contrast_profile(volume, mask), contrast_profile(sampled, mask)
        image = intensity.anchor_white_matter(sampled, mask, current=after["wm_mean"])
        domain_warnings(model, before, after, reference)
    with stage("write the harmonized NIfTI (gzip)"):
        nib.save(nib.Nifti1Image(image, nib.load(preproc).affine), out / "harmonized.nii.gz")
    with stage("subject report figures"):
        from harmonize_bids.qc.figures import (
            plot_before_after,
            plot_histograms,
            plot_mask_overlay,
        )

        plot_mask_overlay(volume, mask, out / "mask.png")
        plot_before_after(volume, image, mask, out / "ba.png", labels=("in", "out"))
        plot_histograms({"in": volume, "out": image}, mask, out / "hist.png")


def group_stages(output: Path) -> None:
    import numpy as np

    from harmonize_bids.qc import metrics
    from harmonize_bids.qc.discovery import find_participant_outputs, load_outputs
    from harmonize_bids.qc.paired import compare_to_target

    images = find_participant_outputs(output)
    loaded = {image.stem: load_outputs(image) for image in images}
    labels = {}
    for stem, volumes in loaded.items():
        with stage(f"group: segment {stem} preproc"):
            labels[stem, "preproc"] = metrics.segment_tissues(volumes.preproc, volumes.mask)
        # as the group level: an image written unchanged (at the target field) is segmented once
        if np.array_equal(volumes.preproc, volumes.harmonized):
            labels[stem, "harmonized"] = labels[stem, "preproc"]
            continue
        with stage(f"group: segment {stem} harmonized"):
            labels[stem, "harmonized"] = metrics.segment_tissues(volumes.harmonized, volumes.mask)
    source, target = (loaded[s] for s in sorted(loaded))  # ses-1p5T, ses-3T
    from harmonize_bids.image.register import register_arrays

    with stage("group: register the pair (rigid)"):
        registered = register_arrays(
            source.preproc, target.preproc, source.affine, target.affine, fixed_mask=source.mask
        )
    with stage("group: segment the registered target"):
        labels_target = metrics.segment_tissues(registered, source.mask)
    source_stem = sorted(loaded)[0]
    with stage("group: paired metrics (MSE, AHD, volumes, Dice, HD95)"):
        for key in ("preproc", "harmonized"):
            compare_to_target(
                getattr(source, key),
                registered,
                source.mask,
                labels_target,
                labels=labels[source_stem, key],
            )
    with stage("group: histograms and through-plane"):
        for volumes in loaded.values():
            metrics.brain_histogram(volumes.harmonized, volumes.mask)
            metrics.through_plane_consistency(volumes.harmonized, volumes.mask)


def table(title: str, rows: list[tuple[str, float, float]]) -> str:
    lines = [f"### {title}", "", "| stage | wall (s) | CPU (s) |", "|---|---|---|"]
    lines += [f"| {name} | {wall:.1f} | {cpu:.1f} |" for name, wall, cpu in rows]
    total = (sum(r[1] for r in rows), sum(r[2] for r in rows))
    lines.append(f"| **sum** | **{total[0]:.1f}** | **{total[1]:.1f}** |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from harmonize_bids.choices import DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("profile-work"))
    parser.add_argument("--sampler", choices=SAMPLERS, default=DEFAULT_SAMPLER)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--output", type=Path, help="also write the tables here (markdown)")
    args = parser.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    shutil.rmtree(args.work, ignore_errors=True)
    bids = args.work / "bids"
    subprocess.run(
        [
            str(bin_dir / "harmonize-bids-phantom"),
            str(bids),
            "--subjects",
            "1",
            "--seed",
            "3000",
            "--size",
            "full",
            "--lesion-fraction",
            "1",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    load = os.getloadavg()[0]
    participant_stages(bids, args.work, args.sampler, args.steps)
    steps = ["--sampler", args.sampler, "--steps", str(args.steps)]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    run = [str(bin_dir / "harmonize-bids"), str(bids), str(args.work / "out")]
    cold_participant = cold(
        [
            *run,
            "participant",
            "-w",
            str(args.work / "w"),
            "--session-label",
            "1p5T",
            "--nprocs",
            "2",
            *steps,
        ],
        env,
    )
    cold(
        [
            *run,
            "participant",
            "-w",
            str(args.work / "w"),
            "--session-label",
            "3T",
            "--nprocs",
            "2",
        ],
        env,
    )
    cold_group = cold([*run, "group", "-w", str(args.work / "w"), "--nprocs", "2"], env)
    group_stages(args.work / "out")
    participant = [s for s in STAGES if not s[0].startswith("group:")]
    group = [s for s in STAGES if s[0].startswith("group:")]
    text = [
        f"Command: `python benchmarks/stage_profile.py {' '.join(argv or sys.argv[1:])}`; "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, load average "
        f"{load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        table("Participant level, one full-size 1.5 T image, stage by stage", participant),
        table("Group level, stage by stage (2 images, 1 travelling pair)", group),
        "### Cold runs (fresh process, empty work directory)",
        "",
        "| run | wall (s) | CPU (s) | exit code |",
        "|---|---|---|---|",
        f"| participant, the 1.5 T image | {cold_participant[0]:.1f} | "
        f"{cold_participant[1]:.1f} | {cold_participant[2]} |",
        f"| group, 2 images and their pair | {cold_group[0]:.1f} | {cold_group[1]:.1f} | "
        f"{cold_group[2]} |",
        "",
    ]
    report = "\n".join(text)
    print(report)
    if args.output:
        args.output.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
