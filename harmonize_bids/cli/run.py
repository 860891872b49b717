"""`harmonize-bids BIDS_DIR OUTPUT_DIR {participant,group}`: parse, then run the level."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from ..bids import load_bids_filters
from ..errors import MissingInputError, UsageError
from ..logs import LOGGER
from .common import run_entry_point
from .parser import parse_args


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the BIDS-Apps exit code."""
    return run_entry_point(parse_args, run, argv)


def run(options: argparse.Namespace) -> int:
    """Read the option files, then hand explicit settings to the requested level."""
    LOGGER.info("harmonize_bids %s, %s level", __version__, options.analysis_level)
    if options.model is not None and not options.model.is_dir():
        raise MissingInputError(f"--model {options.model} is not a model folder.")
    plugin = load_plugin_settings(options.use_plugin) if options.use_plugin else None
    bids_filters = load_bids_filters(options.bids_filter_file)
    bids_dir, output_dir = options.bids_dir.absolute(), options.output_dir.absolute()
    if options.analysis_level == "group":
        from ..bids import check_paths
        from ..qc.group import GroupSettings, run_group

        check_paths(bids_dir, output_dir)
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
    from ..participant import ParticipantSettings, run_participant_level

    reference = options.target_reference
    if reference not in ("auto", "none"):
        reference = str(Path(reference).absolute())
        if not Path(reference).exists():
            raise MissingInputError(
                f"--target-reference {options.target_reference} does not "
                "exist; give a reference JSON, a T1w NIfTI or a folder."
            )
    return run_participant_level(
        ParticipantSettings(
            bids_dir=bids_dir,
            output_dir=output_dir,
            work_dir=options.work_dir.absolute(),
            target_field=options.target_field,
            model_dir=options.model.absolute() if options.model else None,
            skull_strip=options.skull_strip,
            sampler=options.sampler,
            steps=options.steps,
            ensemble=options.ensemble,
            slice_planes=options.slice_planes,
            even_out_slices=options.even_out_slices,
            seed=options.seed,
            device=options.device,
            nprocs=options.nprocs,
            omp_nthreads=options.omp_nthreads,
            mem_gb=options.mem_gb,
            plugin=plugin,
            sloppy=options.sloppy,
            participant_labels=options.participant_label,
            session_labels=options.session_label,
            bids_filters=bids_filters,
            source_field=options.source_field,
            skip_bids_validation=options.skip_bids_validation,
            dry_run=options.dry_run,
            target_reference=reference,
            reference_images=options.reference_images,
            scanner_map=options.scanner_map,
        )
    )


def load_plugin_settings(path: Path) -> dict:
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
