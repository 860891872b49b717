"""Harmonization quality on held-out phantom subjects, shaped like the paper's Tables 1-3.

    python benchmarks/quality.py HELDOUT_BIDS HELDOUT_WORK --train-work TRAIN_WORK \
        [--model-1p5T-to-3T DIR] [--model-3T-to-1p5T DIR] [--steps 10 5 20] \
        [--cache DIR] [--output docs/quality.md] [--json results.json]

HELDOUT_WORK and TRAIN_WORK are ``harmonize-bids-train --prepare-only`` work folders:
each holds ``pairs/sub-*/pair_<direction>.json`` with the preprocessed source, its brain
mask and the preprocessed target registered to the source (ANTs SyN), exactly what the
paper evaluates on. HELDOUT_BIDS is the phantom dataset itself (for the ground-truth
tissue and lesion labels in ``derivatives/phantom``).

Methods, per direction:

- Original: the preprocessed source, unchanged.
- Histogram matching (scikit-image ``match_histograms``) of the source's brain voxels to
  those of one preprocessed target-field training scan.
- Nyul piecewise-linear standardization (intensity-normalization ``NyulNormalizer``)
  fitted on all target-field training scans; its output range is set to their mean
  1st / 99th brain percentiles so the result lives on the target's [0, 1] scale.
- Our model (the app's default sampler, or `--sampler`) at the default and at other step counts.

Metrics against the registered target, inside the source brain mask: MSE, AHD; ANTs
Atropos 3-class segmentation of every image, then absolute CSF/GM/WM volume differences,
Dice and Hausdorff 95 against the target's segmentation. Beyond the paper: lesion
contrast (1 - mean lesion / mean normal-appearing WM, from the phantom's true labels)
divided by the target's; through-plane consistency divided by the target's; Dice of the
Atropos segmentation with the phantom's true tissue labels (lesion counted as WM); and
wall time per volume. Every per-image result is cached, so a rerun only fills gaps.

The inputs of docs/quality.md, made in an empty folder (RECIPE below).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np

from harmonize_bids.atomic import write_text
from harmonize_bids.choices import Direction
from harmonize_bids.phantom import truth_file
from harmonize_bids.qc import metrics
from harmonize_bids.qc.paired import compare_to_target

RECIPE = """\
harmonize-bids-phantom train --subjects 24 --seed 1000 --size full --lesion-fraction 0.5
harmonize-bids-phantom heldout --subjects 6 --seed 2000 --size full --lesion-fraction 0.5
for fields in "1.5 3" "3 1.5"; do
  set -- $fields
  harmonize-bids-train train unused --source-field $1 --target-field $2 -w work_wm \\
      --prepare-only
  harmonize-bids-train heldout unused --source-field $1 --target-field $2 -w heldout_wm \\
      --prepare-only
done
# Both directions' records ran on pairs prepared so, by the code of the record's date."""

DIRECTIONS = {"1.5T-to-3T": (1.5, 3.0), "3T-to-1.5T": (3.0, 1.5)}
SESSION = {1.5: "1p5T", 3.0: "3T"}
LESION_LABEL = 4
#: The sagittal axis of the RAS 1 mm grid: the models' slice axis (preprocessing.json).
SLICE_AXIS = 0
MIN_LESION_VOXELS = 20
#: Acceptance bars of issue #5 (relative to Original unless stated).
BARS = {"mse": 0.41, "ahd": 0.21, "volume": 0.33, "lesion": 0.15, "through_plane": (0.9, 1.1)}


# ----------------------------------------------------------------------------- inputs
def _pairs(work: Path, direction: str) -> list[dict]:
    slug = Direction(*DIRECTIONS[direction]).slug  # as training_data.pair_record names them
    records = []
    for path in sorted(work.glob(f"pairs/sub-*/pair_{slug}.json")):
        record = json.loads(path.read_text())
        record["subject"] = path.parent.name
        records.append(record)
    if not records:
        sys.exit(
            f"No prepared pairs for {direction} in {work}; run harmonize-bids-train "
            "... --prepare-only there first."
        )
    return records


def _load(path: str | Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj, dtype=np.float32)


