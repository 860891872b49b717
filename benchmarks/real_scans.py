"""Real scans: does harmonization move a real scan toward a real scan of the other field?

    python benchmarks/real_scans.py --scan-1p5T ch2.nii.gz --scan-3T raw.nii.gz \
        [--model-1p5T-to-3T DIR] [--model-3T-to-1p5T DIR] [--work DIR] [--output FILE]

No real paired scans are public; real single scans are (for evaluation only, never for
training). The record in docs/real_scans.md used:

- 1.5 T: Colin 27 (``ch2.nii.gz`` of Debian's mricron-data package: one person scanned
  27 times on a 1.5 T Philips scanner and averaged; Holmes et al., JCAT 1998)
  ``apt-get download mricron-data && dpkg -x mricron-data_*.deb d``
- 3 T: pycortex's subject S1 (``filestore/db/S1/anatomicals/raw.nii.gz`` of the pycortex
  1.4.0 source distribution on PyPI; a 3 T-type MPRAGE, FreeSurfer-normalised, 1 mm)

Each scan is preprocessed as the app preprocesses, then harmonized toward the other
field with the other scan as the target-field reference (a different person: no pairing),
and compared with histogram matching to that reference. Measured against the real
target-field scan: the brain-histogram distance (255 bins, counts rescaled to the same
brain size) and the CSF / GM / WM fractions of the brain (MRF segmentation) and their largest
difference; and how much of the input's detail the output keeps: the correlation of
their gradient magnitudes and the ratio of their fine-detail energy (Laplacian RMS in the
eroded brain).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from harmonize_bids.atomic import write_text
from harmonize_bids.choices import Direction
from harmonize_bids.qc import metrics


def preprocess(scan: Path, work: Path) -> tuple[np.ndarray, np.ndarray]:
    from harmonize_bids.image import preprocess_t1w

    out = preprocess_t1w(scan, work / scan.name.split(".")[0], num_threads=2)
    image = np.asanyarray(nib.load(out["preproc"]).dataobj, dtype=np.float32)
    return image, np.asanyarray(nib.load(out["mask"]).dataobj) > 0


def fractions(image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    volumes = metrics.tissue_volumes(metrics.segment_tissues(image, mask))
    total = sum(volumes.values())
    return {tissue: volumes[tissue] / total for tissue in metrics.TISSUES}


def measure(image, mask, source, reference_hist, reference_fractions) -> dict:
    own = fractions(image, mask)
    return {
        "histogram_distance": metrics.ahd_to_reference(
            metrics.brain_histogram(image, mask), reference_hist
        ),
        "fractions": own,
        "fraction_distance": max(abs(own[t] - reference_fractions[t]) for t in own),
        "gradient_correlation": metrics.gradient_correlation(image, source, mask),
        "detail_kept": metrics.detail_energy(image, mask) / metrics.detail_energy(source, mask),
    }


def run_direction(direction: Direction, source: tuple, target: tuple, model_dir) -> dict:
    from harmonize_bids.image.reference import TargetReference, brain_quantiles, match_to_reference
    from harmonize_bids.inference import InferenceSettings, harmonize
    from harmonize_bids.model.folder import bundled_model_dir, load_model_folder

    (image, mask), (target_image, target_mask) = source, target
    model = load_model_folder(
        model_dir or bundled_model_dir(direction.source, direction.target),
        source_field=direction.source,
        target_field=direction.target,
    )
    reference = TargetReference.pooled(
        direction.target, [brain_quantiles(target_image, target_mask)], ["real target-field scan"]
    )
    reference_hist = metrics.brain_histogram(target_image, target_mask)
    reference_fractions = fractions(target_image, target_mask)
    result = harmonize(model, image, mask, InferenceSettings.resolve(model), reference=reference)
    outputs = {
        "Original": image,
        "Histogram matching": match_to_reference(image, mask, reference.quantiles),
        "Ours": result.image,
    }
    rows = {
        name: measure(out, mask, image, reference_hist, reference_fractions)
        for name, out in outputs.items()
    }
    return {
        "target_fractions": reference_fractions,
        "methods": rows,
        "domain_warnings": result.provenance["DomainWarnings"],
        "model": {"path": str(model.path), "weights_sha256": model.weights_sha256},
    }


def table(direction: Direction, record: dict) -> str:
    target = " / ".join(f"{v:.1%}" for v in record["target_fractions"].values())
    lines = [
        f"### {direction.label}",
        "",
        f"Target-field scan's CSF / GM / WM fractions: {target}.",
        "",
        "| method | histogram distance | CSF / GM / WM fractions | largest fraction gap | "
        "gradient correlation with input | detail energy / input's |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in record["methods"].items():
        fr = " / ".join(f"{v:.1%}" for v in row["fractions"].values())
        lines.append(
            f"| {name} | {row['histogram_distance']:.3g} | {fr} | "
            f"{row['fraction_distance']:.3f} | {row['gradient_correlation']:.3f} | "
            f"{row['detail_kept']:.3f} |"
        )
    original, ours = record["methods"]["Original"], record["methods"]["Ours"]
    toward = (
        ours["histogram_distance"] <= original["histogram_distance"]
        and ours["fraction_distance"] <= original["fraction_distance"]
    )
    lines += [
        "",
        f"Moves toward the real target-field scan (histogram and fractions): "
        f"{'yes' if toward else '**no**'}. Out-of-domain warnings: "
        f"{'; '.join(record['domain_warnings']) or 'none'}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scan-1p5T", dest="scan_1p5T", type=Path, required=True)
    parser.add_argument("--scan-3T", dest="scan_3T", type=Path, required=True)
    parser.add_argument("--model-1p5T-to-3T", dest="model_1p5T_to_3T", type=Path)
    parser.add_argument("--model-3T-to-1p5T", dest="model_3T_to_1p5T", type=Path)
    parser.add_argument("--work", type=Path, default=Path("real-scans-work"))
    parser.add_argument("--output", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    scans = {1.5: preprocess(args.scan_1p5T, args.work), 3.0: preprocess(args.scan_3T, args.work)}
    command = " ".join(map(str, sys.argv[1:] if argv is None else argv))
    text = [
        "# Real scans",
        "",
        "Made by `benchmarks/real_scans.py` (its docstring names the "
        "scans and how to get them). Real scans serve evaluation only.",
        "",
        f"Command: `python benchmarks/real_scans.py {command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores; {time.strftime('%Y-%m-%d')}.",
        "",
    ]
    record = {}
    for direction in (Direction(1.5, 3.0), Direction(3.0, 1.5)):
        model_dir = getattr(args, f"model_{direction.slug.replace('-', '_')}")
        record[direction.label] = run_direction(
            direction, scans[direction.source], scans[direction.target], model_dir
        )
        text.append(table(direction, record[direction.label]))
    report = "\n".join(text)
    print(report)
    if args.output:
        write_text(args.output, report)
    if args.json:
        write_text(args.json, json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
