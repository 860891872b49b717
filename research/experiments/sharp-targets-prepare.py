"""3 T -> 1.5 T training pairs with the target resampled by a windowed sinc, not linearly.

See research/experiments/sharp-targets.md. Usage:

    python sharp-targets-prepare.py SRC_WORK DST_WORK sub-01 [sub-02 ...]

For each subject it repeats the registration of ``harmonize_bids.image.register_arrays``
(same settings and seed) on the preprocessed sessions of SRC_WORK, resamples the target
with ``lanczosWindowedSinc`` (clipped to the target's range), re-anchors white matter as
``prepare_pair`` does, and writes DST_WORK/pairs/sub-XX/ records that
``harmonize-bids-train -w DST_WORK`` reuses (same inputs). As a check it also resamples
linearly and prints the mean absolute difference to SRC_WORK's recorded target (0 when
the registration is reproduced). It imports two private helpers of harmonize_bids.image
(``_ants_seed``, ``crop_box``) so that the registration is repeated exactly.
"""

import json
import sys
from pathlib import Path

import ants
import nibabel as nib
import numpy as np

from harmonize_bids.image import anchor_white_matter_file
from harmonize_bids.image._io import crop_box, load_image, save_like, to_ants
from harmonize_bids.image.register import CROP_MARGIN, _ants_seed

DIRECTION = "3T-to-1.5T"


def register(fixed_img, fixed, moving_img, moving, mask):
    """The transforms register_arrays estimates (SyN, Mattes, seed 1)."""
    fbox, fixed_affine = crop_box(fixed != 0, fixed_img.affine, CROP_MARGIN)
    mbox, moving_affine = crop_box(moving != 0, moving_img.affine, CROP_MARGIN)
    with _ants_seed(1):
        return ants.registration(
            to_ants(fixed[fbox], fixed_affine),
            to_ants(moving[mbox], moving_affine),
            type_of_transform="SyN",
            aff_metric="mattes",
            syn_metric="mattes",
            mask=to_ants((mask[fbox] > 0).astype(np.float32), fixed_affine),
        )


src_work, dst_work = Path(sys.argv[1]), Path(sys.argv[2])
for sub in sys.argv[3:]:
    pair_dir = src_work / "pairs" / sub
    record = json.loads((pair_dir / f"pair_{DIRECTION}.json").read_text())
    target_session = json.loads((pair_dir / "ses-1p5T-run-none/preprocessed.json").read_text())
    out_dir = dst_work / "pairs" / sub
    out_dir.mkdir(parents=True, exist_ok=True)
    fixed_img, fixed = load_image(record["source"])
    moving_img, moving = load_image(target_session["preproc"])
    _, mask = load_image(record["mask"])
    reg = register(fixed_img, fixed, moving_img, moving, mask)
    resampled = {}
    for interpolator in ("linear", "lanczosWindowedSinc"):
        resampled[interpolator] = (
            ants.apply_transforms(
                to_ants(fixed, fixed_img.affine),
                to_ants(moving, moving_img.affine),
                reg["fwdtransforms"],
                interpolator=interpolator,
            )
            .numpy()
            .astype(np.float32)
        )
    for transform in {*reg["fwdtransforms"], *reg["invtransforms"]}:
        Path(transform).unlink(missing_ok=True)

    files = {name: out_dir / f"{name}_{DIRECTION}.nii.gz" for name in ("target", "linear")}
    save_like(
        np.clip(resampled["lanczosWindowedSinc"], 0, float(moving.max())),
        fixed_img,
        files["target"],
    )
    save_like(resampled["linear"], fixed_img, files["linear"])
    for path in files.values():
        anchor_white_matter_file(path, record["mask"], path)
    recorded = np.asanyarray(nib.load(record["target"]).dataobj)
    linear = np.asanyarray(nib.load(files["linear"]).dataobj)
    difference = float(np.abs(linear - recorded)[mask > 0].mean())
    print(sub, "linear vs recorded target, mean abs difference:", difference, flush=True)
    files["linear"].unlink()
    (out_dir / f"pair_{DIRECTION}.json").write_text(
        json.dumps({**record, "target": str(files["target"])}, indent=2)
    )
