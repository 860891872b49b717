"""Conditional diffusion model for 1.5 T <-> 3 T T1w contrast harmonization (torch only).

The network and its loops on plain numpy arrays. To harmonize an image as the app does
(white matter anchored, the study reference applied), use
:func:`harmonize_bids.inference.harmonize`; ``sample_volume`` here is the raw sampler::

    from harmonize_bids.model import load_model_folder, sample_volume, train

    model = load_model_folder("1p5T-to-3T", source_field=1.5, target_field=3.0)
    raw = sample_volume(model, volume, mask, sampler="dpm", steps=10, seed=0)

    train(sources, targets, masks, "models/1p5T-to-3T", work_dir="work/",
          iterations=300_000, source_field=1.5, target_field=3.0)

Modules: ``network`` (UNet2DModel configs), ``schedulers`` (diffusers schedules and
samplers), ``slicing`` (volumes to network slices and back), ``sampling`` (volume
sampling), ``folder`` (model folder I/O), ``data`` (paired slice dataset), ``training``
(training loop, EMA, checkpoints, DDP), ``device`` (device and precision selection).
"""

from .folder import (
    FORMAT_VERSION,
    PLAIN_FORMAT_VERSION,
    HarmonizationModel,
    ModelFolderError,
    load_model_folder,
    new_model,
    save_model_folder,
)
from .sampling import DEFAULT_SAMPLER, DEFAULT_STEPS, sample_volume


def __getattr__(name: str) -> object:
    # training pulls in diffusers.training_utils (slow import); load it on first use
    if name in ("train", "TrainResult"):
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TrainResult",
    "DEFAULT_SAMPLER",
    "DEFAULT_STEPS",
    "FORMAT_VERSION",
    "PLAIN_FORMAT_VERSION",
    "HarmonizationModel",
    "ModelFolderError",
    "sample_volume",
    "load_model_folder",
    "new_model",
    "save_model_folder",
    "train",
]
