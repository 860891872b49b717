"""Training level: travelling subjects in, a model folder and its cross-validation out.

`harmonize-bids-train` parses its options into a :class:`TrainingRequest` and calls
:func:`run_training`: validate and discover the dataset, pair each subject's source-
and target-field scans, preprocess and align them (training_data), leave out pairs
whose intensity scale looks broken, match every source to a target-field reference built
from the *other* subjects' target-field scans (as the participant level does), run a
k-fold cross-validation against Original and histogram matching if asked, and train the
final model on every pair (with ``calibrate_output``, each model then fits an output
calibration on its own pairs). Under ``torchrun``, rank 0 prepares the data and writes the
outputs; the other ranks wait for the prepared pairs.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bids import (
    TravellingPair,
    discover_t1w,
    load_layout,
    pair_sessions,
    validate_bids,
)
from .choices import DEFAULT_REGISTRATION, Direction
from .errors import InvalidBIDSError, MissingInputError, UsageError

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingRequest:
    """Everything the training level needs, as explicit values."""

    bids_dir: Path
    model_dir: Path
    work_dir: Path
    direction: Direction
    schedule: object  # model.training.TrainingSchedule (torch is imported late)
    participant_labels: tuple[str, ...] = ()
    session_labels: tuple[str, ...] = ()
    bids_filters: dict = field(default_factory=dict)
    skip_bids_validation: bool = False
    skull_strip: str = "deepbet"
    registration: str = DEFAULT_REGISTRATION
    init_from: Path | str | None = None  # a model folder, "bundled" or None
    lesion_masks: Path | None = None
    keep_all_pairs: bool = False
    prepare_only: bool = False
    resume: bool = False
    device: str = "auto"
    name: str | None = None
    prediction_type: str = "v_prediction"
    context_slices: int = 0
    cv_folds: int = 0
    calibrate_output: bool = False
    sloppy: bool = False


@dataclass
class TrainingSet:
    """Prepared pairs that passed the checks, their volumes and references."""

    pairs: list[TravellingPair]
    prepared: list
    volumes: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    references: list
    lesions: list | None
    excluded: dict[str, str]
    pooled_targets: object = None  # every pair's target scan pooled: the model's default


def run_training(request: TrainingRequest) -> int:
    """Prepare, cross-validate (``cv_folds``) and train; returns the exit code."""
    from .training_data import prepare_pairs, wait_for_pairs

    rank = int(os.environ.get("RANK", "0"))
    init = initial_model(request.init_from, request.direction)
    if not request.skip_bids_validation and rank == 0:
        validation = validate_bids(request.bids_dir)
        if validation.errors:
            code, where = validation.errors[0]
            raise InvalidBIDSError(
                f"{request.bids_dir}: the BIDS validator reports {code} at {where}; fix it or "
                "pass --skip-bids-validation."
            )
    layout = load_layout(request.bids_dir)
    found = discover_t1w(
        layout,
        participant_labels=list(request.participant_labels),
        session_labels=list(request.session_labels),
        bids_filters=request.bids_filters,
    )
    for reason in found.skipped.values():
        LOGGER.warning("Skipped: %s", reason)
    direction = request.direction
    pairs = pair_sessions(
        found.images, source_field=direction.source, target_field=direction.target
    )
    LOGGER.info(
        "%d travelling subject(s): %s", len(pairs), ", ".join(f"sub-{p.subject}" for p in pairs)
    )
    prepare = prepare_pairs if rank == 0 else wait_for_pairs
    prepared = prepare(
        pairs,
        request.work_dir / "pairs",
        skull_strip=request.skull_strip,
        sloppy=request.sloppy,
        registration=request.registration,
    )
    if request.prepare_only:
        LOGGER.info(
            "Prepared %d pair(s) in %s; --prepare-only: not training.",
            len(prepared),
            request.work_dir / "pairs",
        )
        return 0
    data = training_set(request, pairs, prepared)
    cv = None
    if request.cv_folds and rank == 0:
        from .cross_validation import cross_validate

        cv = cross_validate(request, data, init)
    summary = None if cv is None else {k: v for k, v in cv.items() if k != "rows"}
    train_model(request, data, init, request.model_dir, cv_summary=summary)
    if cv is not None:
        from .cross_validation import write_report

        write_report(request.model_dir, cv)
        LOGGER.info("Cross-validation report: %s", request.model_dir / "cross_validation.html")
    return 0


def initial_model(init_from: Path | str | None, direction: Direction):
    """The model to fine-tune (a folder, or 'bundled': the packaged one), or None."""
    from .model.folder import ModelFolderError, bundled_model_dir, load_model_folder

    if init_from is None:
        return None
    path = init_from
    if str(path) == "bundled":
        path = bundled_model_dir(direction.source, direction.target)
        if path is None:
            raise MissingInputError(
                f"No bundled {direction} model to fine-tune; pass --init-from MODEL_DIR or "
                "leave it out."
            )
    try:
        return load_model_folder(
            path, source_field=direction.source, target_field=direction.target
        )
    except ModelFolderError as error:
        raise MissingInputError(f"--init-from: {error}") from None


def training_set(
    request: TrainingRequest, pairs: list[TravellingPair], prepared: list
) -> TrainingSet:
    """Load the prepared pairs, leave out broken ones, build their references."""
    loaded = {pair.subject: pair.load() for pair in prepared}
    excluded = {} if request.keep_all_pairs else screen_pairs(prepared, loaded)
    keep = [i for i, pair in enumerate(prepared) if f"sub-{pair.subject}" not in excluded]
    if not keep:
        raise MissingInputError(
            "No prepared pair passed the intensity check (see the warnings above); fix the "
            "skull stripping or pass --keep-all-pairs."
        )
    pairs = [pairs[i] for i in keep]
    prepared = [prepared[i] for i in keep]
    lesions = None
    if request.lesion_masks:
        lesions = lesion_masks(request.lesion_masks, pairs, prepared)
    references, pooled = training_references(prepared, request.direction.target)
    return TrainingSet(
        pairs,
        prepared,
        [loaded[pair.subject] for pair in prepared],
        references,
        lesions,
        excluded,
        pooled,
    )


def training_references(prepared: list, target_field: float) -> tuple[list, object]:
    """Each pair's target-field reference: the other pairs' target scans pooled (its own
    target scan when it is the only pair, with a warning); and all of them pooled, the
    model's default reference."""
    from .image.reference import TargetReference, brain_quantiles
    from .training_data import load_target_scan

    scans = []
    for pair in prepared:
        image, mask, name = load_target_scan(pair)
        scans.append((pair.subject, brain_quantiles(image, mask), name))
    references = []
    for pair in prepared:
        others = [(q, name) for subject, q, name in scans if subject != pair.subject]
        if not others:
            LOGGER.warning(
                "sub-%s is the only travelling subject: its own target scan is its reference "
                "(add subjects to learn from other subjects' scans, as harmonization does).",
                pair.subject,
            )
            others = [(q, name) for subject, q, name in scans if subject == pair.subject]
        references.append(
            TargetReference.pooled(
                target_field, [q for q, _ in others], [name for _, name in others]
            )
        )
    pooled = TargetReference.pooled(
        target_field, [q for _, q, _ in scans], [name for _, _, name in scans], "model default"
    )
    return references, pooled