def _field_scans(work: Path, field: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Preprocessed scans (and masks) of one field strength in a prepared work folder.

    Scans that harmonize-bids-train would leave out (a broken intensity scale) are left
    out here too, so the peers learn from the same data as the model.
    """
    from harmonize_bids.image import scaling_problem

    scans = []
    for preproc in sorted(work.glob(f"pairs/sub-*/ses-{SESSION[field]}-*/*_T1w_preproc.nii.gz")):
        mask = preproc.with_name(preproc.name.replace("_preproc", "_mask"))
        image, brain = _load(preproc), _load(mask) > 0
        problem = scaling_problem(image, brain)
        if problem:
            print(f"peers: leaving out {preproc.name}: {problem}", file=sys.stderr)
            continue
        scans.append((image, brain))
    if not scans:
        sys.exit(f"No preprocessed {field:g} T scans in {work}/pairs.")
    return scans


def _source_truth(bids: Path, record: dict, suffix: str) -> Path:
    """A ground-truth file of the pair's source session (its raw file is ``inputs[0]``)."""
    sub, ses = Path(record["inputs"][0]).name.split("_")[:2]
    return truth_file(bids, sub, ses, suffix)


def _truth_labels(bids: Path, record: dict) -> np.ndarray:
    """The phantom's true labels of the source session, on the preprocessed source grid."""
    from nibabel.processing import resample_from_to

    dseg = nib.load(_source_truth(bids, record, "dseg.nii.gz"))
    grid = nib.load(record["source"])
    return np.asarray(resample_from_to(dseg, grid, order=0).dataobj, np.uint8)


def _phantom_seed(bids: Path, record: dict) -> int:
    sidecar = _source_truth(bids, record, "dseg.json")
    return int(json.loads(sidecar.read_text())["PhantomTruth"]["seed"])


# ----------------------------------------------------------------------------- methods
class Peers:
    """Histogram matching and Nyul standardization toward one target field."""

    def __init__(self, train_work: Path, target_field: float):
        from intensity_normalization.adapters.images import NumpyImageAdapter
        from intensity_normalization.normalizers.population.nyul import NyulNormalizer

        scans = _field_scans(train_work, target_field)
        self.reference = scans[0][0][scans[0][1]]
        low = np.mean([np.percentile(img[m], 1) for img, m in scans])
        high = np.mean([np.percentile(img[m], 99) for img, m in scans])
        self.nyul = NyulNormalizer(output_min_value=low, output_max_value=high)
        self.nyul.fit_population(
            [NumpyImageAdapter(img) for img, _ in scans],
            [NumpyImageAdapter(m.astype(np.float32)) for _, m in scans],
        )
        self._adapter = NumpyImageAdapter

    def histogram_matching(self, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from skimage.exposure import match_histograms

        out = np.zeros_like(source)
        out[mask] = match_histograms(source[mask], self.reference)
        return out

    def nyul_standardization(self, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
        image = self.nyul.transform(self._adapter(source), self._adapter(mask.astype(np.float32)))
        return np.where(mask, np.clip(image.get_data(), 0.0, 1.0), 0.0).astype(np.float32)


# ----------------------------------------------------------------------------- metrics
def lesion_contrast(image: np.ndarray, truth: np.ndarray) -> float:
    """1 - mean(lesion) / mean(normal-appearing WM): how dark lesions are against WM."""
    lesion = truth == LESION_LABEL
    if lesion.sum() < MIN_LESION_VOXELS:
        return float("nan")
    return float(1.0 - image[lesion].mean() / image[truth == metrics.TISSUE_LABELS["WM"]].mean())


def target_reference(target: np.ndarray, mask: np.ndarray, truth: np.ndarray, axis: int) -> dict:
    """The target's own lesion contrast and through-plane consistency (ratio denominators)."""
    return {
        "lesion_contrast": lesion_contrast(target, truth),
        "through_plane": metrics.through_plane_consistency(target, mask, axis=axis),
    }


def evaluate(
    image: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    target_seg: np.ndarray,
    truth: np.ndarray,
    reference: dict,
    axis: int,
) -> dict:
    """The paper's metrics against the target (the group level's
    :func:`~harmonize_bids.qc.paired.compare_to_target`, 1 mm grid), and ours relative to
    the target's."""
    seg = metrics.segment_tissues(image, mask)
    truth_tissue = np.where(truth == LESION_LABEL, metrics.TISSUE_LABELS["WM"], truth) * mask
    result = {
        **compare_to_target(image, target, mask, target_seg, labels=seg),
        "truth_dice": metrics.dice(seg, truth_tissue),
        "lesion_contrast_ratio": lesion_contrast(image, truth) / reference["lesion_contrast"],
        "through_plane_ratio": (
            metrics.through_plane_consistency(image, mask, axis=axis) / reference["through_plane"]
        ),
    }
    return result


# ----------------------------------------------------------------------------- running
def _cached(path: Path, compute):
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    write_text(path, json.dumps(value, indent=1))
    return value


def _methods(
    model, peers: Peers, source: np.ndarray, mask: np.ndarray, steps_list: list[int], sampler: str
) -> dict[str, Callable[[], np.ndarray]]:
    from harmonize_bids.inference import InferenceSettings, harmonize

    def ours(settings: InferenceSettings) -> np.ndarray:
        return harmonize(model, source, mask, settings).image

    methods = {
        "Original": lambda: source,
        "Histogram matching": lambda: peers.histogram_matching(source, mask),
        "Nyul": lambda: peers.nyul_standardization(source, mask),
    }
    for steps in steps_list:
        methods[f"Ours ({sampler}, {steps} steps)"] = partial(
            ours, InferenceSettings.resolve(model, sampler=sampler, steps=steps, seed=0)
        )
    return methods


def _measure(
    make: Callable[[], np.ndarray],
    target: np.ndarray,
    mask: np.ndarray,
    target_seg: np.ndarray,
    truth: np.ndarray,
    reference: dict,
    axis: int,
    save: Path | None = None,
) -> dict:
    """Run one method (timed) and evaluate its output."""
    start = time.perf_counter()
    image = np.asarray(make(), np.float32)
    seconds = time.perf_counter() - start
    if save:
        np.save(save.with_suffix(".npy"), image.astype(np.float16))
    return {
        **evaluate(image, target, mask, target_seg, truth, reference, axis),
        "seconds": seconds,
    }


def _target_segmentation(
    path: Path, target: np.ndarray, mask: np.ndarray, affine: np.ndarray
) -> np.ndarray:
    if path.is_file():
        return _load(path).astype(np.uint8)
    seg = metrics.segment_tissues(target, mask)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(seg, affine), path)
    return seg


def _slug(name: str) -> str:
    return "".join(c for c in name.lower().replace(" ", "_") if c.isalnum() or c == "_")


def _sampler_timesteps(model, sampler: str, steps_list: list[int]) -> dict[str, list[int]]:
    """The timesteps at which each "Ours" method calls the network."""
    from harmonize_bids.model.schedulers import sampling_scheduler

    timesteps = {}
    for steps in steps_list:
        scheduler = sampling_scheduler(model.scheduler_config, sampler)
        scheduler.set_timesteps(steps)
        timesteps[f"Ours ({sampler}, {steps} steps)"] = scheduler.timesteps.tolist()
    return timesteps


def _cache_stem(name: str, model: dict | None) -> str:
    """Cache file stem; "Ours" is keyed by the weights and the sampler's timesteps, so a
    change of either reruns it. ``model`` is the ``about["model"]`` of run_direction."""
    stem = _slug(name)
    if not name.startswith("Ours"):
        return stem
    timesteps = json.dumps(model["timesteps"][name]).encode()
    return f"{stem}_{model['weights_sha256'][:12]}_{hashlib.sha256(timesteps).hexdigest()[:8]}"


def run_direction(direction: str, args: argparse.Namespace) -> tuple[dict[str, list[dict]], dict]:
    """Per-method lists of per-subject results for one direction, and what was run."""
    import torch

    from harmonize_bids.model.folder import bundled_model_dir, load_model_folder

    torch.set_num_threads(args.threads)
    source_field, target_field = DIRECTIONS[direction]
    option = direction.replace(".", "p")
    model_dir = getattr(args, f"model_{option.replace('-', '_')}") or bundled_model_dir(
        source_field, target_field
    )
    model = None
    if args.steps:
        if model_dir is None:
            sys.exit(f"No model for {direction}: pass --model-{option}.")
        model = load_model_folder(model_dir, source_field=source_field, target_field=target_field)
    peers = Peers(args.train_work, target_field)
    cache = args.cache / direction
    results: dict[str, list[dict]] = {}
    records = _pairs(args.heldout_work, direction)[: args.max_subjects]
    about = {
        "heldout_seeds": sorted({_phantom_seed(args.heldout_bids, r) for r in records}),
        "subjects": len(records),
    }
    if model is not None:
        meta = model.meta
        about["model"] = {
            "path": str(model_dir),
            "iterations": meta.get("iterations"),
            "iterations_total": meta.get("iterations_total", meta.get("iterations")),
            "weights_sha256": model.weights_sha256,
            "timesteps": _sampler_timesteps(model, args.sampler, args.steps),
        }
    for record in records:
        sub = record["subject"]
        source, target = _load(record["source"]), _load(record["target"])
        mask = _load(record["mask"]) > 0
        truth = _truth_labels(args.heldout_bids, record)
        target_seg = _target_segmentation(
            cache / sub / "target_dseg.nii.gz", target, mask, nib.load(record["source"]).affine
        )
        reference = target_reference(target, mask, truth, SLICE_AXIS)
        for name, make in _methods(model, peers, source, mask, args.steps, args.sampler).items():
            stem = cache / sub / _cache_stem(name, about.get("model"))
            result = _cached(
                stem.with_suffix(".json"),
                partial(
                    _measure,
                    make,
                    target,
                    mask,
                    target_seg,
                    truth,
                    reference,
                    SLICE_AXIS,
                    args.save_images and stem,
                ),
            )
            result["subject"] = sub
            results.setdefault(name, []).append(result)
            print(
                f"{direction} {sub} {name}: MSE {result['mse']:.3g}, {result['seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return results, about


# ----------------------------------------------------------------------------- tables
def _mean(rows: list[dict], *keys: str) -> float:
    values = np.asarray([_dig(row, keys) for row in rows], float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _sd(rows: list[dict], *keys: str) -> float:
    values = np.asarray([_dig(row, keys) for row in rows], float)
    return float(np.nanstd(values)) if np.isfinite(values).sum() > 1 else float("nan")


def _dig(row: dict, keys: tuple[str, ...]):
    for key in keys:
        row = row[key]
    return row


def summarize(results: dict[str, list[dict]]) -> dict[str, dict]:
    summary = {}
    for name, rows in results.items():
        entry = {
            "subjects": len(rows),
            "mse": _mean(rows, "mse"),
            "mse_sd": _sd(rows, "mse"),
            "ahd": _mean(rows, "ahd"),
            "ahd_sd": _sd(rows, "ahd"),
            "seconds": _mean(rows, "seconds"),
            "lesion_contrast_ratio": _mean(rows, "lesion_contrast_ratio"),
            "lesion_contrast_ratio_range": [
                float(np.nanmin([r["lesion_contrast_ratio"] for r in rows])),
                float(np.nanmax([r["lesion_contrast_ratio"] for r in rows])),
            ],
            "through_plane_ratio": _mean(rows, "through_plane_ratio"),
        }
        for key in ("volume_diff", "dice", "hd95", "truth_dice"):
            entry[key] = {t: _mean(rows, key, t) for t in metrics.TISSUES}
        summary[name] = entry
    return summary


def cached_output(cache: Path, direction: str, subject: str, method: str) -> np.ndarray:
    """The one uncalibrated output of ``method`` a ``--save-images`` run cached (for
    research/experiments scripts); exits naming the folder if there is none or several."""
    found = [
        path
        for path in sorted((cache / direction / subject).glob(f"{_slug(method)}_*.npy"))
        if "_cal" not in path.stem
    ]
    if len(found) != 1:
        sys.exit(
            f"expected one cached uncalibrated output of {method} for {subject} in "
            f"{cache / direction}, found {len(found)}"
        )
    return np.load(found[0]).astype(np.float32)


def with_cached_original(
    results: dict[str, list[dict]], cache: Path, direction: str
) -> dict[str, list[dict]]:
    """An experiment's per-method results, preceded by the cached Original rows of the
    same subjects (for research/experiments scripts that re-measure cached outputs)."""
    subjects = sorted(row["subject"] for row in next(iter(results.values())))
    for name, rows in results.items():
        if sorted(row["subject"] for row in rows) != subjects:
            sys.exit(f"{name}: results for {len(rows)} of {len(subjects)} subjects")
    original = [
        {**json.loads((cache / direction / sub / "original.json").read_text()), "subject": sub}
        for sub in subjects
    ]
    return {"Original": original, **results}


def _ratio_text(ratio: float, bar: float) -> str:
    """A ratio to Original, with more digits when three would round it onto its bar."""
    text = f"{ratio:.3f}"
    if float(text) == bar and ratio != bar:
        text = f"{ratio:.5f}"
    return f"{text} x"


def acceptance(summary: dict[str, dict], default: str) -> list[tuple[str, str, bool]]:
    """Issue #5's bars for the default setting: (check, measured, met)."""
    ours, orig = summary[default], summary["Original"]
    peers = [summary["Histogram matching"], summary["Nyul"]]
    checks = []
    for key, bar in (("mse", BARS["mse"]), ("ahd", BARS["ahd"])):
        ratio = ours[key] / orig[key]
        below_peers = all(ours[key] < p[key] for p in peers)
        peer_ratios = ", ".join(f"{p[key] / orig[key]:.3f} x" for p in peers)
        checks.append(
            (
                f"{key.upper()} <= {bar} x Original and below both peers",
                f"{_ratio_text(ratio, bar)}; peers {peer_ratios}",
                ratio <= bar and below_peers,
            )
        )
    for t in metrics.TISSUES:
        ratio = ours["volume_diff"][t] / orig["volume_diff"][t]
        checks.append(
            (
                f"{t} volume difference <= {BARS['volume']} x Original",
                _ratio_text(ratio, BARS["volume"]),
                ratio <= BARS["volume"],
            )
        )
    for t in metrics.TISSUES:
        checks.append(
            (
                f"Dice {t} >= Original",
                f"{ours['dice'][t]:.3f} vs {orig['dice'][t]:.3f}",
                ours["dice"][t] >= orig["dice"][t],
            )
        )
        checks.append(
            (
                f"HD95 {t} <= Original",
                f"{ours['hd95'][t]:.2f} vs {orig['hd95'][t]:.2f} mm",
                ours["hd95"][t] <= orig["hd95"][t],
            )
        )
    lo, hi = ours["lesion_contrast_ratio_range"]
    mean = ours["lesion_contrast_ratio"]
    checks.append(
        (
            f"lesion contrast within {BARS['lesion']:.0%} of the target's",
            f"mean {mean:.3f} (subjects {lo:.3f}-{hi:.3f})",
            abs(mean - 1) <= BARS["lesion"],
        )
    )
    tp_lo, tp_hi = BARS["through_plane"]
    tp = ours["through_plane_ratio"]
    checks.append(
        (f"through-plane ratio in [{tp_lo}, {tp_hi}]", f"{tp:.3f}", tp_lo <= tp <= tp_hi)
    )
    return checks


def tables(direction: str, summary: dict[str, dict], default: str, about: dict) -> str:
    orig = summary["Original"]
    n = orig["subjects"]
    lines = [
        f"### {direction.replace('-to-', ' -> ')} ({n} held-out subjects)",
        "",
        f"Held-out phantom seed(s) {about['heldout_seeds']}.",
    ]
    if "model" in about:
        m = about["model"]
        trained = f"{m['iterations']} iterations"
        if m["iterations_total"] != m["iterations"]:
            trained += f" fine-tuned ({m['iterations_total']} in all)"
        lines[-1] += (
            f" Model `{m['path']}`: {trained}, weights SHA-256 {m['weights_sha256'][:12]}."
        )
    lines += [
        "",
        "Table 1. MSE (brain, [0, 1] scale) and AHD (255-bin histogram abs. difference), "
        "mean (sd); ratio to Original.",
        "",
        "| method | MSE | x Original | AHD | x Original |",
        "|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['mse']:.3e} ({s['mse_sd']:.1e}) | "
            f"{s['mse'] / orig['mse']:.3f} | {s['ahd']:.3e} ({s['ahd_sd']:.1e}) | "
            f"{s['ahd'] / orig['ahd']:.3f} |"
        )
    lines += [
        "",
        "Table 2. Absolute volume difference to the target's Atropos segmentation, "
        "mm^3 (ratio to Original).",
        "",
        "| method | CSF | GM | WM |",
        "|---|---|---|---|",
    ]
    for name, s in summary.items():
        cells = [
            f"{s['volume_diff'][t]:.3e} ({s['volume_diff'][t] / orig['volume_diff'][t]:.2f})"
            for t in metrics.TISSUES
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Table 3. Dice and Hausdorff 95 (mm) against the target's segmentation.",
        "",
        "| method | Dice CSF | Dice GM | Dice WM | HD95 CSF | HD95 GM | HD95 WM |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        cells = [f"{s['dice'][t]:.3f}" for t in metrics.TISSUES]
        cells += [f"{s['hd95'][t]:.2f}" for t in metrics.TISSUES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Table 4. Beyond the paper: lesion contrast and through-plane roughness "
        "relative to the target (1 = same), Dice with the phantom's true labels, "
        "wall time per volume.",
        "",
        "| method | lesion contrast ratio (range) | through-plane ratio | "
        "truth Dice CSF / GM / WM | seconds per volume |",
        "|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        lo, hi = s["lesion_contrast_ratio_range"]
        truth = " / ".join(f"{s['truth_dice'][t]:.3f}" for t in metrics.TISSUES)
        lines.append(
            f"| {name} | {s['lesion_contrast_ratio']:.3f} ({lo:.2f}-{hi:.2f}) | "
            f"{s['through_plane_ratio']:.3f} | {truth} | {s['seconds']:.1f} |"
        )
    if default not in summary:
        return "\n".join(lines) + "\n"
    lines += ["", f"Acceptance ({default}):", "", "| check | measured | met |", "|---|---|---|"]
    for check, measured, met in acceptance(summary, default):
        lines.append(f"| {check} | {measured} | {'yes' if met else '**no**'} |")
    return "\n".join(lines) + "\n"


def per_subject_table(results: dict[str, list[dict]], default: str) -> str:
    """The default setting's MSE and AHD per held-out subject, as fractions of Original."""
    if default not in results:
        return ""
    original = {row["subject"]: row for row in results["Original"]}
    lines = [
        "",
        f"Table 5. {default} per held-out subject (x Original).",
        "",
        "| subject | MSE | AHD | CSF / GM / WM volume difference |",
        "|---|---|---|---|",
    ]
    for row in results[default]:
        orig = original[row["subject"]]
        volumes = " / ".join(
            f"{row['volume_diff'][t] / orig['volume_diff'][t]:.2f}" for t in metrics.TISSUES
        )
        lines.append(
            f"| {row['subject']} | {row['mse'] / orig['mse']:.3f} | "
            f"{row['ahd'] / orig['ahd']:.3f} | {volumes} |"
        )
    return "\n".join(lines) + "\n"


def plot_examples(
    args: argparse.Namespace, default: str, models: dict[str, dict], out_file: Path
) -> Path:
    """One axial slice through the lesions of a held-out subject: every method per direction.

    ``models`` maps each direction to its run's ``about["model"]`` (the cache key).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["Original", "Histogram matching", "Nyul", default, "Target"]
    figure, axes = plt.subplots(
        len(args.directions),
        len(columns) + 1,
        figsize=(2.6 * (len(columns) + 1), 2.9 * len(args.directions)),
        squeeze=False,
        facecolor="black",
    )
    for row, direction in zip(axes, args.directions, strict=True):
        record = next(
            r for r in _pairs(args.heldout_work, direction) if r["subject"] == args.figure_subject
        )
        truth = _truth_labels(args.heldout_bids, record)
        lesion = truth == LESION_LABEL
        z = int(np.argwhere(lesion if lesion.any() else truth > 0)[:, 2].mean())
        images = {
            name: np.load(
                args.cache
                / direction
                / record["subject"]
                / f"{_cache_stem(name, models[direction])}.npy"
            ).astype(np.float32)
            for name in columns[:-1]
        }
        images["Target"] = _load(record["target"]) * (_load(record["mask"]) > 0)
        images["|ours - target|"] = np.abs(images[default] - images["Target"])
        for axis, (name, image) in zip(row, images.items(), strict=True):
            axis.imshow(
                np.rot90(image[:, :, z]),
                cmap="gray",
                vmin=0,
                vmax=0.5 if name.startswith("|") else 1,
            )
            axis.set_title(
                f"{direction}\n{name}" if name == "Original" else name, color="white", fontsize=8
            )
            axis.axis("off")
    figure.tight_layout()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, dpi=90, facecolor="black")
    plt.close(figure)
    return out_file


def main(argv: list[str] | None = None) -> int:
    from harmonize_bids.model.sampling import DEFAULT_SAMPLER, DEFAULT_STEPS
    from harmonize_bids.model.schedulers import SAMPLERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("heldout_bids", type=Path)
    parser.add_argument("heldout_work", type=Path)
    parser.add_argument("--train-work", type=Path, required=True)
    parser.add_argument("--model-1p5T-to-3T", dest="model_1p5T_to_3T", type=Path)
    parser.add_argument("--model-3T-to-1p5T", dest="model_3T_to_1p5T", type=Path)
    parser.add_argument(
        "--directions", nargs="+", choices=list(DIRECTIONS), default=list(DIRECTIONS)
    )
    parser.add_argument(
        "--steps",
        nargs="*",
        type=int,
        default=[DEFAULT_STEPS, 5, 20],
        help="sampling steps; the first is the default setting judged "
        "(none: Original and the peers only)",
    )
    parser.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=DEFAULT_SAMPLER,
        help=f"our model's sampler (default: {DEFAULT_SAMPLER}, the app's)",
    )
    parser.add_argument(
        "--save-images", action="store_true", help="keep every output volume (.npy) in the cache"
    )
    parser.add_argument("--max-subjects", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("quality-cache"))
    parser.add_argument("--output", type=Path, help="write the tables (markdown) here")
    parser.add_argument("--json", type=Path, help="write the summaries (JSON) here")
    parser.add_argument(
        "--figure", type=Path, help="save an example figure here (needs --save-images)"
    )
    parser.add_argument(
        "--figure-subject",
        default="sub-02",
        help="held-out subject shown in --figure (default sub-02)",
    )
    args = parser.parse_args(argv)

    default = f"Ours ({args.sampler}, {args.steps[0] if args.steps else DEFAULT_STEPS} steps)"
    command = " ".join(map(str, sys.argv[1:] if argv is None else argv))
    text = [
        "# Harmonization quality on held-out phantom subjects",
        "",
        "Made by `benchmarks/quality.py` (see its docstring for the methods and metrics). "
        "For scale, the paper (Durrer et al. 2023, private data) reports for its model "
        "MSE 0.87 x / 0.41 x and AHD 0.21 x / 0.24 x Original (3 T -> 1.5 T / "
        "1.5 T -> 3 T).",
        "",
        "Inputs of docs/quality.md (training phantom seed 1000, held-out phantom seed "
        "2000; each table below names the held-out seed it was measured on):",
        "",
        "```bash",
        RECIPE,
        "```",
        "",
        f"Command: `python benchmarks/quality.py {command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{args.threads} torch thread{'s' * (args.threads != 1)}; "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
    ]
    summaries = {}
    for direction in args.directions:
        results, about = run_direction(direction, args)
        summary = summarize(results)
        summaries[direction] = {**about, "default": default, "methods": summary}
        if default in summary:
            summaries[direction]["acceptance"] = [
                {"check": c, "measured": m, "met": bool(ok)}
                for c, m, ok in acceptance(summary, default)
            ]
        text.append(tables(direction, summary, default, about))
        text.append(per_subject_table(results, default))
    if args.figure:
        models = {direction: summary.get("model") for direction, summary in summaries.items()}
        plot_examples(args, default, models, args.figure)
    report = "\n".join(text)
    print(report)
    if args.output:
        args.output.write_text(report)
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
