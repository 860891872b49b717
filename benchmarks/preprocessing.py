"""Preprocessing per session on a phantom: wall time, peak memory, skull-strip Dice, alignment.

    python benchmarks/preprocessing.py PHANTOM_DIR [--skull-strip deepbet] [--threads 2]

Each session runs in its own process (so peak memory is that session's), through the
same `harmonize_bids.image.preprocess_t1w` the participant workflow calls. Dice compares
the brain mask with the phantom's ground-truth brain mask, both brought to the raw
image's grid; the offset is the distance in mm between the two masks' world centroids.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

from harmonize_bids.choices import SKULL_STRIP_METHODS
from harmonize_bids.phantom import truth_file


def _one_session(raw: str, truth: str, method: str, threads: int, queue) -> None:
    import os

    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    import nibabel as nib
    import numpy as np
    import torch
    from nibabel.processing import resample_from_to

    from harmonize_bids.image import preprocess_t1w

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        outputs = preprocess_t1w(raw, work, skull_strip=method)
        seconds = time.perf_counter() - start
        mask_img = nib.load(outputs["mask"])
        raw_img = nib.load(raw)
        ours = resample_from_to(mask_img, raw_img, order=0).get_fdata() > 0.5
        truth_img = nib.load(truth)
        reference = truth_img.get_fdata() > 0.5
        dice = 2 * np.logical_and(ours, reference).sum() / (ours.sum() + reference.sum())

        def centroid(image, selection):
            return image.affine[:3, :3] @ np.argwhere(selection).mean(0) + image.affine[:3, 3]

        native = nib.load(outputs["mask"]).get_fdata() > 0
        offset = float(np.linalg.norm(centroid(mask_img, native) - centroid(truth_img, reference)))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"seconds": seconds, "peak_mb": peak_mb, "dice": float(dice), "offset": offset})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phantom", type=Path)
    parser.add_argument("--skull-strip", default="deepbet", choices=SKULL_STRIP_METHODS[:2])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    rows = []
    context = mp.get_context("spawn")
    for raw in sorted(args.phantom.glob("sub-*/ses-*/anat/*_T1w.nii.gz")):
        stem = raw.name.replace("_T1w.nii.gz", "")
        truth = truth_file(args.phantom, *stem.split("_")[:2], "desc-brain_mask.nii.gz")
        queue = context.Queue()
        worker = context.Process(
            target=_one_session, args=(str(raw), str(truth), args.skull_strip, args.threads, queue)
        )
        worker.start()
        result = queue.get()
        worker.join()
        rows.append((stem, result))
    print(
        f"Preprocessing per session ({args.skull_strip}, {args.threads} threads, "
        f"{mp.cpu_count()} cores; load average {Path('/proc/loadavg').read_text().split()[0]})"
    )
    print(f"{'session':24} {'wall s':>7} {'peak MB':>8} {'Dice':>6} {'offset mm':>9}")
    for stem, result in rows:
        print(
            f"{stem:24} {result['seconds']:7.1f} {result['peak_mb']:8.0f} "
            f"{result['dice']:6.3f} {result['offset']:9.2f}"
        )
    print(json.dumps({stem: result for stem, result in rows}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