def starting_model(request: TrainingRequest, init, seed: int):
    """A fresh reference-conditioned model, or ``init`` prepared for fine-tuning."""
    from .model.folder import new_model
    from .model.training import fine_tuning_start

    direction = request.direction
    if init is not None:
        return fine_tuning_start(
            init, direction.source, direction.target, request.name, reference_channel=True
        )
    return new_model(
        "sloppy" if request.sloppy else "default",
        prediction_type=request.prediction_type,
        context_slices=request.context_slices,
        reference_channel=True,
        source_field=direction.source,
        target_field=direction.target,
        name=request.name,
        seed=seed,
    )


def train_model(
    request: TrainingRequest,
    data: TrainingSet,
    init,
    model_dir: Path,
    *,
    subset: list[int] | None = None,
    work_dir: Path | None = None,
    cv_summary: dict | None = None,
    progress: bool = True,
):
    """Train on the pairs ``subset`` (default: all) into ``model_dir``."""
    from .image.reference import match_to_reference
    from .model.training import PairedVolumes, train

    chosen = list(range(len(data.prepared))) if subset is None else subset
    sources, targets, masks, matched = [], [], [], []
    for i in chosen:
        source, target, mask = data.volumes[i]
        sources.append(source)
        targets.append(target)
        masks.append(mask)
        matched.append(match_to_reference(source, mask, data.references[i].quantiles))
    lesions = None if data.lesions is None else [data.lesions[i] for i in chosen]
    volumes = PairedVolumes(sources, targets, masks, lesions=lesions, matched=matched)
    model = starting_model(request, init, request.schedule.seed)
    model.reference = data.pooled_targets.to_json()
    model.meta["domain"] = training_domain(
        [data.volumes[i] for i in chosen],
        [data.references[i] for i in chosen],
        start=model.meta.get("domain"),
    )
    record = describe_training_data(
        request.bids_dir, [data.pairs[i] for i in chosen], data.excluded
    )
    if cv_summary:
        record["cross_validation"] = cv_summary
    work = work_dir or request.work_dir / f"checkpoints-{request.direction.slug}"
    result = train(
        volumes,
        model,
        model_dir,
        request.schedule,
        work_dir=work,
        resume=request.resume,
        device=request.device,
        training_data=record,
        progress=progress,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        if request.calibrate_output:
            calibrate_output(request, data, chosen, result.model)
        val = f", validation loss {result.val_losses[-1][1]:.4g}" if result.val_losses else ""
        LOGGER.info(
            "Model written to %s after %d iterations%s", result.model_dir, result.iterations, val
        )
    return result


def calibrate_output(request: TrainingRequest, data: TrainingSet, chosen: list[int], model):
    """Fit the output calibration on the pairs ``chosen`` (each source harmonized with the
    app's defaults and the reference training gave it) and store it in ``model``'s folder."""
    from .inference import InferenceSettings, harmonize
    from .model.calibration import fit_output_calibration
    from .model.folder import save_model_folder

    settings = InferenceSettings.resolve(model, device=request.device)
    fitted = []
    for number, i in enumerate(chosen, start=1):
        source, target, mask = data.volumes[i]
        LOGGER.info(
            "Output calibration: harmonizing sub-%s (%d of %d)",
            data.pairs[i].subject,
            number,
            len(chosen),
        )
        output = harmonize(model, source, mask, settings, reference=data.references[i]).image
        fitted.append((output, source, target, mask))
    subjects = [f"sub-{data.pairs[i].subject}" for i in chosen]
    model.calibration = fit_output_calibration(fitted, subjects)
    save_model_folder(model, model.path)
    LOGGER.info(
        "Output calibration fitted on %d pair(s) (change weight %.3f), stored in %s",
        len(chosen),
        model.calibration.change_weight,
        model.path / "calibration.json",
    )


def training_domain(volumes: list[tuple], references: list, start: dict | None = None) -> dict:
    """The contrast profiles' ranges of the training sources and of their references
    (model.json ``domain``; inference warns outside them), widened to ``start``, the
    domain of the model a fine-tuning run starts from."""
    from .image.domain import contrast_profile, merge_ranges, profile_range, quantile_profile

    domain = {
        "source": profile_range([contrast_profile(source, mask) for source, _, mask in volumes]),
        "reference": profile_range([quantile_profile(r.quantiles) for r in references]),
    }
    for part, ranges in (start or {}).items():
        domain[part] = merge_ranges(ranges, domain[part]) if part in domain else ranges
    return domain


def lesion_masks(derivatives: Path, pairs: list[TravellingPair], prepared: list) -> list:
    """Each prepared pair's source lesion mask on its grid (None without one)."""
    from .training_data import find_lesion_mask, load_lesion_mask

    if not derivatives.is_dir():
        raise MissingInputError(
            f"--lesion-masks {derivatives}: no such folder; give the BIDS derivatives folder "
            "that holds the lesion masks."
        )
    masks = []
    for pair, ready in zip(pairs, prepared, strict=True):
        try:
            path = find_lesion_mask(derivatives, pair.source)
        except ValueError as error:
            raise UsageError(str(error)) from None
        masks.append(None if path is None else load_lesion_mask(path, ready))
    LOGGER.info(
        "Lesion masks for %d of %d training pair(s) from %s.",
        sum(m is not None for m in masks),
        len(masks),
        derivatives,
    )
    return masks


def screen_pairs(prepared: list, loaded: dict[str, tuple]) -> dict[str, str]:
    """Pairs to leave out of training ('sub-X' -> reason), each logged as a warning."""
    from .training_data import scaling_problems

    excluded = {}
    for pair in prepared:
        problem = scaling_problems(pair, loaded[pair.subject])
        if problem:
            LOGGER.warning(
                "Leaving sub-%s out of training: %s. Check its skull stripping, or pass "
                "--keep-all-pairs.",
                pair.subject,
                problem,
            )
            excluded[f"sub-{pair.subject}"] = problem
    return excluded


def describe_training_data(
    bids_dir: Path, pairs: list[TravellingPair], excluded: dict[str, str] | None = None
) -> dict:
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
        "reference": "each source matched to the pooled target-field scans of the other "
        "travelling subjects",
    }
    if excluded:
        record["excluded"] = dict(excluded)
    phantom = phantom_truth(bids_dir, pairs)
    if phantom:
        record["phantom"] = phantom
    return record


def phantom_truth(bids_dir: Path, pairs: list[TravellingPair]) -> dict:
    """Seeds and groups of phantom subjects (``derivatives/phantom``), if the data is one."""
    from .phantom import truth_file

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
