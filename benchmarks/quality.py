"""Harmonization quality on held-out phantom sites: in-distribution and unseen scanners.

    python benchmarks/quality.py \
        --set in-distribution heldout_core heldout_core_work \
        --set unseen unseen_test unseen_test_work \
        [--model-1p5T-to-3T DIR] [--model-3T-to-1p5T DIR] [--steps 10 1 2 4] \
        [--cache DIR] [--output docs/quality.md] [--json docs/quality.json]

Each set is a phantom made by ``harmonize-bids-phantom --scanners core|unseen
--subjects-per-site K`` and its ``harmonize-bids-train --prepare-only`` work folder (both
directions): per subject the preprocessed source, its brain mask and the preprocessed
target registered to it, as the paper evaluates; and each session's own preprocessed
scan. The recorded sets keep each head in one pose across sessions (``--same-pose``), so
the pairs align exactly without registration. A site's subjects share its two scanners
(participants.tsv ``site``; a phantom without sites is one site), so "the dataset's own
target-field scans" of a subject are those of the *other* subjects of its site (leave one
subject out).

Methods, per direction:

- Original: the preprocessed source, unchanged.
- Histogram matching of the source to those other subjects' target-field scans, pooled
  (:func:`harmonize_bids.image.reference.match_to_reference`, scikit-image).
- Nyul piecewise-linear standardization (intensity-normalization) fitted on the same
  scans; output range their mean 1st / 99th brain percentiles.
- Ours: the app's inference (:func:`harmonize_bids.inference.harmonize`) with the same
  pooled scans as its target reference, at each ``--steps`` (the first is the default),
  along ``--slice-planes`` (averaged), ``--even-out-slices`` or not; with ``--reference
  site-map`` its reference is instead the subject's source mapped through the site mates'
  scanner map (their pooled source-field quantiles to their pooled target-field ones).
  Where the app's ``--scanner-map`` would apply (``--scanner-map``, default the app's: its
  target fields, from 5 site mates, at most 8 chosen as the app chooses), the output is
  then matched to the source mapped through that map, and the row says "scanner map".

Metrics against the registered target inside the source brain mask: the paper's MSE,
AHD, CSF/GM/WM volume differences, Dice and HD95
(:func:`harmonize_bids.qc.paired.compare_to_target`). Beyond the paper: lesion contrast
(1 - mean lesion / mean normal-appearing WM, true labels) over the target's,
through-plane roughness over the target's (across sagittal slices; and across each axis's
slices, since a model applied along other planes puts its stripes there), fine-detail
energy (Laplacian RMS in the eroded brain) over the target's, Dice with the true tissue
labels, seconds per volume, and the within-site volume deviation error: how far each
subject's tissue volumes lie from its site mates', against the same for the targets (what a
study of differences between subjects loses; not one of issue 34's bars).
Every per-image result is cached; a rerun only fills gaps. The record: docs/quality.md
and docs/quality.json; how they were made: RECIPE.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np

from harmonize_bids.atomic import write_text
from harmonize_bids.choices import Direction, field_label
from harmonize_bids.phantom import truth_file
from harmonize_bids.qc import metrics
from harmonize_bids.qc.paired import compare_to_target

RECIPE = """\
P="harmonize-bids-phantom --size full --same-pose --subjects-per-site 3 --lesion-fraction 0.5"
$P heldout_core --subjects 6 --seed 20000 --scanners core
$P unseen_val --subjects 6 --seed 40000 --scanners unseen   # design decisions only
$P unseen_test --subjects 6 --seed 30000 --scanners unseen
for set in heldout_core unseen_val unseen_test; do
  for fields in "1.5 3" "3 1.5"; do
    set -- $fields
    harmonize-bids-train $set unused --source-field $1 --target-field $2 \\
        -w ${set}_work --prepare-only --registration none --skip-bids-validation
  done
done"""

DIRECTIONS = {"1.5T-to-3T": Direction(1.5, 3.0), "3T-to-1.5T": Direction(3.0, 1.5)}
LESION_LABEL = 4
#: The sagittal axis of the RAS 1 mm grid: the models' slice axis (preprocessing.json).
SLICE_AXIS = 0
MIN_LESION_VOXELS = 20
ORIGINAL, MATCHING, NYUL = "Original", "Histogram matching", "Nyul"
SITE_MAP = "site-map"
#: Acceptance bars. In-distribution (issue 5): ratios to Original, below both peers.
IN_DISTRIBUTION = {"mse": 0.41, "ahd": 0.21, "volume": 0.33}
#: Unseen scanners (issue 34): against histogram matching and the target.
UNSEEN = {"ahd_vs_matching": 1.5, "lesion": 0.15, "through_plane": (0.9, 1.1), "detail": 0.15}


# ----------------------------------------------------------------------------- inputs
def load(path: str | Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj, dtype=np.float32)


def pair_records(work: Path, direction: Direction) -> list[dict]:
    """The prepared pairs of a work folder (training_data.pair_record names them)."""
    records = []
    for path in sorted(work.glob(f"pairs/sub-*/pair_{direction.slug}.json")):
        record = json.loads(path.read_text())
        record["subject"] = path.parent.name
        records.append(record)
    if not records:
        sys.exit(
            f"No prepared {direction} pairs in {work}; run harmonize-bids-train "
            "... --prepare-only there first."
        )
    return records


def sites(bids: Path) -> dict[str, str]:
    """Subject -> site (one site when participants.tsv has no site column)."""
    with open(bids / "participants.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {row["participant_id"]: row.get("site", "0") for row in rows}


def site_mates(subject: str, subjects, site_of: dict[str, str]) -> list[str]:
    """The others of ``subjects`` at ``subject``'s site."""
    return [s for s in subjects if s != subject and site_of[s] == site_of[subject]]


