"""Participant level: check, discover, plan, build and run the nipype graph, report.

`harmonize-bids ... participant` parses its options into a :class:`ParticipantSettings`
and calls :func:`run_participant_level`. Every input check happens before anything is
written. One failing image does not stop the others: nipype runs every branch it can,
and the run ends with a per-image summary built from the crash files of this run; the
exit code names the worst problem.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from .adaptation import (
    REFERENCE_AUTO,
    plan_references,
    plan_scanner_maps,
    reference_candidates,
)
from .atomic import write_text
from .bids import (
    ReferencePlan,
    ScannerMapPlan,
    T1wImage,
    ValidationReport,
    check_paths,
    check_t1w_file,
    create_output_dir,
    discover_t1w,
    format_plan,
    load_layout,
    validate_bids,
)
from .choices import (
    DEFAULT_EVEN_OUT_SLICES,
    DEFAULT_SCANNER_MAP,
    DEFAULT_SLICE_PLANES,
    Direction,
)
from .derivatives import init_output_dataset
from .errors import (
    InvalidBIDSError,
    MissingInputError,
    NoMatchingImagesError,
    ProcessingError,
    UsageError,
)
from .logs import WORKER_PRELOAD
from .progress import WorkflowProgress

LOGGER = logging.getLogger(__name__)
#: Seconds between nipype MultiProc polls of its workers (its default: 2).
MULTIPROC_POLL_SECONDS = 0.2
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
    participant_labels: list[str] = field(default_factory=list)
    session_labels: list[str] = field(default_factory=list)
    bids_filters: dict = field(default_factory=dict)
    source_field: float | None = None
    skip_bids_validation: bool = False
    dry_run: bool = False
    target_reference: str = REFERENCE_AUTO  # "auto", "none" or a path
    reference_images: int = 4
    scanner_map: str = DEFAULT_SCANNER_MAP  # auto, on or off
    slice_planes: tuple[str, ...] = DEFAULT_SLICE_PLANES
    even_out_slices: bool = DEFAULT_EVEN_OUT_SLICES


@dataclass
class RunSummary:
    """Which images finished and which failed (with the one-line reason)."""

    finished: list[T1wImage] = field(default_factory=list)
    failed: dict[T1wImage, str] = field(default_factory=dict)


def run_participant_level(settings: ParticipantSettings) -> int:
    """Check every input before anything is written, then run; returns the exit code.

    A problem with one image (invalid file, unknown field strength, failed processing)
    skips that image; the others still run, and the exit code names the worst problem:
    1 (processing failed) before 16 (invalid BIDS) before 66 (input missing).
    """
    bids_dir, output_dir = settings.bids_dir, settings.output_dir
    check_paths(bids_dir, output_dir)
    check_plugin(settings.plugin)
    if settings.skip_bids_validation:
        LOGGER.info("BIDS validation skipped (--skip-bids-validation)")
        validation = ValidationReport()
    else:
        validation = validate_bids(bids_dir)
    layout = load_layout(bids_dir)
    try:
        found = discover_t1w(
            layout,
            participant_labels=settings.participant_labels,
            session_labels=settings.session_labels,
            bids_filters=settings.bids_filters,
            source_field=settings.source_field,
        )
    except (MissingInputError, NoMatchingImagesError) as error:
        if not validation.errors:
            raise
        code, where = validation.errors[0]
        raise InvalidBIDSError(
            f"{error} The BIDS validator reports {code} at {where}; fix the dataset or pass "
            "--skip-bids-validation."
        ) from None
    problems = {MissingInputError.exit_code: list(found.skipped.values())}
    images, unusable = [], []
    for image in found.images:
        try:  # a missing, unreadable or cropped file: our own reason before the validator's
            check_t1w_file(image.path)
        except (MissingInputError, ProcessingError) as error:
            problems.setdefault(error.exit_code, []).append(str(error))
            unusable.append(image)
            continue
        invalid = validation.errors_for(image, bids_dir)
        if invalid:
            problems.setdefault(InvalidBIDSError.exit_code, []).append(
                f"{image.path}: the BIDS validator reports {', '.join(sorted(set(invalid)))}. "
                "Fix or replace the file, or exclude it with --bids-filter-file."
            )
        else:
            images.append(image)
    elsewhere = validation.errors_elsewhere(unusable, bids_dir)
    if elsewhere and not any(problems.get(InvalidBIDSError.exit_code, [])):
        problems[InvalidBIDSError.exit_code] = [
            f"BIDS validator: {code} at {where} (not a selected T1w; processing goes on)"
            for code, where in elsewhere
        ]
    for reasons in problems.values():
        for reason in reasons:
            LOGGER.error("Skipped: %s", reason)
    if not images:
        worst = {
            ProcessingError.exit_code: ProcessingError,
            InvalidBIDSError.exit_code: InvalidBIDSError,
        }.get(exit_code(problems), MissingInputError)
        raise worst(
            "No image left to process: "
            + next(reason for reasons in problems.values() for reason in reasons)
        )
    LOGGER.info(
        "Plan: %d T1w image(s), target %g T\n%s",
        len(images),
        settings.target_field,
        format_plan(images, bids_dir=bids_dir, target_field=settings.target_field),
    )
    model_dir = resolve_model(images, settings)
    LOGGER.info("Model: %s", model_dir or "none needed (every image is at the target field)")
    candidates = reference_candidates(settings, layout, validation)
    references = plan_references(images, settings, candidates, model_dir)
    scanner_maps = plan_scanner_maps(images, settings, candidates, model_dir)
    if settings.dry_run:
        LOGGER.info("Dry run: nothing processed, nothing written.")
        return exit_code(problems)
    summary = run_participant(images, settings, model_dir, references, scanner_maps)
    LOGGER.info(
        "Finished %d of %d image(s); outputs in %s",
        len(summary.finished),
        len(images),
        output_dir,
    )
    for image, reason in summary.failed.items():
        LOGGER.error("FAILED %s: %s", image.relative_to(bids_dir), reason)
    if summary.failed:
        return ProcessingError.exit_code
    return exit_code(problems)


def exit_code(problems: dict[int, list[str]]) -> int:
    """The worst of the problems that skipped images: 1 before 16 before 66; 0 without
    any."""
    for code in (
        ProcessingError.exit_code,
        InvalidBIDSError.exit_code,
        MissingInputError.exit_code,
    ):
        if problems.get(code):
            return code
    return 0


def check_plugin(plugin: dict | None) -> None:
    """Refuse, before any work, a nipype plugin that nipype lacks or one that returns
    before its jobs end (the graph plugins: SLURMGraph, SGEGraph, ...), which would
    leave this level nothing to verify and report on."""
    if plugin is None:
        return
    from nipype.pipeline import plugins
    from nipype.pipeline.plugins.base import GraphPluginBase

    name = plugin["plugin"]
    found = getattr(plugins, f"{name}Plugin", None)
    if not isinstance(found, type):
        raise UsageError(
            f"--use-plugin: nipype has no plugin {name!r}; use MultiProc, Linear or a "
            "cluster plugin such as SLURM (docs/hpc/nipype_slurm.yml)."
        )
    if issubclass(found, GraphPluginBase):
        raise UsageError(
            f"--use-plugin: nipype's {name} plugin submits the whole graph and returns "
            "before its jobs finish, so harmonize-bids could neither wait for the outputs "
            "nor report on them. Use plugin: SLURM (docs/hpc/nipype_slurm.yml), which "
            "waits for every job, or one participant per job (docs/hpc/"
            "harmonize_bids_array.sbatch)."
        )


def login_name() -> str:
    """The user name nipype's batch plugins put in job names; the uid when there is none
    (a container run as a uid the image's /etc/passwd does not list)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def resolve_model(images: list[T1wImage], settings: ParticipantSettings) -> Path | None:
    """Check, before any work, that a usable model exists for the direction needed."""
    from .model.folder import ModelFolderError, bundled_model_dir, check_model_folder

    sources = sorted({i.field_strength for i in images} - {settings.target_field})
    if not sources:
        return None
    (source,) = sources  # two supported fields: at most one other than the target
    model_dir = settings.model_dir or bundled_model_dir(source, settings.target_field)
    if model_dir is None:
        raise MissingInputError(
            f"No bundled model for {Direction(source, settings.target_field)} in this version; "
            "pass --model DIR (train one with harmonize-bids-train)."
        )
    try:
        check_model_folder(model_dir, source_field=source, target_field=settings.target_field)
    except ModelFolderError as error:
        raise MissingInputError(str(error)) from None
    return model_dir


def run_participant(
    images: list[T1wImage],
    settings: ParticipantSettings,
    model_dir: Path | None,
    references: dict[str, ReferencePlan] | None = None,
    scanner_maps: dict[str, ScannerMapPlan] | None = None,
) -> RunSummary:
    """Preprocess and harmonize each image into OUTPUT_DIR; never raises for one image.

    ``model_dir``, ``references`` and ``scanner_maps`` are what :func:`resolve_model`,
    :func:`plan_references` and :func:`plan_scanner_maps` returned for these images and
    settings.
    """
    from .model.folder import read_preprocessing
    from .workflows.base import (
        executed_node_names,
        image_workflow_name,
        init_harmonize_bids_wf,
    )

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
        preprocessing=read_preprocessing(model_dir) if model_dir else None,
        references=references,
        scanner_maps=scanner_maps,
        slice_planes=settings.slice_planes,
        even_out_slices=settings.even_out_slices,
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
        # nipype polls its workers every 2 s by default: up to 2 s lost after each node.
        workflow.config["execution"]["poll_sleep_duration"] = MULTIPROC_POLL_SECONDS
    plugin_args.setdefault(
        "status_callback",
        WorkflowProgress(
            executed_node_names(workflow),
            {image_workflow_name(image): image.path.name for image in images},
            LOGGER,
        ),
    )
    # nipype's batch plugins (SLURM, SGE, PBS, LSF, ...) name their jobs after
    # os.environ["LOGNAME"], which cron jobs, containers and some schedulers leave unset.
    os.environ.setdefault("LOGNAME", login_name())
    LOGGER.info(
        "Running %d image(s) with nipype %s; work dir %s",
        len(images),
        plugin["plugin"],
        settings.work_dir,
    )
    # nipype runs a full garbage collection before each submission; with torch and the
    # layout loaded that is 0.4 s a time. Objects alive now are never garbage: freeze them.
    gc.freeze()
    try:
        workflow.run(plugin=plugin["plugin"], plugin_args=plugin_args)
    except RuntimeError as error:  # nipype: some nodes crashed; the rest finished
        LOGGER.debug("nipype: %s", error)
    finally:
        gc.unfreeze()
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
