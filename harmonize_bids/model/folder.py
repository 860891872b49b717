"""Model folders: a trained model describes itself (nnU-Net style).

::

    1p5T-to-3T/
      config.json            UNet2DModel keyword arguments
      scheduler_config.json  training schedule and prediction type
      preprocessing.json     what the input must look like (spacing, orientation, ...)
      model.json             direction, fields, training data, metrics, weights_sha256
      model.safetensors      weights
      reference.json         default target-field reference (reference-conditioned models)
      calibration.json       output calibration fitted on a study's pairs (optional)

:func:`load_model_folder` rebuilds a :class:`HarmonizationModel` from the folder and
refuses (:class:`ModelFolderError`, one line naming the file and the fix) a missing or
unreadable file, a SHA-256 mismatch, a newer ``format_version`` or a direction that does
not match the request.  :func:`save_model_folder` writes to a temporary sibling folder
and renames it into place, so a reader never sees a half-written model.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..atomic import replace_folder
from ..choices import Direction
from ..preprocessing import DEFAULT_PREPROCESSING
from .calibration import OutputCalibration
from .network import build_network, network_config, pad_multiple
from .schedulers import dpm_timesteps, schedule_config

#: 2: preprocessing.json may set ``reference_channel`` (older readers would misuse it);
#: 3: calibration.json (older readers would skip it);
#: 4: calibration.json may carry a change weight (older readers would ignore it).
FORMAT_VERSION = 4
#: What a folder without calibration.json is written as, so that older releases read it.
PLAIN_FORMAT_VERSION = 2
#: The model folders shipped in the package, one per direction (``1p5T-to-3T``, ...).
BUNDLED_MODELS = Path(__file__).parents[1] / "data" / "models"
CONFIG_FILES = ("config.json", "scheduler_config.json", "preprocessing.json", "model.json")
WEIGHTS_FILE = "model.safetensors"
REFERENCE_FILE = "reference.json"
CALIBRATION_FILE = "calibration.json"


class ModelFolderError(ValueError):
    """A model folder is missing, corrupt, too new or for the wrong direction."""


def format_direction(source_field: float, target_field: float) -> str:
    """``1.5, 3.0 -> '1.5T->3T'``."""
    return Direction(source_field, target_field).label


def bundled_model_dir(source_field: float, target_field: float) -> Path | None:
    """The model folder shipped with the package for a direction, if there is one."""
    folder = BUNDLED_MODELS / Direction(source_field, target_field).slug
    return folder if (folder / "model.json").is_file() else None


@dataclass
class HarmonizationModel:
    """A network with everything needed to use it.  ``net`` is on CPU in eval mode."""

    net: UNet2DModel
    network_config: dict[str, Any]
    scheduler_config: dict[str, Any]
    preprocessing: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    reference: dict[str, Any] | None = None  # reference.json: the default target reference
    calibration: OutputCalibration | None = None  # calibration.json: the output calibration

    @property
    def slice_axis(self) -> int:
        return int(self.preprocessing.get("slice_axis", 0))

    @property
    def context_slices(self) -> int:
        return int(self.preprocessing.get("context_slices", 0))

    @property
    def reference_channel(self) -> bool:
        """Whether the network also sees the source matched to a target-field reference."""
        return bool(self.preprocessing.get("reference_channel", False))

    @property
    def multiple(self) -> int:
        return pad_multiple(self.network_config)

    @property
    def prediction_type(self) -> str:
        return str(self.scheduler_config["prediction_type"])

    @property
    def direction(self) -> str | None:
        return self.meta.get("direction")

    @property
    def weights_sha256(self) -> str | None:
        return self.meta.get("weights_sha256")


def new_model(
    network: str | dict[str, Any] = "default",
    *,
    prediction_type: str = "v_prediction",
    context_slices: int = 0,
    reference_channel: bool = False,
    source_field: float = 1.5,
    target_field: float = 3.0,
    name: str | None = None,
    seed: int = 0,
) -> HarmonizationModel:
    """A freshly initialised (random weights, seeded) model."""
    config = network_config(
        network, context_slices=context_slices, reference_channel=reference_channel
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_network(config)
    preprocessing = {
        **DEFAULT_PREPROCESSING,
        "context_slices": int(context_slices),
        "reference_channel": bool(reference_channel),
    }
    direction = format_direction(source_field, target_field)
    meta = {
        "format_version": PLAIN_FORMAT_VERSION,
        "name": name or Direction(source_field, target_field).slug,
        "version": "0.0.0",
        "direction": direction,
        "source_field": float(source_field),
        "target_field": float(target_field),
        "training_data": {},
        "iterations": 0,
        "wall_time_s": 0.0,
        "metrics": {},
    }
    return HarmonizationModel(
        net.eval(), config, schedule_config(prediction_type), preprocessing, meta
    )


def _weights_bytes(net: UNet2DModel) -> bytes:
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    return st_save(state, metadata={"format": "pt"})


def save_model_folder(
    model: HarmonizationModel, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` (updated with ``meta``) as a model folder at ``path``, atomically.

    An existing folder at ``path`` is replaced.  Returns the folder path.
    """
    from .. import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = _weights_bytes(model.net)
    full_meta = {**model.meta, **(meta or {})}
    full_meta.update(
        {
            "format_version": FORMAT_VERSION if model.calibration else PLAIN_FORMAT_VERSION,
            "package_version": __version__,
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    documents = {
        "config.json": model.network_config,
        "scheduler_config.json": model.scheduler_config,
        "preprocessing.json": model.preprocessing,
        "model.json": full_meta,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for name, doc in documents.items():
            (tmp / name).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        (tmp / WEIGHTS_FILE).write_bytes(weights)
        if model.reference is not None:
            (tmp / REFERENCE_FILE).write_text(json.dumps(model.reference, indent=1) + "\n")
        if model.calibration is not None:
            text = json.dumps(model.calibration.to_json(), indent=1)
            (tmp / CALIBRATION_FILE).write_text(text + "\n")
        replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    model.meta = full_meta
    model.path = path
    return path


def read_preprocessing(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A model folder's preprocessing.json over the defaults, without loading the network."""
    return {**DEFAULT_PREPROCESSING, **_read_json(Path(path) / "preprocessing.json")}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelFolderError(
            f"{path} is missing; the model folder is incomplete. "
            "Re-export or re-download the model."
        )
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFolderError(
            f"{path} is not valid JSON ({exc}); re-export or re-download the model."
        ) from exc
    if not isinstance(doc, dict):
        raise ModelFolderError(f"{path} must hold a JSON object; re-export the model.")
    return doc


def _check_dpm_ending(schedule: dict[str, Any], path: Path) -> None:
    """The optional ``dpm_last_timestep`` must be one :func:`dpm_timesteps` accepts."""
    last = schedule.get("dpm_last_timestep")
    if last is None:
        return
    try:
        if not isinstance(last, int):
            raise ValueError("it must be an integer.")
        dpm_timesteps(int(schedule["num_train_timesteps"]), 1, last)
    except ValueError as exc:
        raise ModelFolderError(
            f"{path} has dpm_last_timestep {last!r}: {exc} Fix it or re-export the model."
        ) from exc


def load_model_folder(
    path: str | os.PathLike[str],
    *,
    source_field: float | None = None,
    target_field: float | None = None,
) -> HarmonizationModel:
    """Rebuild a :class:`HarmonizationModel` from a model folder (weights on CPU).

    ``source_field`` / ``target_field`` (Tesla), when given, must match the folder's
    direction.  Raises :class:`ModelFolderError` on any problem.
    """
    path = Path(path)
    docs, weights = _checked_folder(path, source_field, target_field)
    weights_path = path / WEIGHTS_FILE
    config = docs["config.json"]
    try:
        net = build_network(config)
        net.load_state_dict(st_load(weights), strict=True)
    except (TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFolderError(
            f"{weights_path} does not fit {path / 'config.json'} ({first}); re-export the model."
        ) from exc
    return HarmonizationModel(
        net.eval(),
        config,
        docs["scheduler_config.json"],
        {**DEFAULT_PREPROCESSING, **docs["preprocessing.json"]},
        docs["model.json"],
        path,
        _read_json(path / REFERENCE_FILE) if (path / REFERENCE_FILE).is_file() else None,
        _read_calibration(path / CALIBRATION_FILE),
    )


def _read_calibration(path: Path) -> OutputCalibration | None:
    if not path.is_file():
        return None
    try:
        return OutputCalibration.from_json(_read_json(path))
    except ValueError as exc:
        raise ModelFolderError(
            f"{path} cannot be used: {exc} Delete it to harmonize without the calibration, "
            "or train again with --calibrate-output."
        ) from None


def check_model_folder(
    path: str | os.PathLike[str],
    *,
    source_field: float | None = None,
    target_field: float | None = None,
) -> dict[str, Any]:
    """Every check of :func:`load_model_folder` without loading the weights into a
    network (the worker that samples does): the weights' names and shapes are compared
    with a network built on the meta device. Returns model.json; raises
    :class:`ModelFolderError`."""
    from safetensors import safe_open

    path = Path(path)
    docs, _ = _checked_folder(path, source_field, target_field)
    _read_calibration(path / CALIBRATION_FILE)
    try:
        with torch.device("meta"):
            expected = {
                k: tuple(v.shape)
                for k, v in build_network(docs["config.json"]).state_dict().items()
            }
        with safe_open(path / WEIGHTS_FILE, framework="pt") as weights:
            found = {k: tuple(weights.get_slice(k).get_shape()) for k in weights.keys()}
    except (TypeError, ValueError, RuntimeError) as exc:
        found, expected = {"error": str(exc)}, {}
    if found != expected:
        raise ModelFolderError(
            f"{path / WEIGHTS_FILE} does not fit {path / 'config.json'}; re-export the model."
        )
    return docs["model.json"]


def _checked_folder(
    path: Path, source_field: float | None, target_field: float | None
) -> tuple[dict[str, dict[str, Any]], bytes]:
    """The folder's documents and weights, after every check that needs no network."""
    if not path.is_dir():
        raise ModelFolderError(f"Model folder {path} does not exist; check the model path.")
    docs = {name: _read_json(path / name) for name in CONFIG_FILES}
    meta = docs["model.json"]
    mj = path / "model.json"
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise ModelFolderError(f"{mj} has no integer format_version; re-export the model.")
    if version > FORMAT_VERSION:
        raise ModelFolderError(
            f"{mj} has format_version {version}, newer than the "
            f"{FORMAT_VERSION} this harmonize_bids knows; upgrade "
            "harmonize_bids."
        )
    for key, want in (("source_field", source_field), ("target_field", target_field)):
        if want is None:
            continue
        have = meta.get(key)
        if not isinstance(have, int | float) or abs(float(have) - float(want)) > 1e-3:
            wanted = format_direction(
                source_field if source_field is not None else float(meta.get("source_field", 0)),
                target_field if target_field is not None else float(meta.get("target_field", 0)),
            )
            raise ModelFolderError(
                f"{mj} is a {meta.get('direction')} model but {wanted} was "
                "requested; pick the model folder for that direction."
            )
    weights_path = path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ModelFolderError(f"{weights_path} is missing; re-export or re-download the model.")
    weights = weights_path.read_bytes()
    digest = hashlib.sha256(weights).hexdigest()
    if digest != meta.get("weights_sha256"):
        raise ModelFolderError(
            f"{weights_path} has SHA-256 {digest[:12]}..., model.json expects "
            f"{str(meta.get('weights_sha256'))[:12]}...; the weights are "
            "corrupt or were modified: re-download the model folder."
        )
    _check_dpm_ending(docs["scheduler_config.json"], path / "scheduler_config.json")
    return docs, weights
