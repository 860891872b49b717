"""Train a reference-conditioned model on randomized-scanner phantom sites.

    python research/train_reference_models.py OUT_MODEL --direction 1.5T-to-3T \
        --data DS_A:WORK_A [DS_B:WORK_B ...] [--init-from bundled] [--iterations N] [--resume]
        [--reference site-map]

Each DS is a phantom made with ``harmonize-bids-phantom --scanners core
--subjects-per-site K --same-pose`` and WORK its ``harmonize-bids-train --prepare-only
--registration none`` folder. Every training source is histogram-matched to the pooled
target-field scans of the *other* subjects of its site (as the participant level pools a
study's other subjects), and that matched image is the model's reference channel. With
``--reference site-map`` the source is instead mapped through those subjects' scanner map
(their pooled source-field quantiles to their pooled target-field ones), as
``benchmarks/quality.py --reference site-map`` does at inference.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from harmonize_bids.choices import Direction
from harmonize_bids.image.reference import (
    ScannerMap,
    TargetReference,
    brain_quantiles,
    match_to_reference,
)
from harmonize_bids.model.folder import bundled_model_dir, load_model_folder, new_model
from harmonize_bids.model.training import (
    PairedVolumes,
    TrainingSchedule,
    fine_tuning_start,
    train,
)
from harmonize_bids.phantom import truth_file
from harmonize_bids.training import training_domain

LOGGER = logging.getLogger("train_reference_models")
DIRECTIONS = {"1.5T-to-3T": (1.5, 3.0), "3T-to-1.5T": (3.0, 1.5)}
SESSION = {1.5: "1p5T", 3.0: "3T"}
MARGIN = 4


def _load(path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj, dtype=np.float32)


def _sites(bids: Path) -> dict[str, str]:
    with open(bids / "participants.tsv") as handle:
        return {
            row["participant_id"]: row["site"] for row in csv.DictReader(handle, delimiter="\t")
        }


def _target_scan(work: Path, subject: str, field: float) -> tuple[np.ndarray, np.ndarray]:
    """The subject's own preprocessed target-field scan and mask (not the registered one)."""
    folder = work / "pairs" / subject / f"ses-{SESSION[field]}-run-none"
    preproc = next(folder.glob("*_T1w_preproc.nii.gz"))
    return _load(preproc), _load(preproc.with_name(preproc.name.replace("_preproc", "_mask")))


