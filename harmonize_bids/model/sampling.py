"""Sampling: slices -> target contrast, and whole volumes slice by slice.

:func:`sample_volume` is the entry point for inference.  It cuts the volume into
slices along the model's slice axis (sagittal = axis 0 for RAS+ arrays), crops every
slice to the in-plane bounding box of the brain mask over the whole volume (padded to the
network's multiple, zeros around), skips slices without brain, samples them in batches
and stacks the results.  Voxels outside the mask are zero; the output is clipped to [0, 1].

Randomness: every slice draws its noise from its own CPU ``torch.Generator`` seeded from
``(seed, ensemble member[, slice index])``, so the output does not depend on batch size
or device order.  With ``noise='shared'`` (the default) all slices of one ensemble member
share the same noise field, which keeps neighbouring slices consistent; with
``noise='independent'`` each slice draws its own.  Measured on a synthetic 16-slice
phantom with a tiny trained network (dpm, 10 steps, 6 seeds): adjacent-slice mean absolute
difference relative to the target's 1.20 (shared) vs 1.33 (independent); MSE relative to
Original 0.26 +- 0.09 vs 0.20 +- 0.03.  Shared noise is the default for through-plane
consistency (no stacking stripes); ``ensemble`` averaging reduces its seed-to-seed spread.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from diffusers import DDPMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from ..choices import DEFAULT_SAMPLER, DEFAULT_STEPS
from .device import autocast, available_memory, resolve_device, resolve_precision
from .folder import HarmonizationModel
from .schedulers import SAMPLERS, sampling_scheduler
from .slicing import SliceFrame, brain_slices

LOGGER = logging.getLogger(__name__)

NOISE_MODES = ("shared", "independent")
_CPU_MAX_BATCH = 8
#: On CPU the network always sees exactly this many slices per call (the last call padded),
#: because oneDNN's rounding depends on the batch size: this keeps outputs bit-identical
#: for any ``batch_size``.
CPU_CHUNK = 4


def to_network(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] image scale -> [-1, 1] network scale."""
    return x * 2.0 - 1.0


def from_network(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] network scale -> [0, 1] image scale (clipped)."""
    return ((x + 1.0) * 0.5).clamp_(0.0, 1.0)


def slice_generators(
    seed: int, member: int, slices: list[int] | np.ndarray, *, noise: str = "shared"
) -> list[torch.Generator]:
    """One CPU generator per slice, seeded from (seed, member[, slice])."""
    if noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}.")
    gens = []
    for index in slices:
        key = [int(seed), int(member)] + ([int(index)] if noise == "independent" else [])
        state = np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0]
        gens.append(torch.Generator("cpu").manual_seed(int(state) >> 1))
    return gens


@contextlib.contextmanager
def batch_invariant_time_embedding(net: torch.nn.Module) -> Iterator[None]:
    """Compute the (shared) timestep embedding on one row and broadcast it.

    A linear layer on 1 row and on B rows rounds differently (gemv vs gemm), which would
    make a slice's result depend on the batch it was sampled in.
    """
    emb = getattr(net, "time_embedding", None)
    if emb is None:
        yield
        return
    original = emb.forward

    def forward(sample: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        if sample.shape[0] > 1 and bool((sample == sample[:1]).all()):
            return original(sample[:1], *args, **kwargs).expand(sample.shape[0], -1)
        return torch.cat([original(row[None], *args, **kwargs) for row in sample])

    emb.forward = forward
    try:
        yield
    finally:
        del emb.forward


def _evaluate(
    net: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, chunk: int | None
) -> torch.Tensor:
    if chunk is None or x.shape[0] == chunk:
        out = net(x, t)
        return getattr(out, "sample", out)
    outs = []
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk]
        n = part.shape[0]
        if n < chunk:
            part = torch.cat([part, part[-1:].expand(chunk - n, *part.shape[1:])])
        out = net(part, t)
        outs.append(getattr(out, "sample", out)[:n])
    return torch.cat(outs)


@torch.inference_mode()
def sample(
    net: torch.nn.Module,
    scheduler: SchedulerMixin,
    source: torch.Tensor,
    *,
    steps: int,
    generators: list[torch.Generator],
    dtype: torch.dtype = torch.float32,
    chunk: int | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
    callback: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Denoise a batch of target slices conditioned on ``source`` (B, C, H, W, [-1, 1]).

    Returns the sampled target slices (B, 1, H, W) in network scale.  ``dtype`` is the
    autocast dtype of the network; scheduler arithmetic stays in float32.  ``chunk``
    evaluates the network on fixed-size groups of slices (batch-size-invariant rounding);
    ``memory_format`` is the layout of the network input (channels-last is faster on CPU).
    """
    device = source.device
    scheduler.set_timesteps(steps, device=device)
    shape = (source.shape[0], 1, *source.shape[2:])
    x = randn_tensor(shape, generator=generators, device=device, dtype=torch.float32)
    x = x * scheduler.init_noise_sigma
    step_kwargs = {"generator": generators} if isinstance(scheduler, DDPMScheduler) else {}
    with batch_invariant_time_embedding(net):
        for t in scheduler.timesteps:
            net_in = torch.cat([source, scheduler.scale_model_input(x, t)], dim=1)
            net_in = net_in.contiguous(memory_format=memory_format)
            with autocast(device, dtype):
                out = _evaluate(net, net_in, t, chunk).float()
            x = scheduler.step(out, t, x, **step_kwargs).prev_sample
            if callback is not None:
                callback(source.shape[0])
    return x


