"""Adding white noise to the output up to the study's target-field detail energy.

The 3 T -> 1.5 T output keeps 0.38 of its 1.5 T target's fine-detail energy (Laplacian
RMS in the eroded brain) on the unseen-scanner test sites. This adds Gaussian noise inside
the brain with the sigma that brings the output's Laplacian RMS to a goal, using
RMS^2 = E^2 + 42 sigma^2 for the 7-point Laplacian of white noise. There are two goals:
- the target's own (an oracle: what the bar asks);
- the mean of the site mates' target-field scans (what a study has).
It measures the tissue volumes and the other metrics with benchmarks/quality.py's code.

    python research/experiments/output-noise.py BIDS WORK CACHE DIRECTION OUTPUTS SUBJECT...

CACHE is a quality.py cache folder of the set (the targets' segmentations). OUTPUTS
holds our outputs as SUB.npy (e.g. slice-axis-smoothing.py's OUT_DIR).
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

from harmonize_bids.qc import metrics  # noqa: E402

#: Sum of the squared taps of the 3-D 7-point Laplacian (-6 and six 1s).
LAPLACIAN_GAIN = 42.0


def with_noise(image: np.ndarray, mask: np.ndarray, goal: float, seed: int = 0) -> np.ndarray:
    have = metrics.detail_energy(image, mask)
    sigma = np.sqrt(max(goal**2 - have**2, 0.0) / LAPLACIAN_GAIN)
    noise = sigma * np.random.default_rng(seed).standard_normal(image.shape)
    return np.where(mask, np.clip(image + noise, 0.0, 1.0), 0.0).astype(np.float32)


def main(bids, work, cache, direction_name, outputs, *subjects):
    bids, work, cache, outputs = Path(bids), Path(work), Path(cache), Path(outputs)
    direction = Q.DIRECTIONS[direction_name]
    chosen = Q.labelled(Q.pair_records(work, direction), subjects)
    for case in Q.cases(bids, work, direction, cache / direction_name, chosen):
        ours = np.load(outputs / f"{case.subject}.npy").astype(np.float32)
        site_detail = np.mean([metrics.detail_energy(img, m) for img, m in case.peers.scans])
        images = {
            Q.ORIGINAL: case.source,
            Q.MATCHING: case.peers.histogram_matching(case.source, case.mask),
            "Ours": ours,
            "Ours + noise (target's detail)": with_noise(
                ours, case.mask, case.reference["detail"]
            ),
            "Ours + noise (site mates' detail)": with_noise(ours, case.mask, site_detail),
        }
        for name, image in images.items():
            row = case.evaluate(image)
            print(
                json.dumps({"subject": case.subject, "method": name, **row}, default=float),
                flush=True,
            )


if __name__ == "__main__":
    main(*sys.argv[1:])
