"""The one inference entry: a preprocessed T1w in, the harmonized image the app writes out.

    from harmonize_bids.inference import InferenceSettings, harmonize
    from harmonize_bids.model import load_model_folder

    model = load_model_folder(folder, source_field=1.5, target_field=3.0)
    result = harmonize(model, volume, mask, InferenceSettings.resolve(model), reference=ref)
    result.image, result.provenance   # float32 array, the sidecar's Harmonization object

Sampling (:mod:`harmonize_bids.model.sampling`) maps the volume slice by slice, along each
of the settings' slice planes, and averages the planes (each plane's stripes lie across its
own slices, so the mean has fewer along any one axis); with ``even_out_slices`` each plane's
slow brightness changes between slices are smoothed (:mod:`harmonize_bids.image.destripe`);
the output's white matter is then anchored at the model's ``white_matter_level`` (the scale
of every preprocessed image), and a model folder's output calibration, if it has one, is
applied (:mod:`harmonize_bids.model.calibration`). A reference-conditioned model
also sees the source histogram-matched to the study's target-field reference
(:mod:`harmonize_bids.image.reference`); without one, the model folder's own. Given the
study's scanner map (other participants scanned at both fields), the output is last
histogram-matched to the source mapped through it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .choices import (
    DEFAULT_EVEN_OUT_SLICES,
    DEFAULT_SAMPLER,
    DEFAULT_SLICE_PLANES,
    DEFAULT_STEPS,
    SAMPLERS,
    SLICE_PLANES,
    Direction,
)
from .image.reference import ScannerMap, TargetReference

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceSettings:
    """How to sample, resolved once: every field is a concrete value."""

    sampler: str = DEFAULT_SAMPLER
    steps: int = DEFAULT_STEPS
    ensemble: int = 1
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"
    slice_planes: tuple[str, ...] = DEFAULT_SLICE_PLANES
    even_out_slices: bool = DEFAULT_EVEN_OUT_SLICES

    @classmethod
    def resolve(
        cls,
        model: Any,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        ensemble: int = 1,
        seed: int = 0,
        device: str = "auto",
        precision: str = "auto",
        slice_planes: tuple[str, ...] | list[str] | None = None,
        even_out_slices: bool | None = None,
    ) -> InferenceSettings:
        """Defaults filled in for ``model``: the default sampler, all of the model's
        timesteps for ``ddpm``, ``auto`` device resolved to the one that will run, the
        default slice planes (each named once, in RAS axis order)."""
        from .model.device import resolve_device

        sampler = sampler or DEFAULT_SAMPLER
        if sampler not in SAMPLERS:
            raise ValueError(f"Unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
        planes = set(slice_planes or DEFAULT_SLICE_PLANES)
        if not planes <= set(SLICE_PLANES):
            raise ValueError(
                f"Unknown slice plane(s) {sorted(planes - set(SLICE_PLANES))}; "
                f"choose from {tuple(SLICE_PLANES)}."
            )
        if steps is None:
            steps = (
                int(model.scheduler_config["num_train_timesteps"])
                if sampler == "ddpm"
                else DEFAULT_STEPS
            )
        return cls(
            sampler,
            int(steps),
            int(ensemble),
            int(seed),
            str(resolve_device(device)),
            precision,
            tuple(p for p in SLICE_PLANES if p in planes),
            DEFAULT_EVEN_OUT_SLICES if even_out_slices is None else bool(even_out_slices),
        )


@dataclass
class Harmonized:
    """A harmonized volume and the record of how it was made."""

    image: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)


def harmonize(
    model: Any,
    volume: np.ndarray,
    mask: np.ndarray,
    settings: InferenceSettings,
    *,
    reference: TargetReference | None = None,
    scanner_map: ScannerMap | None = None,
    progress: bool = False,
) -> Harmonized:
    """Harmonize one preprocessed volume (RAS+, 1 mm, [0, 1], skull stripped).

    ``reference`` is required by a reference-conditioned model and ignored otherwise;
    with ``scanner_map`` the output is matched to the volume mapped through it.
    """
    from .image.destripe import even_out_slices
    from .image.domain import contrast_profile
    from .image.intensity import anchor_white_matter
    from .image.reference import match_to_reference
    from .model.sampling import sample_volume
    from .provenance import harmonization_record

    mask = np.asarray(mask) > 0
    matched = None
    if model.reference_channel:
        if reference is None:
            LOGGER.warning(
                "No target-field reference of this study: the model folder's own stands in "
                "(the sidecar records it)."
            )
            reference = default_reference(model)
        matched = match_to_reference(volume, mask, reference.quantiles)

    def along(plane: str) -> np.ndarray:
        axis = SLICE_PLANES[plane]
        image = sample_volume(
            model,
            volume,
            mask,
            sampler=settings.sampler,
            steps=settings.steps,
            ensemble=settings.ensemble,
            seed=settings.seed,
            device=settings.device,
            precision=settings.precision,
            progress=progress,
            matched=matched,
            axis=axis,
        )
        return even_out_slices(image, mask, axis) if settings.even_out_slices else image

    sampled = np.mean([along(p) for p in settings.slice_planes], axis=0, dtype=np.float32)
    before = contrast_profile(volume, mask)
    after = contrast_profile(sampled, mask)
    image = anchor_white_matter(
        sampled,
        mask,
        level=float(model.preprocessing["white_matter_level"]),
        current=after["wm_mean"],
    )
    if model.calibration is not None:
        image = model.calibration.apply(image, volume, mask)
    warnings = domain_warnings(model, before, after, reference or default_reference(model))
    for warning in warnings:
        LOGGER.warning("Out of the model's domain: %s", warning)
    if scanner_map is not None:
        image = scanner_map.match(image, volume, mask)
    provenance = harmonization_record(
        model=model,
        settings=settings,
        reference=reference if model.reference_channel else None,
        scanner_map=scanner_map,
    )
    provenance["DomainWarnings"] = warnings
    return Harmonized(image, provenance)


def domain_warnings(
    model: Any, before: dict, after: dict, reference: TargetReference | None
) -> list[str]:
    """Why this input or its output may lie outside what the model learned (see
    :mod:`harmonize_bids.image.domain`); empty when nothing stands out."""
    from .image.domain import contrast_gap, outside_range, quantile_profile, weight_shift

    domain = model.meta.get("domain") or {}
    problems = outside_range(before, domain.get("source", {}), "the input's")
    if reference is not None:
        target = quantile_profile(reference.quantiles)
        problems += outside_range(target, domain.get("reference", {}), "the target reference's")
        problems += contrast_gap(after, target)
    return problems + weight_shift(before, after)


def default_reference(model: Any) -> TargetReference | None:
    """The model folder's own reference (its training data's target-field scans), for a
    study without target-field scans of its own (None for a folder without one)."""
    if model.reference is None and not model.reference_channel:
        return None
    if model.reference is None:
        raise ValueError(
            f"{model.path or 'this model'} needs a target-field reference and its folder has "
            "no reference.json; give one with --target-reference."
        )
    reference = TargetReference.from_json(model.reference)
    return TargetReference(
        reference.field_strength, reference.quantiles, reference.sources, "model default"
    )


def harmonize_file(
    in_file: str,
    mask_file: str,
    out_file: str,
    model_dir: str,
    direction: Direction,
    *,
    sampler: str | None = None,
    steps: int | None = None,
    ensemble: int = 1,
    slice_planes: list[str] | None = None,
    even_out_slices: bool | None = None,
    seed: int = 0,
    device: str = "auto",
    num_threads: int | None = None,
    reference_file: str | None = None,
    reference_origin: str | None = None,
    scanner_map_files: tuple[str, str] | None = None,
    scanner_map_unavailable: str | None = None,
) -> dict[str, Any]:
    """:func:`harmonize` on NIfTI files, as a participant run's node does: load the model
    folder of ``direction``, resolve the settings and the reference (a JSON file; its
    recorded origin overridden by ``reference_origin``) and the scanner map (its source-
    and target-field reference files; or why there is none), write ``out_file`` (float32,
    the input's grid) and return the provenance."""
    from dataclasses import replace

    import nibabel as nib
    import torch

    from .image.reference import read_reference
    from .model.folder import load_model_folder

    if num_threads:
        torch.set_num_threads(num_threads)
    model = load_model_folder(
        model_dir, source_field=direction.source, target_field=direction.target
    )
    settings = InferenceSettings.resolve(
        model,
        sampler=sampler,
        steps=steps,
        ensemble=ensemble,
        seed=seed,
        device=device,
        slice_planes=slice_planes,
        even_out_slices=even_out_slices,
    )
    reference = read_reference(reference_file) if reference_file else None
    if reference is not None and reference_origin:
        reference = replace(reference, origin=reference_origin)
    scanner_map = None
    if scanner_map_files is not None:
        sides = [read_reference(path) for path in scanner_map_files]
        if None in sides:
            scanner_map_unavailable = "no scan of one of its fields could be preprocessed"
        else:
            scanner_map = ScannerMap(*sides)
    if scanner_map_unavailable:
        LOGGER.warning("No scanner map: %s.", scanner_map_unavailable)
    image = nib.load(in_file)
    volume = np.asanyarray(image.dataobj, dtype=np.float32)
    mask = np.asanyarray(nib.load(mask_file).dataobj) > 0
    result = harmonize(model, volume, mask, settings, reference=reference, scanner_map=scanner_map)
    if scanner_map_unavailable:
        result.provenance["ScannerMap"] = {"Applied": False, "Reason": scanner_map_unavailable}
    out = nib.Nifti1Image(result.image.astype(np.float32), image.affine, image.header)
    out.set_data_dtype(np.float32)
    out.to_filename(out_file)
    return result.provenance
