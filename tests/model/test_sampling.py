"""Sampling: determinism, batch invariance, geometry, oracle recovery."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harmonize_bids.model import new_model, sample_volume
from harmonize_bids.model.sampling import sample, slice_generators
from harmonize_bids.model.schedulers import (
    DPM_LAST_TIMESTEP,
    sampling_scheduler,
    schedule_config,
    training_scheduler,
)

from .conftest import phantom_pair


@pytest.fixture(scope="module")
def tiny_model():
    return new_model("sloppy", seed=3)


@pytest.mark.parametrize(("sampler", "steps"), [("dpm", 6), ("ddim", 6), ("ddpm", 30)])
def test_same_seed_same_volume_any_batch_size(tiny_model, sampler, steps):
    source, _, mask = phantom_pair()
    runs = [
        sample_volume(
            tiny_model,
            source,
            mask,
            sampler=sampler,
            steps=steps,
            seed=7,
            batch_size=b,
            device="cpu",
            progress=False,
            noise="independent",
        )
        for b in (1, 3, 16)
    ]
    again = sample_volume(
        tiny_model,
        source,
        mask,
        sampler=sampler,
        steps=steps,
        seed=7,
        batch_size=1,
        device="cpu",
        progress=False,
        noise="independent",
    )
    for out in runs[1:] + [again]:
        assert np.array_equal(runs[0], out)
    other = sample_volume(
        tiny_model,
        source,
        mask,
        sampler=sampler,
        steps=steps,
        seed=8,
        batch_size=3,
        device="cpu",
        progress=False,
        noise="independent",
    )
    assert not np.array_equal(runs[0], other)


def test_output_geometry_mask_and_range(tiny_model):
    source, _, mask = phantom_pair((9, 23, 19))  # odd in-plane sizes, not multiples of 2
    mask[:2] = False  # empty slices are skipped
    out = sample_volume(tiny_model, source, mask, steps=4, device="cpu", progress=False)
    assert out.shape == source.shape and out.dtype == np.float32
    assert np.all(out[~mask] == 0)
    assert out.min() >= 0 and out.max() <= 1
    assert np.all(np.isfinite(out))
    assert out[mask].std() > 0


def test_slicing_across_another_axis_is_slicing_the_transposed_volume(tiny_model):
    source, _, mask = phantom_pair((9, 12, 10))
    mask[:, :2] = False

    def run(volume, brain, axis):
        return sample_volume(
            tiny_model, volume, brain, steps=3, device="cpu", progress=False, axis=axis
        )

    coronal = run(source, mask, 1)
    transposed = run(np.swapaxes(source, 0, 1), np.swapaxes(mask, 0, 1), 0)
    assert coronal.shape == source.shape
    assert np.array_equal(coronal, np.swapaxes(transposed, 0, 1))
    assert not np.array_equal(coronal, run(source, mask, None))  # the model's own: sagittal


def test_ensemble_is_deterministic_and_differs(tiny_model):
    source, _, mask = phantom_pair()
    one = sample_volume(tiny_model, source, mask, steps=4, device="cpu", progress=False)
    two = sample_volume(
        tiny_model, source, mask, steps=4, ensemble=2, device="cpu", progress=False
    )
    two_again = sample_volume(
        tiny_model, source, mask, steps=4, ensemble=2, device="cpu", batch_size=2, progress=False
    )
    assert np.array_equal(two, two_again)
    assert not np.array_equal(one, two)


def test_shared_noise_is_shared_across_slices():
    shared = slice_generators(0, 0, [0, 5], noise="shared")
    independent = slice_generators(0, 0, [0, 5], noise="independent")
    a, b = (torch.randn(4, generator=g) for g in shared)
    c, d = (torch.randn(4, generator=g) for g in independent)
    assert torch.equal(a, b)
    assert not torch.equal(c, d)


class Oracle(torch.nn.Module):
    """Returns the exact epsilon / v for a known clean target ``x0`` (network scale)."""

    def __init__(self, x0: torch.Tensor, prediction_type: str) -> None:
        super().__init__()
        self.x0 = x0
        self.prediction_type = prediction_type
        self.alphas_cumprod = training_scheduler(schedule_config()).alphas_cumprod

    def forward(self, net_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x_t = net_in[:, -1:]
        ab = self.alphas_cumprod[int(t)]
        eps = (x_t - ab.sqrt() * self.x0) / (1 - ab).sqrt()
        if self.prediction_type == "v_prediction":
            return ab.sqrt() * eps - (1 - ab).sqrt() * self.x0
        return eps


@pytest.mark.parametrize(("sampler", "steps"), [("ddim", 10), ("dpm", 10), ("ddpm", 100)])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_oracle_recovers_clean_slice(sampler, steps, prediction_type):
    _, target, _ = phantom_pair((3, 17, 13))
    x0 = torch.from_numpy(target[1:2, None]) * 2 - 1  # (1, 1, 17, 13) in [-1, 1]
    source = torch.zeros_like(x0)
    scheduler = sampling_scheduler(schedule_config(prediction_type), sampler)
    out = sample(
        Oracle(x0, prediction_type),
        scheduler,
        source,
        steps=steps,
        generators=slice_generators(0, 0, [0]),
    )
    assert torch.allclose(out, x0, atol=1e-3), float((out - x0).abs().max())


@pytest.mark.parametrize("steps", [2, 5, 10, 20, 960, 1000])
def test_dpm_calls_evenly_from_the_top_down_to_the_last_timestep(steps):
    scheduler = sampling_scheduler(schedule_config(), "dpm")
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps.numpy()
    gaps = -np.diff(timesteps)
    assert len(timesteps) == steps and timesteps[0] == 999
    assert timesteps[-1] == min(DPM_LAST_TIMESTEP, 1000 - steps)
    assert gaps.min() >= 1 and gaps.max() - gaps.min() <= 1


def test_a_model_folder_sets_the_last_dpm_timestep():
    scheduler = sampling_scheduler({**schedule_config(), "dpm_last_timestep": 20}, "dpm")
    scheduler.set_timesteps(10)
    assert scheduler.timesteps.tolist() == [999, 890, 781, 673, 564, 455, 346, 238, 129, 20]
    broken = sampling_scheduler({**schedule_config(), "dpm_last_timestep": -1}, "dpm")
    with pytest.raises(ValueError, match="last timestep"):
        broken.set_timesteps(10)


def test_dpm_refuses_more_steps_than_timesteps():
    with pytest.raises(ValueError, match="1 to 1000 steps"):
        sampling_scheduler(schedule_config(), "dpm").set_timesteps(1001)


def test_ddim_keeps_trailing_spacing():
    scheduler = sampling_scheduler(schedule_config(), "ddim")
    scheduler.set_timesteps(10)
    assert scheduler.timesteps.tolist() == list(range(999, 0, -100))


def test_context_slices_model_runs(tmp_path):
    from harmonize_bids.model import load_model_folder, save_model_folder

    model = new_model("sloppy", context_slices=1)
    assert model.net.config.in_channels == 4
    source, _, mask = phantom_pair((7, 18, 14))
    out = sample_volume(model, source, mask, steps=3, device="cpu", progress=False)
    loaded = load_model_folder(save_model_folder(model, tmp_path / "m"))
    assert loaded.context_slices == 1
    assert np.array_equal(
        out, sample_volume(loaded, source, mask, steps=3, device="cpu", progress=False)
    )
