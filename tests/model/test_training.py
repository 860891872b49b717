"""Training: overfitting, resume, export, bf16 quality, DDP across two processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harmonize_bids.model import load_model_folder, sample_volume
from harmonize_bids.model.folder import new_model
from harmonize_bids.model.training import CHECKPOINT, fine_tuning_start, learning_rate

from .conftest import phantom_pair, train_on_arrays


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    torch.set_num_threads(1)
    source, target, mask = phantom_pair((3, 20, 18))
    mask[[0, 2]] = False  # one slice pair
    out = tmp_path_factory.mktemp("overfit")
    result = train_on_arrays(
        [source],
        [target],
        [mask],
        out / "model",
        iterations=400,
        batch_size=4,
        lr=3e-3,
        ema_decay=0.99,
        sloppy=True,
        device="cpu",
        precision="fp32",
        val_fraction=0,
        checkpoint_every=1000,
        progress=False,
    )
    return result, source, target, mask


def test_tiny_network_overfits_one_slice_pair(overfit):
    result, source, target, mask = overfit
    first, last = np.mean(result.losses[:10]), np.mean(result.losses[-10:])
    assert first / last >= 10, (first, last)
    model = load_model_folder(result.model_dir)  # the export is the EMA model
    assert model.meta["iterations"] == 400
    out = sample_volume(
        model, source, mask, steps=10, device="cpu", precision="fp32", progress=False
    )
    mse_original = np.mean((source[mask] - target[mask]) ** 2)
    mse_model = np.mean((out[mask] - target[mask]) ** 2)
    assert mse_model < 0.5 * mse_original, (mse_model, mse_original)


def test_bf16_sampling_matches_fp32(overfit):
    result, source, _, mask = overfit
    fp32 = sample_volume(
        result.model, source, mask, steps=10, device="cpu", precision="fp32", progress=False
    )
    bf16 = sample_volume(
        result.model, source, mask, steps=10, device="cpu", precision="bf16", progress=False
    )
    assert np.abs(fp32 - bf16)[mask].mean() < 0.02


def test_resume_continues_exactly(tmp_path):
    source, target, mask = phantom_pair((6, 16, 16))
    kwargs = dict(
        batch_size=2,
        lr=1e-3,
        sloppy=True,
        device="cpu",
        precision="fp32",
        val_fraction=0.2,
        checkpoint_every=3,
        progress=False,
    )
    straight = train_on_arrays([source], [target], [mask], tmp_path / "a", iterations=6, **kwargs)
    train_on_arrays([source], [target], [mask], tmp_path / "b", iterations=3, **kwargs)
    assert (tmp_path / "b.work" / CHECKPOINT).is_file()
    resumed = train_on_arrays(
        [source], [target], [mask], tmp_path / "b", iterations=6, resume=True, **kwargs
    )
    assert resumed.losses == straight.losses
    assert resumed.val_losses == straight.val_losses and straight.val_losses
    for (name, a), b in zip(
        straight.model.net.state_dict().items(),
        resumed.model.net.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b), name


def test_learning_rate_constant_then_linear_decay():
    rates = [learning_rate(it, 10, 1.0, 4) for it in range(10)]
    assert rates == [1.0] * 7 + [0.75, 0.5, 0.25]
    assert [learning_rate(it, 10, 1.0, 0) for it in range(10)] == [1.0] * 10


def test_constant_run_resumed_with_decay_matches_straight_decayed_run(tmp_path):
    source, target, mask = phantom_pair((6, 16, 16))
    kwargs = dict(
        batch_size=2,
        lr=1e-2,
        sloppy=True,
        device="cpu",
        precision="fp32",
        val_fraction=0,
        checkpoint_every=4,
        progress=False,
    )
    straight = train_on_arrays(
        [source], [target], [mask], tmp_path / "a", iterations=7, lr_decay_iterations=3, **kwargs
    )
    constant = train_on_arrays([source], [target], [mask], tmp_path / "c", iterations=7, **kwargs)
    train_on_arrays([source], [target], [mask], tmp_path / "b", iterations=4, **kwargs)
    annealed = train_on_arrays(
        [source],
        [target],
        [mask],
        tmp_path / "b",
        iterations=7,
        lr_decay_iterations=3,
        resume=True,
        **kwargs,
    )
    assert annealed.losses == straight.losses
    assert annealed.losses[:5] == constant.losses[:5] and annealed.losses != constant.losses
    assert annealed.model.meta["training"]["lr_decay_iterations"] == 3


def test_torchrun_two_ranks_identical_weights(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(worker), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sha0, sha1 = ((tmp_path / f"rank{r}.sha256").read_text() for r in (0, 1))
    assert sha0 == sha1
    # the two ranks drew different batches, yet ended with the same weights
    assert (tmp_path / "rank0.loss").read_text() != (tmp_path / "rank1.loss").read_text()
    assert load_model_folder(tmp_path / "model").meta["training"]["processes"] == 2


def test_validation_holds_out_whole_volumes(tmp_path):
    pairs = [phantom_pair((6, 16, 16), seed=s) for s in range(3)]
    result = train_on_arrays(
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        [p[2] for p in pairs],
        tmp_path / "m",
        iterations=2,
        batch_size=2,
        sloppy=True,
        device="cpu",
        precision="fp32",
        val_fraction=0.34,
        checkpoint_every=2,
        patch_size=8,
        context_slices=1,
        progress=False,
    )
    data = result.model.meta["training_data"]
    per_volume = int(pairs[0][2].any(axis=(1, 2)).sum())
    assert data["val_slices"] == per_volume and data["train_slices"] == 2 * per_volume
    assert len(result.val_losses) == 1 and np.isfinite(result.val_losses[0][1])
    assert load_model_folder(tmp_path / "m").meta["training"]["patch"] == [8, 8]


def test_fine_tuning_starts_from_the_given_model(tmp_path):
    source, target, mask = phantom_pair((6, 16, 16))
    kwargs = dict(
        batch_size=2,
        lr=1e-3,
        device="cpu",
        precision="fp32",
        val_fraction=0,
        checkpoint_every=100,
        progress=False,
    )
    base = train_on_arrays(
        [source],
        [target],
        [mask],
        tmp_path / "base",
        iterations=3,
        sloppy=True,
        context_slices=1,
        **kwargs,
    ).model
    # a model trained from random weights counts only its own run
    assert base.meta["iterations_total"] == 3
    assert base.meta["wall_time_total_s"] == base.meta["wall_time_s"]
    base.scheduler_config["dpm_last_timestep"] = 20  # a sampling setting, kept by fine-tuning
    base.meta["domain"] = {"source": {"csf_wm": [0.2, 0.5], "gm_wm": [0.6, 0.8]}}
    # a zero learning rate keeps the weights: the start is exactly the base model
    same = train_on_arrays(
        [source],
        [target],
        [mask],
        tmp_path / "same",
        iterations=2,
        lr=0.0,
        init_from=base,
        **{k: v for k, v in kwargs.items() if k != "lr"},
    ).model
    for (name, a), b in zip(
        base.net.state_dict().items(), same.net.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    tuned = load_model_folder(
        train_on_arrays(
            [source], [target], [mask], tmp_path / "tuned", iterations=2, init_from=base, **kwargs
        ).model_dir
    )
    assert tuned.context_slices == 1 and tuned.network_config == base.network_config
    assert tuned.scheduler_config == base.scheduler_config
    assert tuned.meta["domain"] == base.meta["domain"]  # for the trainer to widen
    assert tuned.meta["fine_tuned_from"]["weights_sha256"] == base.weights_sha256
    assert tuned.meta["fine_tuned_from"]["iterations"] == 3
    assert tuned.meta["iterations"] == 2 and tuned.meta["iterations_total"] == 5
    assert tuned.meta["wall_time_total_s"] > tuned.meta["wall_time_s"]
    assert tuned.weights_sha256 != base.weights_sha256
    # resuming the fine-tuning from the base run's checkpoint is refused
    with pytest.raises(ValueError, match="started from random weights"):
        train_on_arrays(
            [source],
            [target],
            [mask],
            tmp_path / "base",
            iterations=4,
            init_from=base,
            resume=True,
            **kwargs,
        )
    with pytest.raises(ValueError, match="fine-tune the 1.5T->3T model"):
        train_on_arrays(
            [source],
            [target],
            [mask],
            tmp_path / "other",
            iterations=1,
            init_from=base,
            source_field=3.0,
            target_field=1.5,
            **kwargs,
        )


def test_lesion_masks_are_cut_with_the_same_patch_as_the_slices():
    from harmonize_bids.model.data import extract_slice_pairs

    source, target, mask = phantom_pair((6, 24, 20))
    lesion = np.zeros_like(mask)
    lesion[2:4, 10:13, 8:11] = True
    marked = np.where(lesion, 0.123, target)  # the lesion, visible in the target
    pairs = extract_slice_pairs(
        [source, source], [marked, target], [mask, mask], lesions=[lesion, None]
    )
    assert pairs.lesion.shape == pairs.target.shape
    assert int(pairs.lesion.sum()) == int(lesion.sum())  # the second pair has none
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        src, tgt, les = pairs.batch(torch.arange(len(pairs)), patch=(16, 16), generator=gen)
        assert les.shape == tgt.shape and src.shape[-2:] == (16, 16)
        assert torch.equal(les, torch.isclose(tgt, torch.tensor(0.123)))
    assert extract_slice_pairs([source], [target], [mask]).lesion is None
    with pytest.raises(ValueError, match="lesion masks for 2 pairs"):
        extract_slice_pairs([source, source], [target, target], [mask, mask], lesions=[lesion])


def test_neighbouring_slices_are_known_within_each_volume():
    from harmonize_bids.model.data import extract_slice_pairs

    source, target, mask = phantom_pair((6, 16, 16))
    mask[0] = False  # no brain: not a training slice
    mask[3] = False  # a gap: slice 2 has no neighbour after it
    pairs = extract_slice_pairs([source, source], [target, target], [mask, mask])
    assert pairs.position.tolist() == [1, 2, 4] * 2
    assert pairs.next_in_volume().tolist() == [1, -1, -1, 4, -1, -1]
    # the given corners are used: one corner twice cuts the two equal volumes alike
    corners = pairs.patch_corners(1, (8, 8), torch.Generator().manual_seed(0)) * 2
    first, _, _ = pairs.batch(torch.tensor([0, 3]), patch=(8, 8), corners=corners)
    again, _, _ = pairs.batch(torch.tensor([0, 3]), patch=(8, 8), corners=corners)
    assert torch.equal(first, again) and torch.equal(first[0], first[1])


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon", "sample"])
def test_clean_estimate_of_the_true_prediction_is_the_clean_image(prediction_type):
    from diffusers import DDPMScheduler

    from harmonize_bids.model.training import _clean_estimate, _target

    scheduler = DDPMScheduler(num_train_timesteps=100)
    x0, noise = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8)
    t = torch.tensor([0, 40, 90])
    x_t = scheduler.add_noise(x0, noise, t)
    truth = _target(scheduler, prediction_type, x0, noise, t)
    estimate = _clean_estimate(scheduler, prediction_type, x_t, truth, t)
    torch.testing.assert_close(estimate, x0, atol=1e-4, rtol=1e-4)


def test_through_plane_term_penalizes_errors_that_differ_between_neighbours():
    from diffusers import DDPMScheduler

    from harmonize_bids.model.training import _loss, _target

    scheduler = DDPMScheduler(num_train_timesteps=10)
    src, tgt = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    noise, t = torch.randn(2, 1, 8, 8).repeat(2, 1, 1, 1), torch.tensor([3, 7, 3, 7])
    x0 = tgt * 2 - 1  # to_network
    truth = _target(scheduler, "v_prediction", x0, noise, t)
    shared = torch.full_like(truth, 0.1)  # the same error on both neighbours
    differing = torch.cat([shared[:2], -shared[2:]])  # errors of equal size that differ

    def loss(error, weight):
        return float(
            _loss(
                lambda x, _: truth + error,
                scheduler,
                "v_prediction",
                src,
                tgt,
                t,
                noise,
                torch.device("cpu"),
                torch.float32,
                through_plane_weight=weight,
            )
        )

    assert loss(shared, 0.0) == pytest.approx(loss(differing, 0.0))
    assert loss(shared, 1.0) == pytest.approx(loss(shared, 0.0), abs=1e-6)
    assert loss(differing, 1.0) > loss(differing, 0.0) + 1e-3


def test_training_with_the_through_plane_term_records_it(tmp_path):
    source, target, mask = phantom_pair((6, 16, 16))
    result = train_on_arrays(
        [source],
        [target],
        [mask],
        tmp_path / "model",
        iterations=2,
        batch_size=2,
        patch_size=8,
        through_plane_weight=1.0,
        sloppy=True,
        device="cpu",
        precision="fp32",
        val_fraction=0,
        checkpoint_every=100,
        progress=False,
    )
    assert load_model_folder(result.model_dir).meta["training"]["through_plane_weight"] == 1.0
    assert all(np.isfinite(result.losses))


def test_lesion_weight_counts_lesion_pixels_more():
    from diffusers import DDPMScheduler

    from harmonize_bids.model.training import _loss, _pixel_weight

    torch.manual_seed(0)
    net = torch.nn.Conv2d(2, 1, 3, padding=1)
    scheduler = DDPMScheduler(num_train_timesteps=10)
    src, tgt = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    noise, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 7])
    lesion = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    lesion[0, 0, 2:4, 2:4] = True

    @torch.no_grad()
    def loss(weight):
        return float(
            _loss(
                lambda x, _: net(x),
                scheduler,
                "epsilon",
                src,
                tgt,
                t,
                noise,
                torch.device("cpu"),
                torch.float32,
                weight,
            )
        )

    assert _pixel_weight(lesion, 1.0) is None and _pixel_weight(None, 10.0) is None
    weight = _pixel_weight(lesion, 10.0)
    assert float(weight[lesion].min()) == 10.0 and float(weight[~lesion].max()) == 1.0
    plain, everywhere = loss(None), loss(torch.full((2, 1, 8, 8), 3.0))
    assert everywhere == pytest.approx(3 * plain, rel=1e-5)
    assert loss(weight) > plain
    with pytest.raises(ValueError, match="lesion_weight"):
        train_on_arrays(
            [src[0, 0].numpy()[None]],
            [tgt[0, 0].numpy()[None]],
            [np.ones((1, 8, 8), bool)],
            "unused",
            lesion_weight=0.5,
        )


@pytest.mark.parametrize(
    ("base_reference", "reference"), [(False, False), (True, True), (False, True)]
)
def test_widened_fine_tuning_starts_from_the_base_outputs(base_reference, reference):
    """New input channels (context slices, a reference channel) start at zero weight."""
    base = new_model("sloppy", reference_channel=base_reference, seed=3)
    wide = fine_tuning_start(base, 1.5, 3.0, reference_channel=reference, context_slices=1)
    assert wide.context_slices == 1 and wide.reference_channel == reference
    added = 2 + int(reference and not base_reference)
    assert wide.network_config["in_channels"] == base.network_config["in_channels"] + added
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, base.network_config["in_channels"], 16, 16, generator=generator)
    extra = torch.rand(2, 3, 16, 16, generator=generator)  # neighbours, new reference
    own_reference = x[:, 1:-1] if base_reference else extra[:, 2:][:, : int(reference)]
    widened = torch.cat([extra[:, :1], x[:, :1], extra[:, 1:2], own_reference, x[:, -1:]], 1)
    t = torch.tensor([500, 20])
    with torch.no_grad():
        assert torch.allclose(wide.net(widened, t).sample, base.net(x, t).sample, atol=1e-6)
    with pytest.raises(ValueError, match="cannot be removed"):
        fine_tuning_start(wide, 1.5, 3.0, context_slices=0)


def test_target_contrast_augmentation_maps_reference_and_target_together():
    from harmonize_bids.model.training import _augment_target_contrast

    gen = torch.Generator().manual_seed(0)
    x = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8).repeat(4, 1, 1, 1)
    src = torch.cat([x, x], dim=1)  # source slice, reference channel
    out, target = _augment_target_contrast(src, x.clone(), 0.3, 0.81, gen)
    assert torch.equal(out[:, :1], src[:, :1])  # the source slice is left alone
    assert torch.allclose(out[:, 1:], target)  # one map for reference and target
    assert not torch.allclose(target, x)
    level = torch.full((4, 1, 1, 1), 0.81)
    assert torch.allclose(_augment_target_contrast(level, level, 0.3, 0.81, gen)[1], level)
    assert torch.all(target[..., 0, 0] == 0) and target.max() <= 1.0
    assert torch.all(target.flatten(1).diff(dim=1) >= 0)  # monotone
    same, same_target = _augment_target_contrast(src, x, 0.0, 0.81, gen)
    assert same is src and same_target is x
