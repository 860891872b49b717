"""The denoising network: a diffusers ``UNet2DModel`` conditioned by concatenation.

Input channels are ``2 * context_slices + 1`` source slices (the slice itself and its
neighbours along the slice axis), then, for a reference-conditioned model, the source
slice matched to the study's target-field reference, then the noisy target slice, as in
Durrer et al. (source ⊕ x_t).  The network is fully convolutional: any slice size works
once padded to :func:`pad_multiple`.
"""

from __future__ import annotations

import copy
from typing import Any

from diffusers import UNet2DModel

#: The default network: 4 levels (32-64-64-128), one residual block per level, no
#: attention; 2.88 M parameters with 2 input channels.
DEFAULT_NETWORK: dict[str, Any] = {
    "in_channels": 2,
    "out_channels": 1,
    "block_out_channels": [32, 64, 64, 128],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D"] * 4,
    "up_block_types": ["UpBlock2D"] * 4,
    "norm_num_groups": 32,
    "add_attention": False,  # diffusers adds a mid-block self-attention unless told not to
}

#: A tiny network for tests and ``--sloppy`` runs (two levels, 8-16 channels).
SLOPPY_NETWORK: dict[str, Any] = {
    "in_channels": 2,
    "out_channels": 1,
    "block_out_channels": [8, 16],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D"] * 2,
    "up_block_types": ["UpBlock2D"] * 2,
    "norm_num_groups": 8,
    "add_attention": False,
}

NETWORKS = {"default": DEFAULT_NETWORK, "sloppy": SLOPPY_NETWORK}


def network_config(
    name: str | dict[str, Any] = "default",
    *,
    context_slices: int = 0,
    reference_channel: bool = False,
) -> dict[str, Any]:
    """Return ``UNet2DModel`` keyword arguments for a named config (or a copy of a dict).

    ``context_slices`` neighbouring source slices on each side add ``2 * context_slices``
    input channels, ``reference_channel`` one more.
    """
    if isinstance(name, str):
        if name not in NETWORKS:
            raise ValueError(f"Unknown network config {name!r}; choose one of {sorted(NETWORKS)}.")
        config = copy.deepcopy(NETWORKS[name])
    else:
        config = copy.deepcopy(dict(name))
    config["in_channels"] = 2 * context_slices + 2 + int(reference_channel)
    return config


def build_network(config: dict[str, Any]) -> UNet2DModel:
    """Instantiate the UNet from its keyword arguments (``config.json`` of a model folder)."""
    return UNet2DModel(**config)


def pad_multiple(config: dict[str, Any]) -> int:
    """Slice sizes must be multiples of this (one factor 2 per downsampling level)."""
    return 2 ** (len(config["block_out_channels"]) - 1)


def count_parameters(net: UNet2DModel) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
