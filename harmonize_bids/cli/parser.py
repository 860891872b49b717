"""The `harmonize-bids` command line, following the BIDS Apps conventions."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from .. import __version__
from ..choices import (
    DEFAULT_EVEN_OUT_SLICES,
    DEFAULT_SAMPLER,
    DEFAULT_SCANNER_MAP,
    DEFAULT_SLICE_PLANES,
    DEFAULT_STEPS,
    SAMPLERS,
    SCANNER_MAP_SUBJECTS_MAX,
    SCANNER_MAP_SUBJECTS_MIN,
    SCANNER_MAP_TARGET_FIELDS,
    SKULL_STRIP_METHODS,
    SLICE_PLANES,
)
from ..errors import UsageError

# Mirrors of harmonize_bids.model's constants (tests check them), so --help needs no torch.
DDPM_STEPS = 1000
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ExitCodeParser(argparse.ArgumentParser):
    """argparse that raises UsageError (exit 64) instead of exiting with code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def field_strength(text: str) -> float:
    """'1.5' or '3' (also '3.0', '1.5T') as tesla."""
    value = text.upper().removesuffix("T")
    try:
        tesla = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not 1.5 or 3") from None
    if tesla not in (1.5, 3.0):
        raise argparse.ArgumentTypeError(f"{text!r} is not 1.5 or 3")
    return tesla


def _number(cast: type, *, above: float, inclusive: bool, rule: str):
    """An argparse type: `cast(text)` that must be > above (>= when inclusive)."""
    noun = "an integer" if cast is int else "a number"

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if value < above or (value == above and not inclusive):
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
        return value

    return parse


positive_int = _number(int, above=1, inclusive=True, rule="at least 1")
non_negative_int = _number(int, above=0, inclusive=True, rule="0 or more")
positive_float = _number(float, above=0, inclusive=False, rule="positive")
at_least_one = _number(float, above=1, inclusive=True, rule="at least 1")


def device(text: str) -> str:
    if not _DEVICE_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return text


