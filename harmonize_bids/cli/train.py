"""`harmonize-bids-train BIDS_DIR MODEL_DIR --source-field 1.5 --target-field 3`.

Trains a direction-specific model on travelling subjects (each scanned at both field
strengths): pairs their sessions, preprocesses both as the participant level does,
registers the target to the source, and runs the diffusion training loop. Run it
under `torchrun --nproc_per_node N -m harmonize_bids.cli.train ...` to use several
processes or GPUs; rank 0 prepares the data, writes checkpoints and the model folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .. import __version__
from ..bids import (
    discover_t1w,
    load_bids_filters,
    load_layout,
    pair_sessions,
    validate_bids,
)
from ..errors import InvalidBIDSError, MissingInputError, UsageError
from .common import LOGGER, run_entry_point
from .parser import (
    SKULL_STRIP_METHODS,
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
        choices=("syn", "none"),
        default="syn",
        help="how each target scan is brought onto its source scan's grid: "
        "ANTs affine then SyN, or none (scanner coordinates alone, for "
        "sessions acquired in one head position or aligned beforehand)",
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
        "--calibrate",
        action="store_true",
        help="do not train: harmonize every pair of BIDS_DIR with the existing "
        "model MODEL_DIR (default sampler) and store in it the output "
        "calibration that maps its outputs' intensity quantiles onto the "
        "targets' (at least 3 pairs the model did not train on)",
    )
    parser.add_argument(
        "--keep-all-pairs",
        action="store_true",
        help="train on every prepared pair, also those whose intensity "
        "scaling looks wrong (excluded by default, with a warning)",
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
    if not 0.0 <= options.val_fraction < 1.0:
        raise UsageError(f"--val-fraction {options.val_fraction} must be in [0, 1).")
    return options


def main(argv: list[str] | None = None) -> int:
    return run_entry_point(parse_args, run, argv, prog="harmonize-bids-train")


def initial_model(options: argparse.Namespace):
    """The model to fine-tune (``--init-from``; 'bundled' = the packaged one), or None."""
    from ..model.folder import ModelFolderError, load_model_folder
    from ..participant import bundled_model_dir

    if options.init_from is None:
        return None
    path = options.init_from
    if str(path) == "bundled":
        path = bundled_model_dir(options.source_field, options.target_field)
        if path is None:
            raise MissingInputError(
                f"No bundled {options.source_field:g}T->{options.target_field:g}T model to "
                "fine-tune; pass --init-from MODEL_DIR or leave it out."
            )
    try:
        return load_model_folder(
            path, source_field=options.source_field, target_field=options.target_field
        )
    except ModelFolderError as error:
        raise MissingInputError(f"--init-from: {error}") from None


def run(options: argparse.Namespace) -> int:
    from ..model.training import train
    from ..training_data import prepare_pairs, wait_for_pairs

    init_model = initial_model(options)
    bids_dir = options.bids_dir.absolute()
    model_dir = options.model_dir.absolute()
    work_dir = (options.work_dir or model_dir.with_name(model_dir.name + ".work")).absolute()
    bids_filters = load_bids_filters(options.bids_filter_file)
    rank = int(os.environ.get("RANK", "0"))
    if not options.skip_bids_validation and rank == 0:
        validation = validate_bids(bids_dir)
        if validation.errors:
            code, where = validation.errors[0]
            raise InvalidBIDSError(
                f"{bids_dir}: the BIDS validator reports {code} at {where}; "
                "fix it or pass --skip-bids-validation."
            )
    found = discover_t1w(
        load_layout(bids_dir),
        participant_labels=options.participant_label,
        session_labels=options.session_label,
        bids_filters=bids_filters,
    )
    for reason in found.skipped.values():
        LOGGER.warning("Skipped: %s", reason)
    pairs = pair_sessions(
        found.images, source_field=options.source_field, target_field=options.target_field
    )
    LOGGER.info(
        "%d travelling subject(s): %s",
        len(pairs),
        ", ".join(f"sub-{pair.subject}" for pair in pairs),
    )
    prepare = prepare_pairs if rank == 0 else wait_for_pairs
    prepared = prepare(
        pairs,
        work_dir / "pairs",
        skull_strip=options.skull_strip,
        sloppy=options.sloppy,
        registration=options.registration,
    )
    if options.prepare_only:
        LOGGER.info(
            "Prepared %d pair(s) in %s; --prepare-only: not training.",
            len(prepared),
            work_dir / "pairs",
        )
        return 0
    loaded = {pair.subject: pair.load() for pair in prepared}
    excluded = {} if options.keep_all_pairs else screen_pairs(prepared, loaded)
    kept = {pair.subject for pair in prepared if f"sub-{pair.subject}" not in excluded}
    if not kept:
        raise MissingInputError(
            "No prepared pair passed the intensity check (see the warnings "
            "above); fix the skull stripping or pass --keep-all-pairs."
        )
    if options.calibrate:
        return calibrate(
            options,
            [pair for pair in prepared if pair.subject in kept],
            loaded,
            model_dir,
            bids_dir,
            [pair for pair in pairs if pair.subject in kept],
        )
    volumes = [loaded[pair.subject] for pair in prepared if pair.subject in kept]
    lesions = None
    if options.lesion_masks:
        lesions = lesion_masks(
            options.lesion_masks, pairs, [pair for pair in prepared if pair.subject in kept]
        )
    result = train(
        [source for source, _, _ in volumes],
        [target for _, target, _ in volumes],
        [mask for _, _, mask in volumes],
        model_dir,
        work_dir=work_dir / f"checkpoints-{options.source_field:g}T-to-{options.target_field:g}T",
        iterations=options.iterations,
        batch_size=options.batch_size,
        lr=options.lr,
        lr_decay_iterations=options.lr_decay_iterations,
        device=options.device,
        seed=options.seed,
        resume=options.resume,
        checkpoint_every=options.checkpoint_every,
        val_fraction=options.val_fraction,
        patch_size=options.patch_size,
        sloppy=options.sloppy,
        prediction_type=options.prediction_type,
        context_slices=options.context_slices,
        source_field=options.source_field,
        target_field=options.target_field,
        name=options.name,
        training_data=describe_training_data(
            bids_dir, [pair for pair in pairs if pair.subject in kept], excluded
        ),
        init_from=init_model,
        lesions=lesions,
        lesion_weight=options.lesion_weight if options.lesion_masks else 1.0,
    )
    if rank == 0:
        val = f", validation loss {result.val_losses[-1][1]:.4g}" if result.val_losses else ""
        LOGGER.info(
            "Model written to %s after %d iterations%s", result.model_dir, result.iterations, val
        )
    return 0


def calibrate(
    options: argparse.Namespace,
    prepared,
    loaded: dict[str, tuple],
    model_dir: Path,
    bids_dir: Path,
    session_pairs,
) -> int:
    """Fit and store MODEL_DIR's output calibration on the prepared pairs (--calibrate)."""
    import time

    from ..interfaces.harmonize import harmonize_anchored
    from ..model.device import resolve_device
    from ..model.folder import ModelFolderError, load_model_folder, save_model_folder
    from ..model.output_calibration import MIN_PAIRS, fit_calibration
    from ..model.sampling import DEFAULT_SAMPLER, DEFAULT_STEPS

    try:
        model = load_model_folder(
            model_dir, source_field=options.source_field, target_field=options.target_field
        )
    except ModelFolderError as error:
        raise MissingInputError(f"--calibrate: {error}") from None
    if len(prepared) < MIN_PAIRS:
        raise MissingInputError(
            f"--calibrate needs at least {MIN_PAIRS} pairs in {bids_dir}, "
            f"found {len(prepared)}; add travelling subjects."
        )
    model.calibration = None  # fit on the uncalibrated output
    device = resolve_device(options.device)
    start = time.perf_counter()
    triples = []
    for pair in prepared:
        source, target, mask = loaded[pair.subject]
        LOGGER.info("Harmonizing sub-%s for the calibration.", pair.subject)
        output = harmonize_anchored(
            model,
            source,
            mask,
            sampler=DEFAULT_SAMPLER,
            steps=DEFAULT_STEPS,
            seed=options.seed,
            device=device,
        )
        triples.append((output, target, mask))
    model.calibration = fit_calibration(triples)
    record = {
        "dataset": bids_dir.name,
        "subjects": [f"sub-{p.subject}" for p in prepared],
        "sampler": DEFAULT_SAMPLER,
        "steps": DEFAULT_STEPS,
        "seed": options.seed,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    phantom = _phantom_truth(bids_dir, session_pairs)
    if phantom:
        record["phantom_seeds"] = phantom["dataset_seeds"]
    save_model_folder(model, model_dir, meta={"output_calibration": record})
    LOGGER.info("Output calibration from %d pair(s) written to %s.", len(prepared), model_dir)
    return 0


def lesion_masks(derivatives: Path, pairs, prepared) -> list:
    """Each prepared pair's source lesion mask on its grid (None without one)."""
    from ..training_data import find_lesion_mask, load_lesion_mask

    if not derivatives.is_dir():
        raise MissingInputError(
            f"--lesion-masks {derivatives}: no such folder; give the "
            "BIDS derivatives folder that holds the lesion masks."
        )
    sources = {pair.subject: pair.source for pair in pairs}
    masks = []
    for pair in prepared:
        try:
            path = find_lesion_mask(derivatives, sources[pair.subject])
        except ValueError as error:
            raise UsageError(str(error)) from None
        masks.append(None if path is None else load_lesion_mask(path, pair))
    LOGGER.info(
        "Lesion masks for %d of %d training pair(s) from %s.",
        sum(m is not None for m in masks),
        len(masks),
        derivatives,
    )
    return masks


def screen_pairs(prepared, loaded: dict[str, tuple]) -> dict[str, str]:
    """Pairs to leave out of training ('sub-X' -> reason), each logged as a warning.

    ``loaded`` maps each pair's subject to its already loaded volumes.
    """
    from ..training_data import scaling_problems

    excluded = {}
    for pair in prepared:
        problem = scaling_problems(pair, loaded[pair.subject])
        if problem:
            LOGGER.warning(
                "Leaving sub-%s out of training: %s. Check its skull stripping, or "
                "pass --keep-all-pairs.",
                pair.subject,
                problem,
            )
            excluded[f"sub-{pair.subject}"] = problem
    return excluded


def describe_training_data(bids_dir: Path, pairs, excluded: dict[str, str] | None = None) -> dict:
    """What model.json records about the data a model saw (and the pairs left out)."""
    try:
        description = json.loads((bids_dir / "dataset_description.json").read_text())
    except (OSError, ValueError):
        description = {}
    record = {
        "dataset": description.get("Name", bids_dir.name),
        "generated_by": description.get("GeneratedBy", []),
        "subjects": [f"sub-{pair.subject}" for pair in pairs],
        "n_subjects": len(pairs),
        "sessions": {
            f"sub-{pair.subject}": [pair.source.session, pair.target.session] for pair in pairs
        },
    }
    if excluded:
        record["excluded"] = dict(excluded)
    phantom = _phantom_truth(bids_dir, pairs)
    if phantom:
        record["phantom"] = phantom
    return record


def _phantom_truth(bids_dir: Path, pairs) -> dict:
    """Seeds and groups of phantom subjects (``derivatives/phantom``), if the data is one."""
    from ..phantom import truth_file

    subjects = {}
    for pair in pairs:
        sidecar = truth_file(bids_dir, pair.subject, str(pair.source.session), "dseg.json")
        try:
            truth = json.loads(sidecar.read_text())["PhantomTruth"]
        except (OSError, ValueError, KeyError):
            continue
        subjects[f"sub-{pair.subject}"] = {
            "seed": [truth["seed"], truth["subject_index"]],
            "group": truth["group"],
            "size": truth["size"],
            "lesion_volume_ml": truth.get("lesion_volume_ml", 0.0),
        }
    if not subjects:
        return {}
    return {
        "dataset_seeds": sorted({s["seed"][0] for s in subjects.values()}),
        "n_with_lesions": sum(s["group"] == "MS" for s in subjects.values()),
        "subjects": subjects,
    }


if __name__ == "__main__":
    sys.exit(main())