def _box(mask: np.ndarray) -> tuple[slice, ...]:
    where = np.argwhere(mask)
    lo = np.maximum(where.min(0) - MARGIN, 0)
    hi = np.minimum(where.max(0) + MARGIN + 1, mask.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


def collect(
    data: list[tuple[Path, Path]], direction: str, site_map: bool = False
) -> dict[str, list]:
    source_field, target_field = DIRECTIONS[direction]
    records = []
    for bids, work in data:
        sites = _sites(bids)
        slug = Direction(source_field, target_field).slug
        found = sorted(work.glob(f"pairs/sub-*/pair_{slug}.json"))
        # pair records of the code before the direction slug
        found = found or sorted(work.glob(f"pairs/sub-*/pair_{direction}.json"))
        for path in found:
            record = json.loads(path.read_text())
            subject = path.parent.name
            image, mask = _target_scan(work, subject, target_field)
            own_source = _target_scan(work, subject, source_field)
            records.append(
                {
                    "key": f"{bids.name}/{subject}",
                    "bids": bids,
                    "subject": subject,
                    "site": f"{bids.name}/{sites[subject]}",
                    "record": record,
                    "quantiles": brain_quantiles(image, mask > 0),
                    "source_quantiles": brain_quantiles(own_source[0], own_source[1] > 0),
                }
            )
    out = {
        "sources": [],
        "targets": [],
        "masks": [],
        "matched": [],
        "lesions": [],
        "subjects": [],
        "references": [],
    }
    out["pooled"] = TargetReference.pooled(
        target_field,
        [e["quantiles"] for e in records],
        [e["key"] for e in records],
        "model default",
    )
    for entry in records:
        mates = [e for e in records if e["site"] == entry["site"] and e["key"] != entry["key"]]
        others = [e["quantiles"] for e in mates]
        if not others:
            LOGGER.warning("%s: no other subject at its site; left out", entry["key"])
            continue
        record = entry["record"]
        mask = _load(record["mask"]) > 0
        source = _load(record["source"]) * mask
        target = np.clip(_load(record["target"]), 0, 1) * mask
        reference = TargetReference.pooled(target_field, others, [])
        if site_map:
            scanner_map = ScannerMap(
                TargetReference.pooled(source_field, [e["source_quantiles"] for e in mates], []),
                reference,
            )
            reference = TargetReference.pooled(
                target_field, [brain_quantiles(scanner_map.apply(source, mask), mask)], []
            )
        matched = match_to_reference(source, mask, reference.quantiles)
        lesion_file = truth_file(
            entry["bids"], entry["subject"], SESSION[source_field], "label-lesion_mask.nii.gz"
        )
        lesion = None
        if lesion_file.is_file():
            from nibabel.processing import resample_from_to

            lesion = (
                np.asarray(
                    resample_from_to(
                        nib.load(lesion_file), nib.load(record["mask"]), order=0
                    ).dataobj
                )
                > 0
            )
        box = _box(mask)
        out["sources"].append(source[box].astype(np.float16))
        out["targets"].append(target[box].astype(np.float16))
        out["masks"].append(mask[box])
        out["matched"].append(matched[box].astype(np.float16))
        out["references"].append(reference)
        out["lesions"].append(None if lesion is None else lesion[box])
        out["subjects"].append(entry["key"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--direction", choices=list(DIRECTIONS), required=True)
    parser.add_argument("--data", nargs="+", required=True, metavar="DS:WORK")
    parser.add_argument("--init-from", default="bundled")
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--lr-decay-iterations", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--lesion-weight", type=float, default=20.0)
    parser.add_argument("--contrast-augmentation", type=float, default=0.2)
    parser.add_argument("--target-contrast-augmentation", type=float, default=0.0)
    parser.add_argument("--context-slices", type=int, default=None)
    parser.add_argument("--through-plane-weight", type=float, default=0.0)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--reference",
        choices=("site-mates", "site-map"),
        default="site-mates",
        help="the reference channel: the source matched to the site mates' pooled "
        "target-field scans, or mapped through their scanner map",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    source_field, target_field = DIRECTIONS[args.direction]
    data = [tuple(Path(p) for p in item.split(":")) for item in args.data]
    volumes = collect(data, args.direction, site_map=args.reference == "site-map")
    LOGGER.info("%d training pairs", len(volumes["subjects"]))
    name = args.direction.replace(".", "p")
    if args.init_from == "none":
        model = new_model(
            reference_channel=True,
            context_slices=args.context_slices or 0,
            source_field=source_field,
            target_field=target_field,
            name=name,
            seed=args.seed,
        )
    else:
        init_dir = (
            bundled_model_dir(source_field, target_field)
            if args.init_from == "bundled"
            else Path(args.init_from)
        )
        init = load_model_folder(init_dir, source_field=source_field, target_field=target_field)
        # A per-phantom sampler ending of the paper-phantom models does not carry over.
        init.scheduler_config.pop("dpm_last_timestep", None)
        model = fine_tuning_start(
            init,
            source_field,
            target_field,
            name,
            reference_channel=True,
            context_slices=args.context_slices,
        )
    model.reference = volumes["pooled"].to_json()
    model.meta["domain"] = training_domain(
        list(zip(volumes["sources"], volumes["targets"], volumes["masks"], strict=True)),
        volumes["references"],
        start=model.meta.get("domain"),
    )
    schedule = TrainingSchedule(
        iterations=args.iterations,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_decay_iterations=args.lr_decay_iterations,
        patch_size=args.patch_size,
        lesion_weight=args.lesion_weight,
        contrast_augmentation=args.contrast_augmentation,
        target_contrast_augmentation=args.target_contrast_augmentation,
        through_plane_weight=args.through_plane_weight,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
    )
    volumes_in = PairedVolumes(
        volumes["sources"],
        volumes["targets"],
        volumes["masks"],
        lesions=volumes["lesions"],
        matched=volumes["matched"],
    )
    train(
        volumes_in,
        model,
        args.model_dir,
        schedule,
        work_dir=args.model_dir.with_name(args.model_dir.name + ".work"),
        resume=args.resume,
        training_data={
            "dataset": "harmonize_bids randomized-scanner phantom (core sites)",
            "phantoms": [str(bids.name) for bids, _ in data],
            "subjects": volumes["subjects"],
            "reference": (
                "each source mapped through the scanner map of the other subjects of its site"
                if args.reference == "site-map"
                else "each source matched to the pooled target-field scans "
                "of the other subjects of its site"
            ),
        },
    )


if __name__ == "__main__":
    main()
