"""`harmonize-bids-train BIDS_DIR MODEL_DIR --source-field 1.5 --target-field 3`.

Parses the options into a :class:`~harmonize_bids.training.TrainingRequest` and runs the
training level. Run it under `torchrun --nproc_per_node N -m harmonize_bids.cli.train ...`
to use several processes or GPUs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from ..bids import load_bids_filters
from ..choices import DEFAULT_REGISTRATION, REGISTRATIONS, SKULL_STRIP_METHODS, Direction
from ..errors import UsageError
from .common import run_entry_point
from .parser import (
    ExitCodeParser,
    add_selection_arguments,
    at_least_one,
    device,
    field_strength,
    non_negative_int,
    positive_float,
    positive_int,
)


def build_parser() -> argparse.ArgumentParser:
    parser = ExitCodeParser(
        prog="harmonize-bids-train",
        description="Train a harmonization model on paired (travelling-subject) T1w data.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "bids_dir",
        type=Path,
        metavar="BIDS_DIR",
        help="BIDS dataset with subjects scanned at both field strengths",
    )
    parser.add_argument(
        "model_dir", type=Path, metavar="MODEL_DIR", help="the model folder to write"
    )
    parser.add_argument(
        "--version", action="version", version=f"harmonize-bids-train {__version__}"
    )
    parser.add_argument(
        "--source-field",
        type=field_strength,
        required=True,
        metavar="{1.5,3}",
        help="field strength the model maps from",
    )
    parser.add_argument(
        "--target-field",
        type=field_strength,
        required=True,
        metavar="{1.5,3}",
        help="field strength the model maps to",
    )
    add_selection_arguments(parser)
    parser.add_argument(
        "--skull-strip",
        choices=SKULL_STRIP_METHODS,
        default="deepbet",
        help="skull stripping, as for harmonize-bids",
    )
    parser.add_argument(
        "--registration",
        choices=REGISTRATIONS,
        default=DEFAULT_REGISTRATION,
        help="how each target scan is brought onto its source scan's grid: ANTs "
        "rigid (default), ANTs affine then SyN (the paper's), or none (scanner "
        "coordinates alone, for sessions acquired in one head position or aligned "
        "beforehand)",
    )
    parser.add_argument(
        "-w",
        "--work-dir",
        type=Path,
        help="prepared pairs and checkpoints (default: MODEL_DIR.work); both "
        "directions can share one, reusing the preprocessing",
    )
    parser.add_argument("--iterations", type=positive_int, default=50_000, help="optimizer steps")
    parser.add_argument(
        "--batch-size", type=positive_int, default=16, help="slices per step per process"
    )
    parser.add_argument("--lr", type=positive_float, default=1e-4, help="AdamW learning rate")
    parser.add_argument(
        "--lr-decay-iterations",
        type=non_negative_int,
        default=0,
        help="lower the learning rate linearly towards zero over the last N "
        "iterations (0: constant); a constant-rate run can be resumed "
        "with a decay to anneal it",
    )
    parser.add_argument(
        "--patch-size",
        type=positive_int,
        help="train on random square patches of this size (default: whole brain-box slices)",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        metavar="MODEL_DIR",
        help="fine-tune this model folder of the same direction (e.g. a "
        "bundled one: 'bundled') instead of starting from random weights; "
        "its network and schedule are kept",
    )
    parser.add_argument(
        "--lesion-masks",
        type=Path,
        metavar="DERIVATIVES_DIR",
        help="BIDS derivatives folder with lesion masks of the source sessions "
        "(sub-X[/ses-Y]/anat/*_label-lesion_mask.nii.gz, in the T1w's "
        "space; a session without one has no lesions); the loss then "
        "counts lesion voxels --lesion-weight times",
    )
    parser.add_argument(
        "--lesion-weight",
        type=at_least_one,
        default=10.0,
        help="loss weight of lesion voxels, with --lesion-masks (1: as any voxel)",
    )
    parser.add_argument(
        "--prediction-type",
        choices=("epsilon", "v_prediction"),
        default="v_prediction",
        help="what the network predicts (epsilon: the paper)",
    )
    parser.add_argument(
        "--context-slices",
        type=non_negative_int,
        default=0,
        help="neighbouring source slices on each side as extra channels",
    )
    parser.add_argument(
        "--checkpoint-every", type=positive_int, default=500, help="iterations between checkpoints"
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="fraction of slices held out for the validation loss",
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="preprocess and register the pairs into the work dir, then stop "
        "(e.g. on CPU nodes before training on a GPU)",
    )
    parser.add_argument(
        "--keep-all-pairs",
        action="store_true",
        help="train on every prepared pair, also those whose intensity "
        "scaling looks wrong (excluded by default, with a warning)",
    )
    parser.add_argument(
        "--calibrate-output",
        action="store_true",
        help="after training, fit a monotone intensity map of the model's outputs of the "
        "travelling subjects onto their target scans, and the share of its change to the "
        "source that fits them best, and store both in MODEL_DIR (calibration.json; "
        "applied to every output, and in the cross-validation's folds)",
    )
    parser.add_argument(
        "--cv-folds",
        type=non_negative_int,
        default=4,
        help="before training on every pair, train K models each leaving out 1/K of the "
        "subjects and compare them on the left-out pairs with Original and histogram "
        "matching (MODEL_DIR/cross_validation.tsv and .html); 0: skip",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in the work dir"
    )
    parser.add_argument(
        "--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N, mps"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed")
    parser.add_argument("--name", help="model name (default: from the direction)")
    parser.add_argument(
        "--sloppy", action="store_true", help="tiny network and coarse preprocessing, for tests"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging; tracebacks on errors"
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    options = build_parser().parse_args(argv)
    if options.source_field == options.target_field:
        raise UsageError("--source-field and --target-field must differ.")
    if options.cv_folds == 1:
        raise UsageError("--cv-folds must be 0 (no cross-validation) or at least 2.")
    if not 0.0 <= options.val_fraction < 1.0:
        raise UsageError(f"--val-fraction {options.val_fraction} must be in [0, 1).")
    return options


def main(argv: list[str] | None = None) -> int:
    return run_entry_point(parse_args, run, argv, prog="harmonize-bids-train")


def run(options: argparse.Namespace) -> int:
    from ..model.training import TrainingSchedule
    from ..training import TrainingRequest, run_training

    model_dir = options.model_dir.absolute()
    work_dir = (options.work_dir or model_dir.with_name(model_dir.name + ".work")).absolute()
    schedule = TrainingSchedule(
        iterations=options.iterations,
        batch_size=options.batch_size,
        lr=options.lr,
        lr_decay_iterations=options.lr_decay_iterations,
        patch_size=options.patch_size,
        lesion_weight=options.lesion_weight if options.lesion_masks else 1.0,
        checkpoint_every=options.checkpoint_every,
        val_fraction=options.val_fraction,
        seed=options.seed,
    )
    return run_training(
        TrainingRequest(
            bids_dir=options.bids_dir.absolute(),
            model_dir=model_dir,
            work_dir=work_dir,
            direction=Direction(options.source_field, options.target_field),
            schedule=schedule,
            participant_labels=tuple(options.participant_label),
            session_labels=tuple(options.session_label),
            bids_filters=load_bids_filters(options.bids_filter_file),
            skip_bids_validation=options.skip_bids_validation,
            skull_strip=options.skull_strip,
            registration=options.registration,
            init_from=options.init_from,
            lesion_masks=options.lesion_masks,
            keep_all_pairs=options.keep_all_pairs,
            prepare_only=options.prepare_only,
            resume=options.resume,
            device=options.device,
            name=options.name,
            prediction_type=options.prediction_type,
            context_slices=options.context_slices,
            cv_folds=options.cv_folds,
            calibrate_output=options.calibrate_output,
            sloppy=options.sloppy,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