def add_selection_arguments(group) -> None:
    """Options that choose T1w images, shared by harmonize-bids and harmonize-bids-train."""
    group.add_argument(
        "--participant-label",
        "--participant_label",
        nargs="+",
        default=[],
        metavar="LABEL",
        help="participants to process (with or without 'sub-'); default: all",
    )
    group.add_argument(
        "--session-label",
        "--session_label",
        nargs="+",
        default=[],
        metavar="LABEL",
        help="sessions to process (with or without 'ses-')",
    )
    group.add_argument(
        "--bids-filter-file",
        type=Path,
        metavar="FILE",
        help='JSON filters for the T1w query, e.g. {"t1w": {"acquisition": '
        '"mprage"}}; null means the entity must be absent',
    )
    group.add_argument(
        "--skip-bids-validation",
        action="store_true",
        help="do not run the BIDS validator on BIDS_DIR",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = ExitCodeParser(
        prog="harmonize-bids",
        description="Harmonize T1w MPRAGE contrast between 1.5 T and 3 T with a conditional "
        "diffusion model (Durrer et al., MIDL 2023), as a BIDS App.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("bids_dir", type=Path, metavar="BIDS_DIR", help="the raw BIDS dataset")
    parser.add_argument(
        "output_dir",
        type=Path,
        metavar="OUTPUT_DIR",
        help="where derivatives go (outside BIDS_DIR, or under its derivatives/)",
    )
    parser.add_argument(
        "analysis_level",
        choices=("participant", "group"),
        help="participant: harmonize each image; group: dataset-wide QC",
    )
    parser.add_argument("--version", action="version", version=f"harmonize-bids {__version__}")

    add_selection_arguments(parser.add_argument_group("selecting images"))

    fields = parser.add_argument_group("field strength")
    fields.add_argument(
        "--target-field",
        type=field_strength,
        default=3.0,
        metavar="{1.5,3}",
        help="field strength whose contrast the outputs take",
    )
    fields.add_argument(
        "--source-field",
        type=field_strength,
        metavar="{1.5,3}",
        help="field strength of images whose sidecar lacks MagneticFieldStrength",
    )

    model = parser.add_argument_group("model and sampling")
    model.add_argument(
        "--model",
        type=Path,
        metavar="DIR",
        help="model folder; default: the bundled model for the direction",
    )
    model.add_argument(
        "--sampler",
        choices=SAMPLERS,
        help="ddpm: all 1000 steps (the paper); ddim, dpm (DPM-Solver++): "
        f"--steps steps; default: {DEFAULT_SAMPLER}",
    )
    model.add_argument(
        "--steps", type=positive_int, help=f"sampling steps for ddim/dpm; default: {DEFAULT_STEPS}"
    )
    model.add_argument(
        "--ensemble", type=positive_int, default=1, help="average this many samples per image"
    )
    model.add_argument(
        "--slice-planes",
        nargs="+",
        choices=list(SLICE_PLANES),
        default=list(DEFAULT_SLICE_PLANES),
        metavar="PLANE",
        help="apply the 2D model along these planes (sagittal, coronal, axial) and average them",
    )
    model.add_argument(
        "--even-out-slices",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_EVEN_OUT_SLICES,
        help="smooth the slow brightness changes between the output's slices (stripes)",
    )
    model.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="random seed; the same seed gives the same output",
    )
    model.add_argument(
        "--device",
        type=device,
        default="auto",
        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N",
    )

    reference = parser.add_argument_group("study adaptation")
    reference.add_argument(
        "--target-reference",
        default="auto",
        metavar="{auto,none,PATH}",
        help="what the target field looks like in this study: auto pools other "
        "participants' target-field scans of BIDS_DIR (never the participant's own); none "
        "uses the model's training scanners; PATH a reference JSON (as a run writes into "
        "its logs), a target-field T1w NIfTI or a folder of them",
    )
    reference.add_argument(
        "--reference-images",
        type=positive_int,
        default=4,
        help="with --target-reference auto: at most this many scans, chosen evenly and the "
        "same in every job",
    )
    reference.add_argument(
        "--scanner-map",
        action=argparse.BooleanOptionalAction,
        help="match the output to the input mapped through this study's own scanner pair: "
        "a quantile map fitted on other participants scanned at both fields (from "
        f"{SCANNER_MAP_SUBJECTS_MIN}, at most {SCANNER_MAP_SUBJECTS_MAX}, chosen evenly; "
        "never the participant's own scans); without them the model's output stands and "
        "the sidecar says why. Offered for a target field of "
        + " or ".join(f"{f:g} T" for f in SCANNER_MAP_TARGET_FIELDS)
        + " only. Default: there, when the dataset has them; --scanner-map: refused "
        "elsewhere; --no-scanner-map: never",
    )

    preproc = parser.add_argument_group("preprocessing")
    preproc.add_argument(
        "--skull-strip",
        choices=SKULL_STRIP_METHODS,
        default="deepbet",
        help="hdbet needs `pip install harmonize-bids[hdbet]`; none: the "
        "input is already skull stripped",
    )

    run = parser.add_argument_group("running")
    run.add_argument(
        "-w",
        "--work-dir",
        type=Path,
        default=Path("work"),
        help="intermediate files; re-running with the same work dir resumes",
    )
    run.add_argument(
        "--nprocs",
        "--n-cpus",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="processes for nipype's MultiProc",
    )
    run.add_argument(
        "--omp-nthreads",
        type=positive_int,
        help="threads per process (torch, ANTs); default: min(8, nprocs)",
    )
    run.add_argument(
        "--mem-gb", "--mem", type=positive_float, help="memory limit for nipype's scheduler, in GB"
    )
    run.add_argument(
        "--use-plugin",
        type=Path,
        metavar="FILE",
        help="nipype plugin settings (YAML), e.g. SLURM or SGE on a cluster",
    )
    run.add_argument(
        "--sloppy",
        action="store_true",
        help="tiny and fast (4 mm grid, coarse steps), for tests; never for real results",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="validate, discover and log the plan, then stop"
    )
    run.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging; -v also shows tracebacks"
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and cross-check the options; raises UsageError."""
    options = build_parser().parse_args(argv)
    if options.sampler == "ddpm" and options.steps not in (None, DDPM_STEPS):
        raise UsageError(
            f"--sampler ddpm always runs all {DDPM_STEPS} steps; drop --steps or use "
            "--sampler ddim or dpm."
        )
    if options.steps is not None and options.steps > DDPM_STEPS:
        raise UsageError(
            f"--steps {options.steps} exceeds the model's {DDPM_STEPS} training "
            "timesteps; use at most that many."
        )
    options.slice_planes = tuple(p for p in SLICE_PLANES if p in options.slice_planes)
    if options.omp_nthreads is None:
        options.omp_nthreads = min(8, options.nprocs)
    if options.omp_nthreads > options.nprocs:
        raise UsageError(
            f"--omp-nthreads {options.omp_nthreads} exceeds --nprocs {options.nprocs}."
        )
    options.scanner_map = {None: DEFAULT_SCANNER_MAP, True: "on", False: "off"}[
        options.scanner_map
    ]
    if options.scanner_map == "on" and options.target_field not in SCANNER_MAP_TARGET_FIELDS:
        raise UsageError(
            f"--scanner-map is offered for a target field of "
            f"{' or '.join(f'{f:g} T' for f in SCANNER_MAP_TARGET_FIELDS)} only: towards "
            f"{options.target_field:g} T it kept the subjects' differences worse than the "
            "model alone (docs/adaptation.md); drop --scanner-map."
        )
    return options
