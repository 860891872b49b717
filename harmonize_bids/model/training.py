"""Training on arrays: paired slices, AdamW, EMA, validation, checkpoints, resume, DDP.

:func:`train` takes :class:`PairedVolumes` (preprocessed, co-registered float32 volumes
in [0, 1], RAS+, 1 mm, skull stripped, with their brain masks), a starting model
(:func:`~harmonize_bids.model.folder.new_model` or :func:`fine_tuning_start`) and a
:class:`TrainingSchedule`, and writes a model folder holding the EMA weights.  Full
training state (network, EMA, optimizer, iteration, losses) is checkpointed to
``work_dir`` every ``checkpoint_every`` iterations; ``resume=True``
continues bit-exactly because every iteration's randomness (slice choice, patch corner,
timesteps, noise) comes from a generator seeded from ``(seed, rank, iteration)`` and the
learning rate is a function of the iteration alone (constant, then optionally a linear
decay over the last ``lr_decay_iterations``).  A constant-rate run can therefore be
resumed with a larger ``lr_decay_iterations`` to anneal it.

Launched under ``torchrun`` (``WORLD_SIZE`` > 1) it runs DistributedDataParallel (gloo on
CPU, NCCL on CUDA); each rank draws its own batch, gradients are averaged, and rank 0
alone writes checkpoints and the model folder.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from .data import SlicePairs, extract_slice_pairs
from .device import autocast, resolve_device, resolve_precision
from .folder import HarmonizationModel, new_model, save_model_folder
from .sampling import to_network
from .schedulers import training_scheduler

LOGGER = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
_VAL_SLICES = 64


@dataclass(frozen=True)
class TrainingSchedule:
    """How to optimise: everything about a run except the data and the starting model.

    ``iterations`` optimizer steps of ``batch_size`` slices per process (random square
    patches of ``patch_size``, rounded down to the network's multiple, or whole brain-box
    slices); AdamW at ``lr``, falling linearly towards zero over the last
    ``lr_decay_iterations``; lesion pixels count ``lesion_weight`` times in the loss;
    the source slices of each sample are raised to a power exp(U(-a, a)) with
    ``a = contrast_augmentation``; with a reference channel, that channel and the target
    of each sample are raised together to a power exp(U(-b, b)) about the white-matter
    level, ``b = target_contrast_augmentation``, so the target contrast follows the
    study's reference instead of the training sites'; with ``through_plane_weight`` w > 0
    each sample is a pair of neighbouring slices sharing patch, augmentation, timestep and
    noise (as slices share noise at inference), and the loss adds w times the squared error
    of the difference between their clean-image estimates against the target's difference;
    ``val_fraction`` of the volumes (or slices, with one volume) are held out for a
    validation loss every ``val_every`` steps (default: each checkpoint).
    """

    iterations: int = 300_000
    batch_size: int = 4
    lr: float = 1e-4
    lr_decay_iterations: int = 0
    weight_decay: float = 0.0
    ema_decay: float = 0.9999
    grad_clip: float = 1.0
    patch_size: int | None = None
    lesion_weight: float = 1.0
    contrast_augmentation: float = 0.0
    target_contrast_augmentation: float = 0.0
    through_plane_weight: float = 0.0
    checkpoint_every: int = 1000
    val_fraction: float = 0.1
    val_every: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lesion_weight < 1.0:
            raise ValueError(f"lesion_weight must be at least 1, got {self.lesion_weight}.")


@dataclass
class PairedVolumes:
    """Training pairs: per-subject source volumes, co-registered targets, brain masks,
    optional lesion masks (None for a pair without) and, for a reference-conditioned
    model, each source matched to its target-field reference."""

    sources: Sequence[np.ndarray]
    targets: Sequence[np.ndarray]
    masks: Sequence[np.ndarray]
    lesions: Sequence[np.ndarray | None] | None = None
    matched: Sequence[np.ndarray] | None = None


@dataclass
class TrainResult:
    """What :func:`train` did.  ``model`` holds the EMA weights (on every rank)."""

    model: HarmonizationModel
    model_dir: Path
    iterations: int
    losses: list[float] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)


def _derived_seed(*key: int) -> int:
    return int(np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0] >> 1)


def fine_tuning_start(
    base: HarmonizationModel,
    source_field: float,
    target_field: float,
    name: str | None = None,
    reference_channel: bool | None = None,
    context_slices: int | None = None,
) -> HarmonizationModel:
    """A trainable copy of ``base`` (same direction) that records where it started.

    ``reference_channel=True`` on a model without one adds that input channel, and
    ``context_slices`` above ``base``'s adds neighbouring source slices on each side, with
    zero weights: training starts from ``base``'s outputs.
    """
    add_reference = bool(reference_channel) and not base.reference_channel
    context = base.context_slices if context_slices is None else int(context_slices)
    if context < base.context_slices:
        raise ValueError(
            f"Cannot fine-tune {base.path} with {context} context slices: it has "
            f"{base.context_slices}, and they cannot be removed."
        )
    fresh = new_model(
        base.network_config,
        context_slices=context,
        reference_channel=base.reference_channel or add_reference,
        prediction_type=base.prediction_type,
        source_field=source_field,
        target_field=target_field,
        name=name,
    )
    if fresh.direction != base.direction:
        raise ValueError(
            f"Cannot fine-tune the {base.direction} model {base.path} into a "
            f"{fresh.direction} model; pick the model of that direction."
        )
    state = base.net.state_dict()
    weight = state["conv_in.weight"]
    sources = 2 * base.context_slices + 1
    around = torch.zeros_like(weight[:, :1]).expand(-1, context - base.context_slices, -1, -1)
    others = weight[:, sources:-1]  # the reference channel, if any
    if add_reference:
        others = torch.zeros_like(weight[:, :1])
    state["conv_in.weight"] = torch.cat(
        [around, weight[:, :sources], around, others, weight[:, -1:]], dim=1
    )
    fresh.net.load_state_dict(state)
    fresh.scheduler_config = dict(base.scheduler_config)
    fresh.reference = base.reference
    fresh.preprocessing = {
        **base.preprocessing,
        "reference_channel": base.reference_channel or add_reference,
        "context_slices": context,
    }
    if base.meta.get("domain"):
        fresh.meta["domain"] = base.meta["domain"]
    fresh.meta["fine_tuned_from"] = {
        "name": base.meta.get("name"),
        "path": str(base.path) if base.path else None,
        "weights_sha256": base.weights_sha256,
        "iterations": base.meta.get("iterations"),
        "iterations_total": base.meta.get("iterations_total", base.meta.get("iterations")),
        "wall_time_total_s": base.meta.get("wall_time_total_s", base.meta.get("wall_time_s")),
        "training_data": base.meta.get("training_data"),
        "training": base.meta.get("training"),
        "fine_tuned_from": base.meta.get("fine_tuned_from"),
    }
    return fresh


def _totals(base: dict[str, Any] | None, iterations: int, wall: float) -> dict[str, Any]:
    """Iterations and wall time including the fine-tuned-from chain (``base``, None for a
    model trained from random weights)."""
    base = base or {}
    return {
        "iterations_total": int(base.get("iterations_total") or 0) + iterations,
        "wall_time_total_s": round(float(base.get("wall_time_total_s") or 0.0) + wall, 1),
    }


def learning_rate(iteration: int, iterations: int, lr: float, decay_iterations: int) -> float:
    """Rate of 0-based ``iteration``: ``lr``, then linear to ``lr / decay`` at the last one."""
    if decay_iterations <= 0:
        return lr
    return lr * min(1.0, (iterations - iteration) / decay_iterations)


def _split(pairs: SlicePairs, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole volumes when there are two or more, otherwise slices."""
    rng = np.random.default_rng(_derived_seed(seed, 1))
    n_slices = len(pairs)
    if val_fraction <= 0:
        return np.arange(n_slices), np.zeros(0, dtype=int)
    volumes = np.unique(pairs.volume_index)
    if volumes.size >= 2:
        n_val = min(volumes.size - 1, max(1, round(val_fraction * volumes.size)))
        val_vols = rng.permutation(volumes)[:n_val]
        is_val = np.isin(pairs.volume_index, val_vols)
        return np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if n_slices < 2:
        return np.arange(n_slices), np.zeros(0, dtype=int)
    n_val = min(n_slices - 1, max(1, round(val_fraction * n_slices)))
    order = rng.permutation(n_slices)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _target(
    scheduler: Any, prediction_type: str, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    return x0


def _loss(
    net: torch.nn.Module,
    scheduler: Any,
    prediction_type: str,
    src: torch.Tensor,
    tgt: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    device: torch.device,
    dtype: torch.dtype,
    weight: torch.Tensor | None = None,
    through_plane_weight: float = 0.0,
) -> torch.Tensor:
    """Mean squared error of the network's prediction, per pixel times ``weight`` if given;
    with ``through_plane_weight``, the batch's halves are neighbouring slices and the
    error of their clean-image estimates' difference is added with that weight."""
    src, x0 = to_network(src.to(device)), to_network(tgt.to(device))
    noise, t = noise.to(device), t.to(device)
    x_t = scheduler.add_noise(x0, noise, t)
    with autocast(device, dtype):
        out = net(torch.cat([src, x_t], dim=1), t)
    pred = getattr(out, "sample", out).float()
    target = _target(scheduler, prediction_type, x0, noise, t)
    if weight is None:
        loss = F.mse_loss(pred, target)
    else:
        loss = (weight.to(device) * (pred - target) ** 2).mean()
    if through_plane_weight > 0:
        estimate = _clean_estimate(scheduler, prediction_type, x_t, pred, t)
        first, second = estimate.chunk(2)
        true_first, true_second = x0.chunk(2)
        loss = loss + through_plane_weight * F.mse_loss(second - first, true_second - true_first)
    return loss


def _clean_estimate(
    scheduler: Any, prediction_type: str, x_t: torch.Tensor, pred: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """The clean image the prediction implies at timestep ``t``."""
    alpha_bar = scheduler.alphas_cumprod.to(x_t.device)[t].view(-1, 1, 1, 1)
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * pred
    if prediction_type == "epsilon":
        return (x_t - (1 - alpha_bar).sqrt() * pred) / alpha_bar.sqrt()
    return pred


def _augment_contrast(
    src: torch.Tensor, channels: int, strength: float, generator: torch.Generator
) -> torch.Tensor:
    """Raise the first ``channels`` (the source slices) to a random power exp(U(-s, s)) per
    sample: a monotone contrast change, so the network cannot lean on one protocol's."""
    if strength <= 0:
        return src
    gamma = _random_powers(len(src), strength, generator)
    out = src.clone()
    out[:, :channels] = src[:, :channels].clamp(min=0) ** gamma
    return out


def _random_powers(n: int, strength: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` powers exp(U(-strength, strength)), shaped (n, 1, 1, 1) for a batch."""
    return torch.exp((torch.rand(n, generator=generator) * 2 - 1) * strength)[:, None, None, None]


def _augment_target_contrast(
    src: torch.Tensor,
    target: torch.Tensor,
    strength: float,
    level: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Map the reference channel (the last of ``src``) and ``target`` of each sample by one
    random power about ``level``: ``level * (x / level) ** exp(U(-s, s))``, clipped to [0, 1].

    Histogram matching commutes with a monotone map of the reference, so this is the
    sample the study of another target scanner would give: the reference channel and the
    target change contrast together, and white matter stays at ``level``."""
    if strength <= 0:
        return src, target
    gamma = _random_powers(len(src), strength, generator)

    def mapped(x: torch.Tensor) -> torch.Tensor:
        return (level * (x.clamp(min=0) / level) ** gamma).clamp(max=1.0)

    out = src.clone()
    out[:, -1:] = mapped(src[:, -1:])
    return out, mapped(target)


def _pixel_weight(lesion: torch.Tensor | None, lesion_weight: float) -> torch.Tensor | None:
    """Loss weight per pixel: ``lesion_weight`` inside lesions, 1 elsewhere."""
    if lesion is None or lesion_weight == 1.0:
        return None
    return 1.0 + (lesion_weight - 1.0) * lesion.float()


@torch.no_grad()
def _validate(
    net: torch.nn.Module,
    scheduler: Any,
    prediction_type: str,
    pairs: SlicePairs,
    val_idx: np.ndarray,
    batch_size: int,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
) -> float:
    """Mean loss on up to 64 held-out slices at fixed timesteps and noise."""
    idx = torch.as_tensor(val_idx[:: max(1, len(val_idx) // _VAL_SLICES)][:_VAL_SLICES])
    gen = torch.Generator().manual_seed(_derived_seed(seed, 2))
    num_train = scheduler.config.num_train_timesteps
    steps = torch.linspace(0, num_train - 1, len(idx)).long()
    total = 0.0
    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        src, tgt, _ = pairs.batch(chunk)
        noise = torch.randn(tgt.shape, generator=gen)
        t = steps[start : start + len(chunk)]
        loss = _loss(net, scheduler, prediction_type, src, tgt, t, noise, device, dtype)
        total += float(loss) * len(chunk)
    return total / len(idx)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    from ..atomic import write_with

    write_with(path, lambda partial: torch.save(state, partial))


@dataclass
class _Process:
    """Where this process trains: device, precision and its place among DDP ranks."""

    device: torch.device
    dtype: torch.dtype
    rank: int = 0
    world: int = 1
    created_group: bool = False

    @classmethod
    def start(cls, device: str | torch.device, precision: str) -> _Process:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        dev = resolve_device(device)
        created = False
        if world > 1 and not dist.is_initialized():
            if dev.type == "cuda":
                dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(dev)
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
            created = True
        distributed = dist.is_available() and dist.is_initialized()
        return cls(
            dev,
            resolve_precision(dev, precision),
            dist.get_rank() if distributed else 0,
            dist.get_world_size() if distributed else 1,
            created,
        )

    def finish(self) -> None:
        if self.created_group:
            dist.barrier()
            dist.destroy_process_group()


def _patch(
    schedule: TrainingSchedule, model: HarmonizationModel, frame: tuple[int, int]
) -> tuple[int, int] | None:
    if schedule.patch_size is None:
        return None
    side = max(model.multiple, schedule.patch_size // model.multiple * model.multiple)
    return (min(side, frame[0]), min(side, frame[1]))


def _start_sha256(model: HarmonizationModel) -> str | None:
    return (model.meta.get("fine_tuned_from") or {}).get("weights_sha256")


def _restore(
    path: Path, model: HarmonizationModel, net, optimizer, ema, device: torch.device
) -> tuple[int, float, list, list]:
    """Load a checkpoint into the network, optimizer and EMA (refusing a foreign one);
    returns the iteration, wall time and loss histories it carried."""
    state = torch.load(path, map_location=device, weights_only=True)
    if state["network_config"] != model.network_config:
        raise ValueError(
            f"{path} was written for another network config; "
            "use a fresh work directory or resume=False."
        )
    start_sha256 = _start_sha256(model)
    if state.get("init_sha256") != start_sha256:
        raise ValueError(
            f"{path} was written by a run that started from "
            f"{state.get('init_sha256') or 'random weights'}, not from "
            f"{start_sha256 or 'random weights'}; use a fresh work directory "
            "or resume=False."
        )
    net.load_state_dict(state["net"])
    optimizer.load_state_dict(state["optimizer"])
    ema.load_state_dict(state["ema"])
    LOGGER.info("Resumed from %s at iteration %d.", path, int(state["iteration"]))
    return (
        int(state["iteration"]),
        float(state["wall_time_s"]),
        list(state["losses"]),
        [tuple(v) for v in state["val_losses"]],
    )


def train(
    volumes: PairedVolumes,
    model: HarmonizationModel,
    model_dir: str | os.PathLike[str],
    schedule: TrainingSchedule,
    *,
    work_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    device: str | torch.device = "auto",
    precision: str = "auto",
    training_data: dict[str, Any] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` on ``volumes`` following ``schedule``; export it to ``model_dir``.

    ``model`` is the starting point: :func:`~harmonize_bids.model.folder.new_model` or
    :func:`fine_tuning_start`. A reference-conditioned model needs ``volumes.matched``.
    Checkpoints go to ``work_dir`` (default ``<model_dir>.work``); ``resume`` continues
    from the last one. ``training_data`` is recorded in model.json.
    """
    if model.reference_channel != (volumes.matched is not None):
        raise ValueError(
            "a model with a reference channel trains on matched sources, and "
            "only such a model does."
        )
    t_start = time.monotonic()
    model_dir = Path(model_dir)
    work = (
        Path(work_dir) if work_dir is not None else model_dir.with_name(model_dir.name + ".work")
    )
    proc = _Process.start(device, precision)
    pairs = extract_slice_pairs(
        volumes.sources,
        volumes.targets,
        volumes.masks,
        axis=model.slice_axis,
        context_slices=model.context_slices,
        multiple=model.multiple,
        lesions=volumes.lesions,
        matched=volumes.matched,
    )
    train_idx, val_idx = _split(pairs, schedule.val_fraction, schedule.seed)
    patch = _patch(schedule, model, pairs.frame)
    scheduler = training_scheduler(model.scheduler_config)
    net = model.net.to(proc.device).train()
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay
    )
    ema = EMAModel(net.parameters(), decay=schedule.ema_decay)
    ema.to(proc.device)
    losses: list[float] = []
    val_losses: list[tuple[int, float]] = []
    start, wall_before = 0, 0.0
    ckpt_path = work / CHECKPOINT
    if resume and ckpt_path.is_file():
        start, wall_before, losses, val_losses = _restore(
            ckpt_path, model, net, optimizer, ema, proc.device
        )
    elif resume:
        LOGGER.info("No checkpoint at %s; starting from scratch.", ckpt_path)
    LOGGER.info(
        "Training %s on %d slices (%d held out, frame %s, patch %s), %d process(es), "
        "batch %d each, %s on %s.",
        model.direction,
        len(train_idx),
        len(val_idx),
        pairs.frame,
        patch,
        proc.world,
        schedule.batch_size,
        str(proc.dtype).removeprefix("torch."),
        proc.device,
    )

    ddp = net
    if proc.world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[proc.device.index] if proc.device.type == "cuda" else None
        )
    val_every = schedule.val_every or schedule.checkpoint_every
    num_train = scheduler.config.num_train_timesteps
    train_t = torch.as_tensor(train_idx)
    source_channels = 2 * model.context_slices + 1
    white_matter = float(model.preprocessing.get("white_matter_level", 1.0))

    def snapshot(iteration: int) -> dict[str, Any]:
        return {
            "net": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "ema": ema.state_dict(),
            "iteration": iteration,
            "wall_time_s": wall_before + time.monotonic() - t_start,
            "losses": losses,
            "val_losses": [list(v) for v in val_losses],
            "network_config": model.network_config,
            "init_sha256": _start_sha256(model),
            "rng": {
                "scheme": "per-iteration generator from (seed, rank, iteration)",
                "seed": schedule.seed,
            },
        }

    bar = tqdm(
        total=schedule.iterations,
        initial=start,
        unit="it",
        desc="train",
        disable=not progress or proc.rank != 0,
    )

    def draw(indices, gen, corners=None):
        src, tgt, lesion = pairs.batch(indices, patch=patch, generator=gen, corners=corners)
        src = _augment_contrast(src, source_channels, schedule.contrast_augmentation, gen)
        if model.reference_channel:
            src, tgt = _augment_target_contrast(
                src, tgt, schedule.target_contrast_augmentation, white_matter, gen
            )
        return src, tgt, lesion

    neighbours = schedule.through_plane_weight > 0
    if neighbours:  # samples are slices with a training slice after them
        following = pairs.next_in_volume()
        train_t = torch.as_tensor(train_idx[np.isin(following[train_idx], train_idx)])
    try:
        for it in range(start, schedule.iterations):
            gen = torch.Generator().manual_seed(_derived_seed(schedule.seed, proc.rank, it))
            idx = train_t[torch.randint(len(train_t), (schedule.batch_size,), generator=gen)]
            if neighbours:
                corners = pairs.patch_corners(len(idx), patch, gen) if patch else None
                state = gen.get_state()
                first = draw(idx, gen, corners)
                gen.set_state(state)  # the same augmentation for the neighbour
                second = draw(torch.as_tensor(following[idx]), gen, corners)
                src, tgt = torch.cat([first[0], second[0]]), torch.cat([first[1], second[1]])
                lesion = None if first[2] is None else torch.cat([first[2], second[2]])
            else:
                src, tgt, lesion = draw(idx, gen)
            t = torch.randint(0, num_train, (schedule.batch_size,), generator=gen)
            noise = torch.randn((schedule.batch_size, *tgt.shape[1:]), generator=gen)
            if neighbours:
                t, noise = t.repeat(2), noise.repeat(2, 1, 1, 1)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(
                    it, schedule.iterations, schedule.lr, schedule.lr_decay_iterations
                )
            loss = _loss(
                ddp,
                scheduler,
                model.prediction_type,
                src,
                tgt,
                t,
                noise,
                proc.device,
                proc.dtype,
                _pixel_weight(lesion, schedule.lesion_weight),
                schedule.through_plane_weight,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if schedule.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), schedule.grad_clip)
            optimizer.step()
            ema.step(net.parameters())
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
            done = it + 1
            last = done == schedule.iterations
            if proc.rank == 0 and len(val_idx) and (done % val_every == 0 or last):
                ema.store(net.parameters())
                ema.copy_to(net.parameters())
                net.eval()
                val = _validate(
                    net,
                    scheduler,
                    model.prediction_type,
                    pairs,
                    val_idx,
                    schedule.batch_size,
                    schedule.seed,
                    proc.device,
                    proc.dtype,
                )
                net.train()
                ema.restore(net.parameters())
                val_losses.append((done, val))
                LOGGER.info(
                    "Iteration %d: train loss %.5f, validation loss (EMA) %.5f.",
                    done,
                    float(np.mean(losses[-100:])),
                    val,
                )
            if proc.rank == 0 and (done % schedule.checkpoint_every == 0 or last):
                _save_checkpoint(ckpt_path, snapshot(done))
    finally:
        bar.close()

    ema.copy_to(net.parameters())
    net.eval().to("cpu")
    wall = wall_before + time.monotonic() - t_start
    meta = _training_record(
        model,
        schedule,
        pairs,
        volumes,
        train_idx,
        val_idx,
        patch,
        losses,
        val_losses,
        wall,
        proc,
        training_data,
    )
    if proc.rank == 0:
        save_model_folder(model, model_dir, meta=meta)
        LOGGER.info(
            "Wrote model folder %s (%d iterations, %.0f s).", model_dir, schedule.iterations, wall
        )
    else:
        model.meta.update(meta)
    proc.finish()
    return TrainResult(model, model_dir, schedule.iterations, losses, val_losses)


def _training_record(
    model,
    schedule,
    pairs,
    volumes,
    train_idx,
    val_idx,
    patch,
    losses,
    val_losses,
    wall,
    proc,
    training_data,
) -> dict[str, Any]:
    """What model.json records about a finished run."""
    lesions = volumes.lesions or []
    options = {
        k: v
        for k, v in asdict(schedule).items()
        if k
        not in (
            "iterations",
            "checkpoint_every",
            "val_every",
            "val_fraction",
            "patch_size",
            "grad_clip",
        )
    }
    return {
        "iterations": schedule.iterations,
        "wall_time_s": round(wall, 1),
        **_totals(model.meta.get("fine_tuned_from"), schedule.iterations, wall),
        "metrics": {
            "train_loss_last100": float(np.mean(losses[-100:])) if losses else None,
            "val_loss": val_losses[-1][1] if val_losses else None,
        },
        "training_data": {
            **(training_data or {}),
            "pairs": len(volumes.sources),
            "train_slices": int(len(train_idx)),
            "val_slices": int(len(val_idx)),
            "frame": list(pairs.frame),
            "lesion_masks": sum(m is not None for m in lesions),
            "lesion_voxels": int(pairs.lesion.sum()) if pairs.lesion is not None else 0,
        },
        "training": {
            **options,
            "processes": proc.world,
            "patch": list(patch) if patch else None,
            "precision": str(proc.dtype),
            "optimizer": "AdamW",
        },
    }
