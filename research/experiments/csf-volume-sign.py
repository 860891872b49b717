"""Which way the harmonized CSF volume misses the target's, and why (cached outputs).

See research/experiments/csf-volume-sign.md. Usage, in the folder of a quality.py run:

    python csf-volume-sign.py DIRECTION HELDOUT_BIDS HELDOUT_WORK CACHE [--smooth SIGMA]
        [--output-name NAME]

For every held-out subject it reads the cached 10-step output of quality.py (``--cache
CACHE --save-images``; ``--output-name end2010.npy`` reads a --brain output of
sampler-schedule-screen.py instead) and the cached target segmentation, and prints one
JSON line: the signed Atropos volume differences (image - target, ml) of Original and of
the output, the median intensity of the eroded true tissue cores in source, target and
output, and the high-pass (image minus its Gaussian blur, sigma 1 voxel) sd inside the
brain of target and output. ``--smooth SIGMA`` also segments the target blurred by a
Gaussian of SIGMA voxels and prints its signed volume differences to the unblurred
target's segmentation.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality

from harmonize_bids.qc import metrics


def signed_ml(labels: np.ndarray, reference: dict[str, float]) -> dict[str, float]:
    volumes = metrics.tissue_volumes(labels)
    return {t: round((volumes[t] - reference[t]) / 1000, 1) for t in metrics.TISSUES}


def high_pass_sd(image: np.ndarray, mask: np.ndarray) -> float:
    return round(float((image - ndimage.gaussian_filter(image, 1.0))[mask].std()), 4)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("direction")
parser.add_argument("bids", type=Path)
parser.add_argument("work", type=Path)
parser.add_argument("cache", type=Path)
parser.add_argument("--smooth", type=float)
parser.add_argument("--output-name", default="ours_dpm_10_steps_*.npy")
cli = parser.parse_args()
for record in quality._pairs(cli.work, cli.direction):
    sub = record["subject"]
    folder = cli.cache / cli.direction / sub
    source, target = quality._load(record["source"]), quality._load(record["target"])
    mask = quality._load(record["mask"]) > 0
    truth = quality._truth_labels(cli.bids, record)
    output = np.load(next(folder.glob(cli.output_name))).astype(np.float32)
    target_volumes = metrics.tissue_volumes(
        quality._load(folder / "target_dseg.nii.gz").astype(np.uint8)
    )
    row = {
        "subject": sub,
        "original_ml": signed_ml(metrics.segment_tissues(source, mask), target_volumes),
        "output_ml": signed_ml(metrics.segment_tissues(output, mask), target_volumes),
        "core_median_source_target_output": {},
    }
    for tissue, label in metrics.TISSUE_LABELS.items():
        core = ndimage.binary_erosion((truth == label) & mask)
        row["core_median_source_target_output"][tissue] = [
            round(float(np.median(image[core])), 3) for image in (source, target, output)
        ]
    row["high_pass_sd_target_output"] = [high_pass_sd(target, mask), high_pass_sd(output, mask)]
    if cli.smooth:
        blurred = ndimage.gaussian_filter(target, cli.smooth)
        row[f"target_blurred_{cli.smooth:g}_ml"] = signed_ml(
            metrics.segment_tissues(blurred, mask), target_volumes
        )
    print(json.dumps(row), flush=True)