def bytes_per_slice(model: HarmonizationModel, height: int, width: int) -> int:
    """Rough peak inference memory per slice (activations, skips and workspace)."""
    channels = model.network_config["block_out_channels"]
    per_pixel = sum(c / 4**level for level, c in enumerate(channels))
    return int(height * width * per_pixel * 4 * 16)


def choose_batch_size(
    model: HarmonizationModel, height: int, width: int, device: torch.device
) -> int:
    """Batch size from free memory (a quarter of it on CPU, capped at 8; 60 % on GPU)."""
    free = available_memory(device)
    per = bytes_per_slice(model, height, width)
    if device.type == "cuda":
        return max(1, min(256, int(0.6 * free) // per))
    budget = min(int(0.25 * free), 2 * 1024**3)
    return max(1, min(_CPU_MAX_BATCH, budget // per))


def sample_volume(
    model: HarmonizationModel,
    volume: np.ndarray,
    mask: np.ndarray,
    *,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    ensemble: int = 1,
    seed: int = 0,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    progress: bool = True,
    noise: str = "shared",
    precision: str = "auto",
    matched: np.ndarray | None = None,
    axis: int | None = None,
) -> np.ndarray:
    """Map a preprocessed source volume to the model's target contrast.

    Parameters
    ----------
    model : a :class:`HarmonizationModel` (see :func:`load_model_folder`).
    volume : 3-D float array in [0, 1], RAS+ 1 mm, skull stripped (``preprocessing.json``).
    mask : 3-D boolean brain mask of the same shape.
    sampler : ``'dpm'`` (default), ``'ddim'`` or ``'ddpm'`` (the paper's 1000 steps).
    steps : sampling steps; default 10 for dpm/ddim, 1000 (all) for ddpm.
    ensemble : average this many samples (different noise).
    seed : same seed -> same output (bit for bit on CPU, any batch size).
    device : ``'auto'`` (CUDA, MPS, CPU), ``'cpu'``, ``'cuda'``, ``'cuda:N'``, ``'mps'``.
    batch_size : slices sampled together; chosen from free memory when None (on CPU
        rounded up to a multiple of 4, the fixed network call size; see ``CPU_CHUNK``).
    noise : ``'shared'`` noise field for all slices (default) or ``'independent'``.
    precision : ``'auto'`` (bf16 on capable CPUs, bf16/fp16 on CUDA), ``'fp32'``, ...
    matched : the source matched to the target-field reference (same shape as
        ``volume``); required by a model with a reference channel.
    axis : the array axis to slice across; default: the model's (``slice_axis``).

    Returns a float32 array like ``volume``: zero outside ``mask``, clipped to [0, 1].
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
    volume = np.asarray(volume)
    mask = np.asarray(mask, dtype=bool)
    if volume.ndim != 3 or mask.shape != volume.shape:
        raise ValueError(
            f"volume must be 3-D and mask the same shape; got {volume.shape} and {mask.shape}."
        )
    if ensemble < 1:
        raise ValueError(f"ensemble must be >= 1, got {ensemble}.")
    if model.reference_channel and (matched is None or np.shape(matched) != volume.shape):
        raise ValueError(
            "this model needs the source matched to a target-field reference "
            "(matched=, same shape as volume)."
        )
    num_train = int(model.scheduler_config["num_train_timesteps"])
    steps = int(steps or (num_train if sampler == "ddpm" else DEFAULT_STEPS))
    dev = resolve_device(device)
    dtype = resolve_precision(dev, precision)
    axis = model.slice_axis if axis is None else int(axis)
    k, multiple = model.context_slices, model.multiple

    out = np.zeros(volume.shape, dtype=np.float32)
    vol = np.moveaxis(volume, axis, 0)
    msk = np.moveaxis(mask, axis, 0)
    res = np.moveaxis(out, axis, 0)
    ref = np.moveaxis(np.asarray(matched), axis, 0) if model.reference_channel else None
    slices = brain_slices(msk)
    if slices.size == 0:
        LOGGER.warning("Brain mask is empty; returning an all-zero volume.")
        return out
    frame = SliceFrame.around(msk, multiple)
    (h, w), height, width = frame.box_shape, frame.height, frame.width
    if batch_size is None:
        batch_size = choose_batch_size(model, height, width, dev)
    if dev.type == "cpu":  # the network sees CPU_CHUNK slices per call anyway
        batch_size = math.ceil(batch_size / CPU_CHUNK) * CPU_CHUNK
    LOGGER.info(
        "Harmonizing %d slices across axis %d, %dx%d (padded %dx%d), with %s, %d steps, "
        "ensemble %d, batch %d on %s (%s).",
        slices.size,
        axis,
        h,
        w,
        height,
        width,
        sampler,
        steps,
        ensemble,
        batch_size,
        dev,
        str(dtype).removeprefix("torch."),
    )

    net = model.net.to(dev).eval()
    chunk = CPU_CHUNK if dev.type == "cpu" else None
    # oneDNN convolutions are 2-3.5x faster in channels-last layout on CPU (bf16 most).
    layout = torch.channels_last if dev.type == "cpu" else torch.contiguous_format
    net = net.to(memory_format=layout)
    bar = tqdm(
        total=int(slices.size) * ensemble * steps,
        unit="slice-step",
        desc=f"harmonize ({sampler}, {steps} steps)",
        disable=not progress,
    )
    try:
        for start in range(0, slices.size, batch_size):
            batch = slices[start : start + batch_size]
            src = frame.cut(vol, msk, batch, context=k)
            if ref is not None:
                src = np.concatenate([src, frame.cut(ref, msk, batch)], axis=1)
            source = to_network(torch.from_numpy(src).to(dev))
            acc = torch.zeros((batch.size, 1, height, width), device=dev)
            for member in range(ensemble):
                gens = slice_generators(seed, member, batch, noise=noise)
                acc += sample(
                    net,
                    sampling_scheduler(model.scheduler_config, sampler),
                    source,
                    steps=steps,
                    generators=gens,
                    dtype=dtype,
                    chunk=chunk,
                    memory_format=layout,
                    callback=bar.update,
                )
            frame.paste(res, from_network(acc / ensemble)[:, 0].cpu().numpy(), msk, batch)
    finally:
        bar.close()
    return out
