"""How well each ANTs registration aligns a travelling subject's two phantom scans.

The phantom draws each session's head pose (rotation, shift) and images one anatomy, so its
ground-truth tissue labels (derivatives/phantom) tell how well a registration aligned the
anatomy. The target scan is registered to the source scan (cropped to the nonzero boxes, the
source brain mask as the metric mask, seed 1, as harmonize_bids.image.register does), the
target's truth labels are carried along (nearest label), and their Dice with the source's
truth labels is measured inside the source brain mask.

Usage: python pair-registration.py PHANTOM_DIR SUBJECT SOURCE_SES TARGET_SES [VARIANT ...]
Scans are the raw T1w times the truth brain mask, scaled to their 99.9th percentile.
"""

import sys
import time
from pathlib import Path

import ants
import nibabel as nib
import numpy as np

from harmonize_bids.image._io import crop_box, to_ants
from harmonize_bids.image.register import CROP_MARGIN


def load(path):
    img = nib.load(path)
    return img, np.asanyarray(img.dataobj, dtype=np.float32)


def scan(root, sub, ses):
    img, data = load(root / sub / f"ses-{ses}/anat/{sub}_ses-{ses}_T1w.nii.gz")
    truth = root / "derivatives/phantom" / sub / f"ses-{ses}/anat"
    _, mask = load(truth / f"{sub}_ses-{ses}_desc-brain_mask.nii.gz")
    labels_img, labels = load(truth / f"{sub}_ses-{ses}_dseg.nii.gz")
    data = data * (mask > 0.5)
    return img, data / np.percentile(data[mask > 0.5], 99.9), mask > 0.5, labels_img, labels


def main(root, sub, source_ses, target_ses, *names):
    si, s, brain, sli, sl = scan(Path(root), sub, source_ses)
    ti, t, _, tli, tl = scan(Path(root), sub, target_ses)
    fbox, faff = crop_box(s != 0, si.affine, CROP_MARGIN)
    mbox, maff = crop_box(t != 0, ti.affine, CROP_MARGIN)
    fixed, moving = to_ants(s[fbox], faff), to_ants(t[mbox], maff)
    mask = to_ants(brain[fbox].astype(np.float32), faff)
    grid = to_ants(s, si.affine)
    truth = ants.apply_transforms(grid, to_ants(sl, sli.affine), [], interpolator="genericLabel")

    def ants_type(kind):
        return lambda: ants.registration(fixed, moving, kind, mask=mask)["fwdtransforms"]

    variants = {
        "SyN (affine then SyN)": ants_type("SyN"),
        "Affine": ants_type("Affine"),
        "Similarity": ants_type("Similarity"),
        "Rigid": ants_type("Rigid"),
    }
    print("| subject | variant | seconds | truth Dice CSF / GM / WM |\n|---|---|---|---|")
    for name in names or variants:
        ants.config._random_seed = 1
        start = time.monotonic()
        transforms = variants[name]()
        seconds = time.monotonic() - start
        moved = ants.apply_transforms(
            grid, to_ants(tl, tli.affine), transforms, interpolator="genericLabel"
        ).numpy()
        dice = []
        for label in (1, 2, 3):
            a, b = (truth.numpy() == label) & brain, (moved == label) & brain
            dice.append(2 * (a & b).sum() / (a.sum() + b.sum()))
        print(f"| {sub} | {name} | {seconds:.1f} | " + " / ".join(f"{d:.3f}" for d in dice) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
