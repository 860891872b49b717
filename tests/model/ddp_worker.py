"""Entry point for the torchrun test: train a few iterations, record this rank's weights.

Usage: torchrun --nproc_per_node 2 ddp_worker.py OUT_DIR
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.model.conftest import phantom_pair, train_on_arrays  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    source, target, mask = phantom_pair((6, 16, 16))
    result = train_on_arrays(
        [source],
        [target],
        [mask],
        out / "model",
        work_dir=out / "work",
        iterations=4,
        batch_size=2,
        lr=1e-3,
        sloppy=True,
        device="cpu",
        precision="fp32",
        checkpoint_every=2,
        val_fraction=0.2,
        progress=False,
    )
    digest = hashlib.sha256()
    for name, tensor in sorted(result.model.net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    rank = os.environ["RANK"]
    (out / f"rank{rank}.sha256").write_text(digest.hexdigest())
    (out / f"rank{rank}.loss").write_text(repr(result.losses))


if __name__ == "__main__":
    main()
