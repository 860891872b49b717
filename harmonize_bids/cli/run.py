"""`harmonize-bids BIDS_DIR OUTPUT_DIR {participant,group}`: checks, discovery, plan, run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from ..bids import (
    ValidationReport,
    check_output_dir,
    discover_t1w,
    format_plan,
    load_bids_filters,
    load_layout,
    validate_bids,
)
from ..errors import (
    InvalidBIDSError,
    MissingInputError,
    NoMatchingImagesError,
    ProcessingError,
    UsageError,
)
from ..participant import ParticipantSettings, resolve_model, run_participant
from .common import LOGGER, run_entry_point
from .parser import parse_args


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the BIDS-Apps exit code."""
    return run_entry_point(parse_args, run, argv)


def run(options: argparse.Namespace) -> int:
    """Check every input before anything is written, then run the requested level.

    A problem with one image (invalid file, unknown field strength, failed processing)
    skips that image; the others still run, and the exit code names the worst problem:
    1 (processing failed) before 16 (invalid BIDS) before 66 (input missing).
    """
    bids_dir, output_dir = options.bids_dir.absolute(), options.output_dir.absolute()
    LOGGER.info("harmonize_bids %s, %s level", __version__, options.analysis_level)
    _check_input_files(options)
    bids_filters = load_bids_filters(options.bids_filter_file)
    check_output_dir(bids_dir, output_dir)
    if not bids_dir.is_dir():
        raise MissingInputError(f"BIDS_DIR {bids_dir} does not exist or is not a folder.")
    if options.analysis_level == "group":
        # The group level reads OUTPUT_DIR and only the raw JSON sidecars: no BIDS
        # validation and no pybids discovery, both of which need the raw NIfTI files.
        return _run_group(options, bids_dir, output_dir)
    if options.skip_bids_validation:
        LOGGER.info("BIDS validation skipped (--skip-bids-validation)")
        validation = ValidationReport()
    else:
        validation = validate_bids(bids_dir)
    try:
        found = discover_t1w(
            load_layout(bids_dir),
            participant_labels=options.participant_label,
            session_labels=options.session_label,
            bids_filters=bids_filters,
            source_field=options.source_field,
        )
    except (MissingInputError, NoMatchingImagesError) as error:
        if not validation.errors:
            raise
        code, where = validation.errors[0]
        raise InvalidBIDSError(
            f"{error} The BIDS validator reports {code} at {where}; fix "
            "the dataset or pass --skip-bids-validation."
        ) from None
    problems = {MissingInputError.exit_code: list(found.skipped.values())}
    images = []
    for image in found.images:
        invalid = validation.errors_for(image, bids_dir)
        if invalid:
            problems.setdefault(InvalidBIDSError.exit_code, []).append(
                f"{image.path}: the BIDS validator reports {', '.join(sorted(set(invalid)))}. "
                "Fix or replace the file, or exclude it with --bids-filter-file."
            )
        else:
            images.append(image)
    if validation.errors and not any(problems.get(InvalidBIDSError.exit_code, [])):
        problems[InvalidBIDSError.exit_code] = [
            f"BIDS validator: {code} at {where} (not a selected T1w; processing goes on)"
            for code, where in validation.errors
        ]
    for reasons in problems.values():
        for reason in reasons:
            LOGGER.error("Skipped: %s", reason)
    if not images:
        worst = InvalidBIDSError if problems.get(InvalidBIDSError.exit_code) else MissingInputError
        raise worst(
            "No image left to process: "
            + next(reason for reasons in problems.values() for reason in reasons)
        )
    LOGGER.info(
        "Plan: %d T1w image(s), target %g T\n%s",
        len(images),
        options.target_field,
        format_plan(images, bids_dir=bids_dir, target_field=options.target_field),
    )
    settings = _participant_settings(options, bids_dir, output_dir)
    model_dir = resolve_model(images, settings)
    LOGGER.info("Model: %s", model_dir or "none needed (every image is at the target field)")
    if options.dry_run:
        LOGGER.info("Dry run: nothing processed, nothing written.")
        return _exit_code(problems)
    summary = run_participant(images, settings, model_dir)
    LOGGER.info(
        "Finished %d of %d image(s); outputs in %s", len(summary.finished), len(images), output_dir
    )
    for image, reason in summary.failed.items():
        LOGGER.error("FAILED %s: %s", image.relative_to(bids_dir), reason)
    if summary.failed:
        return ProcessingError.exit_code
    return _exit_code(problems)


def _run_group(options: argparse.Namespace, bids_dir: Path, output_dir: Path) -> int:
    from ..qc.group import GroupSettings, run_group

    run_group(
        GroupSettings(
            bids_dir=bids_dir,
            output_dir=output_dir,
            work_dir=options.work_dir.absolute(),
            nprocs=options.nprocs,
            participant_labels=options.participant_label or (),
            session_labels=options.session_label or (),
            sloppy=options.sloppy,
            dry_run=options.dry_run,
        )
    )
    return 0


def _exit_code(problems: dict[int, list[str]]) -> int:
    for code in (InvalidBIDSError.exit_code, MissingInputError.exit_code):
        if problems.get(code):
            return code
    return 0


def _participant_settings(
    options: argparse.Namespace, bids_dir: Path, output_dir: Path
) -> ParticipantSettings:
    return ParticipantSettings(
        bids_dir=bids_dir,
        output_dir=output_dir,
        work_dir=options.work_dir.absolute(),
        target_field=options.target_field,
        model_dir=options.model.absolute() if options.model else None,
        skull_strip=options.skull_strip,
        sampler=options.sampler,
        steps=options.steps,
        ensemble=options.ensemble,
        seed=options.seed,
        device=options.device,
        nprocs=options.nprocs,
        omp_nthreads=options.omp_nthreads,
        mem_gb=options.mem_gb,
        plugin=_load_plugin_settings(options.use_plugin) if options.use_plugin else None,
        sloppy=options.sloppy,
    )


def _check_input_files(options: argparse.Namespace) -> None:
    if options.model is not None and not options.model.is_dir():
        raise MissingInputError(f"--model {options.model} is not a model folder.")
    if options.use_plugin is not None:
        _load_plugin_settings(options.use_plugin)


def _load_plugin_settings(path: Path) -> dict:
    """Read a nipype plugin file: {plugin: MultiProc|SLURM|..., plugin_args: {...}}."""
    import yaml

    if not path.is_file():
        raise MissingInputError(f"--use-plugin {path} does not exist.")
    try:
        settings = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UsageError(f"--use-plugin {path} is not valid YAML ({error}).") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("plugin"), str):
        raise UsageError(
            f"--use-plugin {path} must name a nipype plugin, e.g. 'plugin: SLURM' with "
            "optional 'plugin_args:'."
        )
    return settings


if __name__ == "__main__":
    sys.exit(main())