def target_scan(work: Path, subject: str, field: float) -> tuple[np.ndarray, np.ndarray]:
    """A subject's own preprocessed scan at ``field`` and its mask (not registered)."""
    folder = next((work / "pairs" / subject).glob(f"ses-{field_label(field)}-*"))
    preproc = next(folder.glob("*_preproc.nii.gz"))
    mask = preproc.with_name(preproc.name.replace("_preproc", "_mask"))
    return load(preproc), load(mask) > 0


def truth_labels(bids: Path, record: dict) -> np.ndarray:
    """The phantom's true labels of the source session, on the preprocessed source grid."""
    from nibabel.processing import resample_from_to

    sub, ses = Path(record["inputs"][0]).name.split("_")[:2]
    dseg = nib.load(truth_file(bids, sub, ses, "dseg.nii.gz"))
    return np.asarray(
        resample_from_to(dseg, nib.load(record["source"]), order=0).dataobj, np.uint8
    )


# ----------------------------------------------------------------------------- peers
class SitePeers:
    """A subject's view of its site: the other subjects' target-field scans, pooled into
    the reference our model and histogram matching use, and a Nyul fit on them; with
    their source-field brain quantiles too, their scanner map, and the one the app's
    ``--scanner-map`` would fit (None with fewer mates than it needs)."""

    def __init__(
        self,
        scans: list[tuple[np.ndarray, np.ndarray]],
        names: list[str],
        field: float,
        source_quantiles: list[np.ndarray] | None = None,
    ):
        from harmonize_bids.bids import spread
        from harmonize_bids.choices import SCANNER_MAP_SUBJECTS_MAX, SCANNER_MAP_SUBJECTS_MIN
        from harmonize_bids.image.reference import ScannerMap, TargetReference, brain_quantiles

        self.scans = scans
        target_quantiles = [brain_quantiles(image, mask) for image, mask in scans]
        self.reference = TargetReference.pooled(field, target_quantiles, names)

        def scanner_map(chosen: list[str]) -> ScannerMap:
            picks = [names.index(name) for name in chosen]
            return ScannerMap(
                TargetReference.pooled(0.0, [source_quantiles[i] for i in picks], chosen),
                TargetReference.pooled(field, [target_quantiles[i] for i in picks], chosen),
            )

        self.scanner_map = scanner_map(names) if source_quantiles else None
        self.app_scanner_map = (
            scanner_map(spread(sorted(names), SCANNER_MAP_SUBJECTS_MAX))
            if source_quantiles and len(names) >= SCANNER_MAP_SUBJECTS_MIN
            else None
        )

    def site_mapped_reference(self, source: np.ndarray, mask: np.ndarray):
        """The reference made of ``source`` mapped through the site mates' scanner map:
        their target scanner's contrast with this subject's own tissue proportions."""
        from harmonize_bids.image.reference import TargetReference, brain_quantiles

        mapped = self.scanner_map.apply(source, mask)
        return TargetReference.pooled(
            self.reference.field_strength, [brain_quantiles(mapped, mask)], ["site map"]
        )

    def histogram_matching(self, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from harmonize_bids.image.reference import match_to_reference

        return match_to_reference(source, mask, self.reference.quantiles)

    def nyul(self, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from intensity_normalization.adapters.images import NumpyImageAdapter
        from intensity_normalization.normalizers.population.nyul import NyulNormalizer

        low = np.mean([np.percentile(img[m], 1) for img, m in self.scans])
        high = np.mean([np.percentile(img[m], 99) for img, m in self.scans])
        nyul = NyulNormalizer(output_min_value=low, output_max_value=high)
        nyul.fit_population(
            [NumpyImageAdapter(img) for img, _ in self.scans],
            [NumpyImageAdapter(m.astype(np.float32)) for _, m in self.scans],
        )
        out = nyul.transform(
            NumpyImageAdapter(source), NumpyImageAdapter(mask.astype(np.float32))
        ).get_data()
        return np.where(mask, np.clip(out, 0.0, 1.0), 0.0).astype(np.float32)


# ----------------------------------------------------------------------------- metrics
def lesion_contrast(image: np.ndarray, truth: np.ndarray) -> float:
    """1 - mean(lesion) / mean(normal-appearing WM): how dark lesions are against WM."""
    lesion = truth == LESION_LABEL
    if lesion.sum() < MIN_LESION_VOXELS:
        return float("nan")
    return float(1.0 - image[lesion].mean() / image[truth == metrics.TISSUE_LABELS["WM"]].mean())


def target_measures(target: np.ndarray, mask: np.ndarray, truth: np.ndarray) -> dict:
    """The target's own lesion contrast, through-plane roughness and detail energy: the
    denominators of the ratios."""
    return {
        "lesion_contrast": lesion_contrast(target, truth),
        "through_plane": metrics.through_plane_consistency(target, mask, axis=SLICE_AXIS),
        "anisotropy": anisotropy(target, mask),
        "detail": metrics.detail_energy(target, mask),
    }


def anisotropy(image: np.ndarray, mask: np.ndarray) -> list[float]:
    """Through-plane roughness across each axis's slices (sagittal, coronal, axial)."""
    return [metrics.through_plane_consistency(image, mask, axis=k) for k in range(3)]


def truth_tissues(truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The phantom's true tissue labels in the brain, lesions counted as WM."""
    return np.where(truth == LESION_LABEL, metrics.TISSUE_LABELS["WM"], truth) * mask


def evaluate(
    image: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    target_seg: np.ndarray,
    truth: np.ndarray,
    reference: dict,
) -> dict:
    """The paper's metrics against the target, and ours relative to the target's."""
    seg = metrics.segment_tissues(image, mask)
    truth_tissue = truth_tissues(truth, mask)
    return {
        **compare_to_target(image, target, mask, target_seg, labels=seg),
        "truth_dice": metrics.dice(seg, truth_tissue),
        "lesion_contrast_ratio": lesion_contrast(image, truth) / reference["lesion_contrast"],
        "through_plane_ratio": metrics.through_plane_consistency(image, mask, axis=SLICE_AXIS)
        / reference["through_plane"],
        "anisotropy_ratios": [
            a / b for a, b in zip(anisotropy(image, mask), reference["anisotropy"], strict=True)
        ],
        "detail_ratio": metrics.detail_energy(image, mask) / reference["detail"],
        "volumes": metrics.tissue_volumes(seg),
        "target_volumes": metrics.tissue_volumes(target_seg),
    }


# ----------------------------------------------------------------------------- running
def ours_name(steps: int, sampler: str, options: dict) -> str:
    """The setting's row name. ``options`` (InferenceSettings keywords) are named where
    they differ from slicing along the models' own plane (sagittal) alone."""
    extras = []
    if tuple(options["slice_planes"]) != ("sagittal",):
        extras.append(" + ".join(options["slice_planes"]))
    if options["even_out_slices"]:
        extras.append("slices evened out")
    if options.get("reference") == SITE_MAP:
        extras.append("site-mapped reference")
    if options.get("scanner_map"):
        extras.append("scanner map")
    return f"Ours ({', '.join([sampler, f'{steps} step' + 's' * (steps != 1), *extras])})"


def slug(name: str) -> str:
    return "".join(c for c in name.lower().replace(" ", "_") if c.isalnum() or c == "_")


def methods(
    model,
    peers: SitePeers,
    source: np.ndarray,
    mask: np.ndarray,
    steps_list: list[int],
    sampler: str,
    options: dict,
) -> dict[str, Callable[[], np.ndarray]]:
    from harmonize_bids.inference import InferenceSettings, harmonize

    settings_options = {k: v for k, v in options.items() if k not in ("reference", "scanner_map")}
    scanner_map = peers.app_scanner_map if options.get("scanner_map") else None

    def ours(steps: int) -> Callable[[], np.ndarray]:
        settings = InferenceSettings.resolve(
            model, sampler=sampler, steps=steps, seed=0, **settings_options
        )

        def run() -> np.ndarray:
            reference = (
                peers.site_mapped_reference(source, mask)
                if options.get("reference") == SITE_MAP
                else peers.reference
            )
            return harmonize(
                model, source, mask, settings, reference=reference, scanner_map=scanner_map
            ).image

        return run

    found = {
        ORIGINAL: lambda: source,
        MATCHING: lambda: peers.histogram_matching(source, mask),
        NYUL: lambda: peers.nyul(source, mask),
    }
    for steps in steps_list:
        found[ours_name(steps, sampler, options)] = ours(steps)
    return found


def cached(path: Path, compute: Callable[[], dict]) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    write_text(path, json.dumps(value, indent=1))
    return value


def measure(
    make: Callable[[], np.ndarray], target, mask, target_seg, truth, reference, save: Path | None
) -> dict:
    """Run one method (timed) and evaluate its output."""
    start = time.perf_counter()
    image = np.asarray(make(), np.float32)
    seconds = time.perf_counter() - start
    if save is not None:
        np.save(save.with_suffix(".npy"), image.astype(np.float16))
    return {**evaluate(image, target, mask, target_seg, truth, reference), "seconds": seconds}


def load_model(direction: Direction, folder: Path | None = None):
    """The model folder ``folder`` of ``direction``; default: the bundled one."""
    from harmonize_bids.model.folder import bundled_model_dir, load_model_folder

    return load_model_folder(
        folder or bundled_model_dir(direction.source, direction.target),
        source_field=direction.source,
        target_field=direction.target,
    )


def model_key(model, sampler: str, steps_list: list[int], options: dict) -> dict:
    """What an "Ours" cache entry depends on: the weights, the output calibration and the
    sampler's timesteps."""
    from harmonize_bids.model.schedulers import sampling_scheduler

    timesteps = {}
    for steps in steps_list:
        scheduler = sampling_scheduler(model.scheduler_config, sampler)
        scheduler.set_timesteps(steps)
        timesteps[ours_name(steps, sampler, options)] = scheduler.timesteps.tolist()
    return {
        "path": str(model.path),
        "weights_sha256": model.weights_sha256,
        "calibration_sha256": model.calibration.sha256 if model.calibration else None,
        "iterations": model.meta.get("iterations"),
        "iterations_total": model.meta.get("iterations_total", model.meta.get("iterations")),
        "timesteps": timesteps,
    }


def cache_stem(name: str, key: dict | None) -> str:
    if not name.startswith("Ours"):
        return slug(name)
    what = key["timesteps"][name]
    if key.get("calibration_sha256"):
        what = [what, key["calibration_sha256"]]
    digest = hashlib.sha256(json.dumps(what).encode()).hexdigest()[:8]
    return f"{slug(name)}_{key['weights_sha256'][:12]}_{digest}"


def labelled(records: list[dict], labels: list[str] | None) -> list[dict]:
    """The records of participants ``labels`` (without "sub-"); all of them if None."""
    return [r for r in records if not labels or r["subject"].removeprefix("sub-") in labels]


class Case(NamedTuple):
    """One subject of a set, ready to harmonize and measure."""

    subject: str
    record: dict
    peers: SitePeers
    source: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    truth: np.ndarray
    target_seg: np.ndarray
    reference: dict

    def evaluate(self, image: np.ndarray) -> dict:
        """``image``'s metrics against this subject's target."""
        return evaluate(image, self.target, self.mask, self.target_seg, self.truth, self.reference)

    def ours(self, model, kept: Path, seed: int = 0, **options) -> np.ndarray:
        """``model``'s output (``options``: InferenceSettings keywords) with the site
        mates' reference, kept at ``kept`` (npy) so that a rerun only measures."""
        if not kept.is_file():
            from harmonize_bids.inference import InferenceSettings, harmonize

            settings = InferenceSettings.resolve(model, seed=seed, **options)
            image = harmonize(
                model, self.source, self.mask, settings, reference=self.peers.reference
            )
            kept.parent.mkdir(parents=True, exist_ok=True)
            np.save(kept, image.image)
        return np.load(kept).astype(np.float32)


def claim_cache(cache: Path, bids: Path) -> None:
    """Mark ``cache`` as the phantom ``bids``'s, or stop if it holds another phantom's
    results: entries are keyed by subject, so two phantoms would silently mix."""
    marker = cache / "phantom.txt"
    phantom = str(bids.resolve())
    if marker.is_file():
        held = marker.read_text().strip()
        if held != phantom:
            raise SystemExit(
                f"{cache} holds the results of phantom {held}, not {phantom}: "
                "give each phantom its own --cache folder."
            )
        return
    write_text(marker, phantom + "\n")


def cases(
    bids: Path, work: Path, direction: Direction, cache: Path, subjects: list[dict] | None = None
) -> Iterator[Case]:
    """Each subject of ``subjects`` (default: all pair records) with its site mates'
    target-field scans as peers; the target's segmentation is cached under
    ``cache/<subject>``. Subjects alone at their site are left out, with a line."""
    from harmonize_bids.image.reference import brain_quantiles

    claim_cache(cache, bids)
    every = pair_records(work, direction)
    site_of = sites(bids)
    scans = {r["subject"]: target_scan(work, r["subject"], direction.target) for r in every}
    source_quantiles = {
        r["subject"]: brain_quantiles(*target_scan(work, r["subject"], direction.source))
        for r in every
    }
    for record in every if subjects is None else subjects:
        sub = record["subject"]
        others = site_mates(sub, scans, site_of)
        if not others:
            print(f"{bids.name} {sub}: no other subject at its site; left out", file=sys.stderr)
            continue
        source, target = load(record["source"]), load(record["target"])
        mask = load(record["mask"]) > 0
        truth = truth_labels(bids, record)
        seg_file = cache / sub / "target_dseg.nii.gz"
        if seg_file.is_file():
            target_seg = load(seg_file).astype(np.uint8)
        else:
            target_seg = metrics.segment_tissues(target, mask)
            seg_file.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(target_seg, nib.load(record["source"]).affine), seg_file)
        yield Case(
            sub,
            record,
            SitePeers(
                [scans[s] for s in others],
                others,
                direction.target,
                [source_quantiles[s] for s in others],
            ),
            source,
            target,
            mask,
            truth,
            target_seg,
            target_measures(target, mask, truth),
        )


def research_cases(
    bids: str,
    work: str,
    cache: str,
    direction_name: str,
    subjects: list[str],
    threads: int = 1,
    model_dir: str | None = None,
) -> tuple[object, Iterator[Case]]:
    """For a research script's ``BIDS WORK CACHE DIRECTION ... SUBJECT...``: the direction's
    bundled model (or the folder ``model_dir``) and the cases of those subjects (all if
    none), torch on ``threads``."""
    import torch

    torch.set_num_threads(threads)
    direction = DIRECTIONS[direction_name]
    chosen = labelled(pair_records(Path(work), direction), list(subjects))
    found = cases(Path(bids), Path(work), direction, Path(cache) / direction_name, chosen)
    return load_model(direction, Path(model_dir) if model_dir else None), found


def research_outputs(
    bids: str,
    work: str,
    cache: str,
    direction_name: str,
    out_dir: str,
    subjects: list[str],
    model_dir: str | None = None,
) -> Iterator[tuple[Case, np.ndarray, np.ndarray]]:
    """Each research case with our default output (kept in ``out_dir/axis0``) and the
    source histogram-matched to the same reference."""
    model, found = research_cases(bids, work, cache, direction_name, subjects, model_dir=model_dir)
    for case in found:
        ours = case.ours(model, Path(out_dir) / "axis0" / f"{case.subject}.npy")
        matched = np.asarray(case.peers.histogram_matching(case.source, case.mask), np.float32)
        yield case, ours, matched


def run_direction(
    set_name: str, bids: Path, work: Path, direction_name: str, args: argparse.Namespace
) -> tuple[dict[str, list[dict]], dict]:
    """Per-method lists of per-subject results for one set and direction."""
    import torch

    torch.set_num_threads(args.threads)
    direction = DIRECTIONS[direction_name]
    records = labelled(pair_records(work, direction), args.subjects)[: args.max_subjects]
    site_of = sites(bids)
    model = key = None
    options = dict(args.inference)
    if args.steps:
        model = load_model(direction, getattr(args, f"model_{direction.slug.replace('-', '_')}"))
        options["scanner_map"] = scanner_map_applies(
            args.scanner_map, direction, work, site_of, calibrated=model.calibration is not None
        )
        key = model_key(model, args.sampler, args.steps, options)
    cache = args.cache / set_name / direction_name
    results: dict[str, list[dict]] = {}
    for case in cases(bids, work, direction, cache, records):
        for name, make in methods(
            model, case.peers, case.source, case.mask, args.steps, args.sampler, options
        ).items():
            stem = cache / case.subject / cache_stem(name, key)
            save = stem if args.save_images else None
            result = cached(
                stem.with_suffix(".json"),
                functools.partial(
                    measure,
                    make,
                    case.target,
                    case.mask,
                    case.target_seg,
                    case.truth,
                    case.reference,
                    save,
                ),
            )
            result["subject"], result["site"] = case.subject, site_of[case.subject]
            results.setdefault(name, []).append(result)
            print(
                f"{set_name} {direction_name} {case.subject} {name}: MSE {result['mse']:.3g}, "
                f"{result['seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    about = {
        "set": set_name,
        "phantom": bids.name,
        "subjects": len(results.get(ORIGINAL, [])),
        "sites": len({site_of[r['subject']] for r in records}),
        "model": key,
        "default": ours_name(args.steps[0], args.sampler, options) if args.steps else None,
    }
    return results, about


def scanner_map_applies(
    mode: str, direction: Direction, work: Path, site_of: dict[str, str], calibrated: bool
) -> bool:
    """Whether the app's ``--scanner-map`` ``mode`` maps any subject of this set and
    direction: a target field it is offered for, a site with enough mates, and (``auto``)
    a model without an output calibration of its own."""
    from harmonize_bids.choices import SCANNER_MAP_SUBJECTS_MIN, scanner_map_planned

    if not scanner_map_planned(mode, direction.target) or (mode == "auto" and calibrated):
        return False
    subjects = [record["subject"] for record in pair_records(work, direction)]
    return any(
        len(site_mates(subject, subjects, site_of)) >= SCANNER_MAP_SUBJECTS_MIN
        for subject in subjects
    )


# ----------------------------------------------------------------------------- tables
def _values(rows: list[dict], keys: tuple[str, ...]) -> np.ndarray:
    out = []
    for row in rows:
        for key in keys:
            row = row[key]
        out.append(row)
    return np.asarray(out, float)


def _mean(rows: list[dict], *keys: str) -> float:
    values = _values(rows, keys)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def site_deviation_error(rows: list[dict]) -> dict[str, float] | None:
    """Per tissue, how far each subject's difference from its site mates is from its
    target's: ``|d_out - d_target|`` averaged over subjects, ``d`` a subject's volume minus
    its site's mean volume (the same method's, the targets'), in mm^3. What a study of
    differences between subjects (atrophy, lesion load) loses; None for rows measured
    before volumes were kept, or without a site of two subjects."""
    if not all("volumes" in row and "site" in row for row in rows):
        return None
    by_site: dict[str, list[dict]] = {}
    for row in rows:
        by_site.setdefault(row["site"], []).append(row)
    shared = [group for group in by_site.values() if len(group) > 1]
    if not shared:
        return None
    errors = {}
    for t in metrics.TISSUES:
        gaps = []
        for group in shared:
            out = np.array([row["volumes"][t] for row in group])
            target = np.array([row["target_volumes"][t] for row in group])
            gaps += list(np.abs((out - out.mean()) - (target - target.mean())))
        errors[t] = float(np.mean(gaps))
    return errors


def summarize(results: dict[str, list[dict]]) -> dict[str, dict]:
    summary = {}
    for name, rows in results.items():
        entry = {"subjects": len(rows)}
        for key in (
            "mse",
            "ahd",
            "seconds",
            "lesion_contrast_ratio",
            "through_plane_ratio",
            "detail_ratio",
        ):
            entry[key] = _mean(rows, key)
        for key in ("mse", "ahd"):
            values = _values(rows, (key,))
            entry[f"{key}_sd"] = float(np.nanstd(values)) if len(values) > 1 else float("nan")
        for key in ("volume_diff", "dice", "hd95", "truth_dice"):
            entry[key] = {t: _mean(rows, key, t) for t in metrics.TISSUES}
        # Rows cached before the per-axis measure lack it.
        if all("anisotropy_ratios" in row for row in rows):
            entry["anisotropy_ratios"] = [_mean(rows, "anisotropy_ratios", k) for k in range(3)]
        deviation = site_deviation_error(rows)
        if deviation is not None:
            entry["site_deviation_error"] = deviation
        summary[name] = entry
    return summary


def mean_summary(a, b):
    """The mean of two summaries of the same shape (nested dicts and lists of numbers):
    one method's measures over two sampling seeds."""
    if isinstance(a, dict):
        return {k: mean_summary(a[k], b[k]) for k in a}
    if isinstance(a, list):
        return [mean_summary(x, y) for x, y in zip(a, b, strict=True)]
    return (a + b) / 2


def within_seed_spread(arm: float, seed0: float, seed1: float) -> bool:
    """Whether ``arm`` exceeds the mean of the default's two seeds by no more than their
    own difference: a rise chance alone could make (lower is better)."""
    return arm - (seed0 + seed1) / 2 <= abs(seed0 - seed1)


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.3f}" if base else "n/a"


def acceptance_unseen(summary: dict, default: str) -> list[tuple[str, str, bool]]:
    """Issue 34's bars on unseen scanners for the default setting: (check, measured, met)."""
    ours, orig, hm = summary[default], summary[ORIGINAL], summary[MATCHING]
    checks = [
        (
            "MSE <= histogram matching's",
            f"{ours['mse']:.3e} vs {hm['mse']:.3e}",
            ours["mse"] <= hm["mse"],
        )
    ]
    for t in metrics.TISSUES:
        a, b = ours["volume_diff"][t], hm["volume_diff"][t]
        checks.append(
            (f"{t} volume difference <= histogram matching's", f"{a:.3e} vs {b:.3e}", a <= b)
        )
    bar = UNSEEN["ahd_vs_matching"]
    checks.append(
        (
            f"AHD <= {bar} x histogram matching's",
            f"{ours['ahd'] / hm['ahd']:.2f} x",
            ours["ahd"] <= bar * hm["ahd"],
        )
    )
    for t in metrics.TISSUES:
        checks.append(
            (
                f"Dice {t} >= Original's",
                f"{ours['dice'][t]:.3f} vs {orig['dice'][t]:.3f}",
                ours["dice"][t] >= orig["dice"][t],
            )
        )
    worse = [k for k in ("mse", "ahd") if ours[k] > orig[k]]
    worse += [
        f"{t} volume" for t in metrics.TISSUES if ours["volume_diff"][t] > orig["volume_diff"][t]
    ]
    worse += [f"HD95 {t}" for t in metrics.TISSUES if ours["hd95"][t] > orig["hd95"][t]]
    checks.append(("no metric worse than Original", ", ".join(worse) or "none worse", not worse))
    lesion = ours["lesion_contrast_ratio"]
    checks.append(
        (
            f"lesion contrast within {UNSEEN['lesion']:.0%} of the target's",
            f"{lesion:.3f}",
            abs(lesion - 1) <= UNSEEN["lesion"],
        )
    )
    lo, hi = UNSEEN["through_plane"]
    if "anisotropy_ratios" in ours:
        ratios = ours["anisotropy_ratios"]
        checks.append(
            (
                f"through-plane ratio in [{lo}, {hi}] across every axis's slices",
                " / ".join(f"{r:.3f}" for r in ratios) + " (sagittal / coronal / axial)",
                all(lo <= r <= hi for r in ratios),
            )
        )
    else:
        tp = ours["through_plane_ratio"]
        checks.append((f"through-plane ratio in [{lo}, {hi}]", f"{tp:.3f}", lo <= tp <= hi))
    detail = ours["detail_ratio"]
    checks.append(
        (
            f"detail energy within {UNSEEN['detail']:.0%} of the target's",
            f"{detail:.3f}",
            abs(detail - 1) <= UNSEEN["detail"],
        )
    )
    return checks


def acceptance_in_distribution(summary: dict, default: str) -> list[tuple[str, str, bool]]:
    """Issue 5's bars for the default setting: ratios to Original, below both peers."""
    ours, orig = summary[default], summary[ORIGINAL]
    peers = [summary[MATCHING], summary[NYUL]]
    checks = []
    for key in ("mse", "ahd"):
        ratio = ours[key] / orig[key]
        below = all(ours[key] < p[key] for p in peers)
        checks.append(
            (
                f"{key.upper()} <= {IN_DISTRIBUTION[key]} x Original, below both peers",
                f"{ratio:.3f} x; peers "
                + ", ".join(_ratio(p[key], orig[key]) + " x" for p in peers),
                ratio <= IN_DISTRIBUTION[key] and below,
            )
        )
    for t in metrics.TISSUES:
        ratio = ours["volume_diff"][t] / orig["volume_diff"][t]
        checks.append(
            (
                f"{t} volume difference <= {IN_DISTRIBUTION['volume']} x Original",
                f"{ratio:.3f} x",
                ratio <= IN_DISTRIBUTION["volume"],
            )
        )
    return checks


def tables(title: str, summary: dict, about: dict, checks: list) -> str:
    orig = summary[ORIGINAL]
    lines = [
        f"### {title}",
        "",
        f"{about['subjects']} subjects at {about['sites']} sites of phantom `{about['phantom']}`.",
    ]
    if about.get("model"):
        m = about["model"]
        lines[-1] += (
            f" Model `{m['path']}`, weights SHA-256 {m['weights_sha256'][:12]}, "
            f"{m['iterations_total']} iterations in all."
        )
    lines += [
        "",
        "| method | MSE (x Original) | AHD (x Original) | CSF / GM / WM volume "
        "difference (x Original) | Dice CSF / GM / WM | HD95 CSF / GM / WM (mm) |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        volumes = " / ".join(
            _ratio(s["volume_diff"][t], orig["volume_diff"][t]) for t in metrics.TISSUES
        )
        dice = " / ".join(f"{s['dice'][t]:.3f}" for t in metrics.TISSUES)
        hd95 = " / ".join(f"{s['hd95'][t]:.2f}" for t in metrics.TISSUES)
        lines.append(
            f"| {name} | {s['mse']:.3e} ({_ratio(s['mse'], orig['mse'])}) | "
            f"{s['ahd']:.3e} ({_ratio(s['ahd'], orig['ahd'])}) | {volumes} | {dice} | "
            f"{hd95} |"
        )
    lines += [
        "",
        "| method | lesion contrast / target's | through-plane / target's (sagittal; "
        "sagittal / coronal / axial) | detail energy / target's | truth Dice CSF / GM / WM | "
        "seconds per volume |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        truth = " / ".join(f"{s['truth_dice'][t]:.3f}" for t in metrics.TISSUES)
        axes = s.get("anisotropy_ratios")
        through = (
            f"{s['through_plane_ratio']:.3f}"
            if axes is None
            else " / ".join(f"{r:.3f}" for r in axes)
        )
        lines.append(
            f"| {name} | {s['lesion_contrast_ratio']:.3f} | "
            f"{through} | {s['detail_ratio']:.3f} | {truth} | "
            f"{s['seconds']:.1f} |"
        )
    if all("site_deviation_error" in s for s in summary.values()):
        lines += [
            "",
            "| method | within-site volume deviation error CSF / GM / WM (x Original) |",
            "|---|---|",
        ]
        for name, s in summary.items():
            deviation = " / ".join(
                _ratio(s["site_deviation_error"][t], orig["site_deviation_error"][t])
                for t in metrics.TISSUES
            )
            lines.append(f"| {name} | {deviation} |")
    if checks:
        lines += ["", "| check | measured | met |", "|---|---|---|"]
        lines += [f"| {c} | {m} | {'yes' if ok else '**no**'} |" for c, m, ok in checks]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from harmonize_bids.choices import (
        DEFAULT_EVEN_OUT_SLICES,
        DEFAULT_SAMPLER,
        DEFAULT_SCANNER_MAP,
        DEFAULT_SLICE_PLANES,
        DEFAULT_STEPS,
        SAMPLERS,
        SLICE_PLANES,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--set",
        nargs=3,
        action="append",
        required=True,
        metavar=("NAME", "BIDS", "WORK"),
        help="a held-out phantom and its prepared work folder; a NAME "
        "starting with 'unseen' is judged by the unseen-scanner bars",
    )
    parser.add_argument("--model-1p5T-to-3T", dest="model_1p5T_to_3T", type=Path)
    parser.add_argument("--model-3T-to-1p5T", dest="model_3T_to_1p5T", type=Path)
    parser.add_argument(
        "--directions", nargs="+", choices=list(DIRECTIONS), default=list(DIRECTIONS)
    )
    parser.add_argument(
        "--steps",
        nargs="*",
        type=int,
        default=[DEFAULT_STEPS],
        help="sampling steps; the first is the setting judged (none: Original and the peers only)",
    )
    parser.add_argument("--sampler", choices=SAMPLERS, default=DEFAULT_SAMPLER)
    parser.add_argument(
        "--slice-planes",
        nargs="+",
        choices=list(SLICE_PLANES),
        default=list(DEFAULT_SLICE_PLANES),
        help="planes our model is applied along, averaged (default: the app's)",
    )
    parser.add_argument(
        "--even-out-slices",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_EVEN_OUT_SLICES,
        help="smooth the slow brightness changes between our output's slices (default: the app's)",
    )
    parser.add_argument(
        "--save-images", action="store_true", help="keep every output volume (.npy) in the cache"
    )
    parser.add_argument(
        "--reference",
        choices=("site-mates", SITE_MAP),
        default="site-mates",
        help="our model's reference: the site mates' pooled target-field scans (the app's), "
        "or the subject's source mapped through the site mates' scanner map",
    )
    parser.add_argument(
        "--scanner-map",
        choices=("auto", "on", "off"),
        default=DEFAULT_SCANNER_MAP,
        help="match our output through the site mates' scanner map where the app would "
        "(default: the app's)",
    )
    parser.add_argument("--max-subjects", type=int)
    parser.add_argument(
        "--subjects",
        nargs="+",
        metavar="LABEL",
        help="evaluate only these subjects (every subject still serves as a "
        "site mate's reference)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("quality-cache"),
        help="per-subject results, kept under NAME/DIRECTION; one phantom per folder",
    )
    parser.add_argument("--output", type=Path, help="write the tables (markdown) here")
    parser.add_argument("--json", type=Path, help="write the summaries (JSON) here")
    args = parser.parse_args(argv)
    args.inference = {
        "slice_planes": tuple(p for p in SLICE_PLANES if p in args.slice_planes),
        "even_out_slices": args.even_out_slices,
        "reference": args.reference,
    }
    command = " ".join(map(str, sys.argv[1:] if argv is None else argv))
    text = [
        "# Harmonization quality on held-out phantom sites",
        "",
        "Made by `benchmarks/quality.py` (its docstring defines the methods and metrics). "
        "Every figure below was measured on simulated phantom subjects that no training "
        "run, setting or calibration saw; the unseen-scanner set also holds scanner "
        "families, protocol and tissue ranges and anatomy that training never saw. "
        "Histogram matching and our model both use the same subject's site mates' "
        "target-field scans (never the subject's own).",
        "",
        "```bash",
        RECIPE,
        "```",
        "",
        f"Command: `python benchmarks/quality.py {command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {args.threads} "
        f"torch thread(s); {time.strftime('%Y-%m-%d')}.",
        "",
    ]
    record = {}
    for set_name, bids, work in args.set:
        for direction in args.directions:
            results, about = run_direction(set_name, Path(bids), Path(work), direction, args)
            summary = summarize(results)
            unseen = set_name.startswith("unseen")
            default = about["default"]
            checks = []
            if default in summary:
                checks = (acceptance_unseen if unseen else acceptance_in_distribution)(
                    summary, default
                )
            title = f"{set_name}: {direction.replace('-to-', ' -> ')}"
            text.append(tables(title, summary, about, checks))
            record[f"{set_name} {direction}"] = {
                **about,
                "methods": summary,
                "acceptance": [
                    {"check": c, "measured": m, "met": bool(ok)} for c, m, ok in checks
                ],
            }
    report = "\n".join(text)
    print(report)
    if args.output:
        write_text(args.output, report)
    if args.json:
        write_text(args.json, json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
