"""Participant level: build and run the nipype graph, then report what finished.

One failing image does not stop the others: nipype runs every branch it can, and the
run ends with a per-image summary built from the crash files of this run.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_text
from .bids import T1wImage, create_output_dir
from .derivatives import init_output_dataset
from .errors import MissingInputError
from .logs import WORKER_PRELOAD

LOGGER = logging.getLogger(__name__)
BUNDLED_MODELS = Path(__file__).parent / "data" / "models"
_EXCEPTION_LINE = re.compile(r"^([\w.]*(?:Error|Exception)): (.+)$")


@dataclass
class ParticipantSettings:
    """Everything the participant level needs, as explicit values."""

    bids_dir: Path
    output_dir: Path
    work_dir: Path
    target_field: float
    model_dir: Path | None
    skull_strip: str
    sampler: str | None
    steps: int | None
    ensemble: int
    seed: int
    device: str
    nprocs: int
    omp_nthreads: int
    mem_gb: float | None
    plugin: dict | None
    sloppy: bool


@dataclass
class RunSummary:
    """Which images finished and which failed (with the one-line reason)."""

    finished: list[T1wImage] = field(default_factory=list)
    failed: dict[T1wImage, str] = field(default_factory=dict)


def bundled_model_dir(source_field: float, target_field: float) -> Path | None:
    """The model folder shipped with the package for a direction, if there is one."""
    folder = BUNDLED_MODELS / f"{source_field:g}T-to-{target_field:g}T".replace(".", "p")
    return folder if (folder / "model.json").is_file() else None


def resolve_model(images: list[T1wImage], settings: ParticipantSettings) -> Path | None:
    """Check, before any work, that a usable model exists for the direction needed."""
    from .model.folder import ModelFolderError, load_model_folder

    sources = sorted({i.field_strength for i in images} - {settings.target_field})
    if not sources:
        return None
    (source,) = sources  # two supported fields: at most one other than the target
    model_dir = settings.model_dir or bundled_model_dir(source, settings.target_field)
    if model_dir is None:
        raise MissingInputError(
            f"No bundled model for {source:g}T->{settings.target_field:g}T in this version; "
            "pass --model DIR (train one with harmonize-bids-train)."
        )
    try:
        load_model_folder(model_dir, source_field=source, target_field=settings.target_field)
    except ModelFolderError as error:
        raise MissingInputError(str(error)) from None
    return model_dir


def run_participant(
    images: list[T1wImage], settings: ParticipantSettings, model_dir: Path | None
) -> RunSummary:
    """Preprocess and harmonize each image into OUTPUT_DIR; never raises for one image.

    ``model_dir`` is what :func:`resolve_model` returned for these images and settings.
    """
    from .workflows.base import image_workflow_name, init_harmonize_bids_wf

    output_dir = create_output_dir(settings.output_dir)
    init_output_dataset(output_dir, bids_dir=settings.bids_dir)
    workflow = init_harmonize_bids_wf(
        images=images,
        bids_dir=settings.bids_dir,
        output_dir=output_dir,
        work_dir=settings.work_dir,
        target_field=settings.target_field,
        model_dir=model_dir,
        skull_strip=settings.skull_strip,
        sampler=settings.sampler,
        steps=settings.steps,
        ensemble=settings.ensemble,
        seed=settings.seed,
        device=settings.device,
        omp_nthreads=settings.omp_nthreads,
        sloppy=settings.sloppy,
    )
    write_text(output_dir / "logs" / "CITATION.md", citation(workflow))
    crash_dir = settings.work_dir / "crash" / time.strftime("%Y%m%d-%H%M%S")
    workflow.config["execution"].update(
        {
            "crashdump_dir": str(crash_dir),
            "crashfile_format": "txt",
            "stop_on_first_crash": False,
            "remove_unnecessary_outputs": False,
        }
    )
    plugin = settings.plugin or {"plugin": "MultiProc", "plugin_args": {}}
    plugin_args = dict(plugin.get("plugin_args") or {})
    if plugin["plugin"] == "MultiProc":
        plugin_args.setdefault("n_procs", settings.nprocs)
        plugin_args.setdefault("raise_insufficient", False)
        # Workers forked from a process whose torch/OpenMP threads already ran can
        # deadlock; forkserver children start from a clean server process.
        plugin_args.setdefault("mp_context", "forkserver")
        # ... and set up their logging as the command line did (no node chatter).
        multiprocessing.get_context("forkserver").set_forkserver_preload([WORKER_PRELOAD])
        if settings.mem_gb:
            plugin_args.setdefault("memory_gb", settings.mem_gb)
    LOGGER.info(
        "Running %d image(s) with nipype %s; work dir %s",
        len(images),
        plugin["plugin"],
        settings.work_dir,
    )
    try:
        workflow.run(plugin=plugin["plugin"], plugin_args=plugin_args)
    except RuntimeError as error:  # nipype: some nodes crashed; the rest finished
        LOGGER.debug("nipype: %s", error)
    failures = read_crash_files(crash_dir)
    summary = RunSummary()
    for image in images:
        reason = failures.get(image_workflow_name(image))
        if reason is None:
            summary.finished.append(image)
        else:
            summary.failed[image] = reason
    write_reports(images, summary, settings, methods=workflow.visit_desc().strip())
    return summary


def write_reports(
    images: list[T1wImage], summary: RunSummary, settings: ParticipantSettings, *, methods: str
) -> None:
    """One sub-X.html per subject; a failing report is logged, never fatal."""
    from .qc.report import write_subject_report

    for subject in sorted({image.subject for image in images}):
        mine = [image for image in images if image.subject == subject]
        try:
            report = write_subject_report(
                settings.output_dir,
                subject,
                mine,
                failed=summary.failed,
                target_field=settings.target_field,
                methods=methods,
            )
        except Exception as error:  # noqa: BLE001 - outputs exist; the report is extra
            LOGGER.warning("Report for sub-%s failed: %s", subject, error)
        else:
            LOGGER.info("Report: %s", report)


def citation(workflow) -> str:
    """logs/CITATION.md from the workflows' methods text."""
    return (
        "# Methods\n\nResults included in this manuscript come from preprocessing and "
        "harmonization performed with harmonize_bids. "
        + workflow.visit_desc().strip()
        + "\n\n# References\n\n"
        "- Durrer A, et al. Diffusion Models for Contrast Harmonization of Magnetic "
        "Resonance Images. MIDL 2023.\n"
        "- Tustison NJ, et al. N4ITK: improved N3 bias correction. IEEE TMI 2010.\n"
        "- Fisch L, et al. deepbet: Fast brain extraction of T1-weighted MRI using "
        "Convolutional Neural Networks. Comput Biol Med 2024.\n"
        "- Isensee F, et al. Automated brain extraction of multisequence MRI using "
        "artificial neural networks. Hum Brain Mapp 2019.\n"
    )


def read_crash_files(crash_dir: Path) -> dict[str, str]:
    """Map each failed image's workflow name to one line: the step and the error."""
    failures: dict[str, str] = {}
    for crash_file in sorted(crash_dir.glob("crash-*.txt")):
        text = crash_file.read_text(errors="replace")
        node = re.search(r"^Node: (\S+)", text, flags=re.MULTILINE)
        if node is None:
            continue
        path = node.group(1).split(".")
        image_wf = next((part for part in path if part.startswith("t1w_")), None)
        if image_wf is None or image_wf in failures:
            continue
        message = "see " + str(crash_file)
        for line in reversed(text.strip().splitlines()):
            match = _EXCEPTION_LINE.match(line.strip())
            if match:
                message = f"{match.group(2)} (crash file: {crash_file})"
                break
        failures[image_wf] = f"{path[-1]} failed: {message}"
    return failures
