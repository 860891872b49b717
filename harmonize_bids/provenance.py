"""What produced an output: the sidecar's Harmonization object and software versions."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from . import __version__
from .derivatives import reference_file

_SOFTWARE = ("torch", "diffusers", "nipype", "nibabel", "antspyx", "deepbet")


def software_versions() -> dict[str, str]:
    """Versions of harmonize_bids and the packages that shape its outputs."""
    versions = {"harmonize_bids": __version__}
    for package in _SOFTWARE:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def harmonization_record(
    *, model: Any, settings: Any, reference: Any = None, scanner_map: Any = None
) -> dict[str, Any]:
    """The harmonized sidecar's `Harmonization` object for an applied model
    (``settings``: an InferenceSettings; ``reference``: the TargetReference it used;
    ``scanner_map``: the ScannerMap its output was matched through)."""
    meta = model.meta
    return {
        "ModelApplied": True,
        "ModelName": meta.get("name"),
        "ModelVersion": meta.get("version"),
        "ModelSHA256": meta.get("weights_sha256"),
        "ModelPath": str(model.path) if model.path is not None else None,
        "SourceFieldStrength": meta.get("source_field"),
        "TargetFieldStrength": meta.get("target_field"),
        "Sampler": settings.sampler,
        "Steps": settings.steps,
        "NoiseSchedule": dict(model.scheduler_config),
        "EnsembleSize": settings.ensemble,
        "SlicePlanes": list(settings.slice_planes),
        "SlicesEvenedOut": settings.even_out_slices,
        "Seed": settings.seed,
        "Device": settings.device,
        "WhiteMatterLevel": model.preprocessing.get("white_matter_level"),
        "TargetReference": None if reference is None else reference_record(reference),
        "OutputCalibration": calibration_record(model.calibration),
        "ScannerMap": None if scanner_map is None else scanner_map_record(scanner_map),
        "SoftwareVersions": software_versions(),
    }


def calibration_record(calibration: Any) -> dict[str, Any] | None:
    """What the sidecar says about the model folder's output calibration (None: none)."""
    if calibration is None:
        return None
    return {
        "SHA256": calibration.sha256,
        "FittedOn": list(calibration.subjects),
        "ChangeWeight": calibration.change_weight,
    }


def reference_record(reference: Any) -> dict[str, Any]:
    """What the sidecar says about the target-field reference an output was matched to."""
    record = {
        "Origin": reference.origin,
        "MagneticFieldStrength": reference.field_strength,
        "Images": len(reference.sources),
        "Sources": reference.sources,
        "SHA256": reference.sha256,
    }
    if reference.origin == "dataset":
        record["File"] = reference_file(reference.field_strength, reference.sha256)
    return record


def scanner_map_record(scanner_map: Any) -> dict[str, Any]:
    """What the sidecar says about the scanner map an output was matched through."""
    return {
        "Applied": True,
        "SourceScans": scanner_map.source.sources,
        "TargetScans": scanner_map.target.sources,
        "SHA256": {
            "Source": scanner_map.source.sha256,
            "Target": scanner_map.target.sha256,
        },
    }


def passthrough_record(*, field_strength: float) -> dict[str, Any]:
    """The `Harmonization` object of an image already at the target field."""
    return {
        "ModelApplied": False,
        "Reason": f"acquired at the target field strength ({field_strength:g} T); "
        "preprocessed only",
        "SourceFieldStrength": field_strength,
        "TargetFieldStrength": field_strength,
        "SoftwareVersions": software_versions(),
    }
