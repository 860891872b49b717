"""The source cleaned of noise before the model (issue 34, through-plane and within-site).

The 2D models harmonize sagittal slices one by one. A 1.5 T source is much noisier than
its 3 T target (detail energy 2-5 x the target's on the unseen-scanner sets); the model
denoises each slice on its own, so what it keeps of the noise differs from slice to slice
and the output is rougher across slices than within them. Each arm gives the model a
cleaner source; nothing else changes (reference, anchoring, sampler, seed):

- ``averaged``: the source averaged along the slice axis with weights 1/4, 1/2, 1/4
  (inside the brain mask, normalised to it): less noise that differs between
  neighbouring slices, at the price of a slight blur across slices;
- ``denoised``: ANTs' adaptive non-local means (``ants.denoise_image``, Rician noise, its
  default patch and search radii) inside the brain mask, in 3D: noise removed alike in
  every direction, edges kept;
- ``seed1`` (no arm): the default output with sampling seed 1 instead of 0, for how far
  the measures move by chance; ``denoised-seed1``: the denoised arm with seed 1.

    python research/experiments/source-denoising.py BIDS WORK CACHE DIRECTION OUT_DIR ARM
    python research/experiments/source-denoising.py report BIDS DIRECTION OUT_DIR ARM
    python research/experiments/source-denoising.py verdict ARM BIDS=OUT_DIR ...
    python research/experiments/source-denoising.py seeds OUT_DIR

``seeds`` reads the next rule: the default and the denoised arm each as the mean of its
seed 0 and seed 1 measures (the records of ``seed1``, ``denoised``, ``denoised-seed1``).

OUT_DIR is the folder of output-reference-matching.py's runs of the same set and direction
(the default outputs are kept in OUT_DIR/axis0); an arm's in OUT_DIR/<its folder>.
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

OURS = "Ours (dpm, 2 steps)"
WEIGHTS = np.array([0.25, 0.5, 0.25])


def average_slices(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` averaged along the slice axis with WEIGHTS, normalised to ``mask``."""
    inside = mask.astype(np.float64)
    num = ndimage.convolve1d(image * inside, WEIGHTS, axis=Q.SLICE_AXIS, mode="constant")
    den = ndimage.convolve1d(inside, WEIGHTS, axis=Q.SLICE_AXIS, mode="constant")
    return np.where(mask, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)


def denoise(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """ANTs' adaptive non-local means of ``image`` inside ``mask`` (zero outside)."""
    import ants

    clean = ants.denoise_image(
        ants.from_numpy(image.astype(np.float32)), mask=ants.from_numpy(mask.astype(np.float32))
    ).numpy()
    return np.where(mask, clean, 0.0).astype(np.float32)


def unchanged(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return image


#: arm: (its method name, folder of its outputs and record, the source's cleaning, seed).
#: ``seed1`` is no arm: the default with another seed, for the spread of the measures.
ARMS = {
    "averaged": ("Ours, source averaged across slices", "slice-averaged", average_slices, 0),
    "denoised": ("Ours, source denoised (non-local means)", "source-denoised", denoise, 0),
    "seed1": ("Ours, seed 1", "seed1", unchanged, 1),
    "denoised-seed1": (
        "Ours, source denoised (non-local means), seed 1",
        "source-denoised-seed1",
        denoise,
        1,
    ),
}


def record(out_dir, arm: str) -> Path:
    """An arm's results, beside the folder of its outputs."""
    return Path(out_dir, f"{ARMS[arm][1]}.json")


def main(bids, work, cache, direction_name, out_dir, arm):
    name, folder, clean, seed = ARMS[arm]
    results = {method: [] for method in (Q.ORIGINAL, Q.MATCHING, OURS, name)}
    site_of = Q.sites(Path(bids))
    model, found = Q.research_cases(bids, work, cache, direction_name, [])
    for case in found:
        ours = case.ours(model, Path(out_dir) / "axis0" / f"{case.subject}.npy")
        kept = Path(out_dir) / folder / f"{case.subject}.npy"
        cleaned = case if kept.is_file() else case._replace(source=clean(case.source, case.mask))
        images = {
            Q.ORIGINAL: case.source,
            Q.MATCHING: case.peers.histogram_matching(case.source, case.mask),
            OURS: ours,
            name: cleaned.ours(model, kept, seed=seed),
        }
        for method, image in images.items():
            row = {**case.evaluate(np.asarray(image, np.float32)), "seconds": float("nan")}
            results[method].append({**row, "subject": case.subject, "site": site_of[case.subject]})
            print(
                case.subject, method, json.dumps(row, default=float), file=sys.stderr, flush=True
            )
    record(out_dir, arm).write_text(json.dumps(results, indent=1, default=float))
    report(bids, direction_name, out_dir, arm)


def report(bids, direction_name, out_dir, arm):
    """The tables of ours and the arm beside Original and matching, with issue 34's bars."""
    arm_name = ARMS[arm][0]
    results = json.loads(record(out_dir, arm).read_text())
    summary = Q.summarize(results)
    about = {
        "subjects": len(results[OURS]),
        "sites": len({row["site"] for row in results[OURS]}),
        "phantom": Path(bids).name,
    }
    for name in (OURS, arm_name):
        shown = {k: summary[k] for k in (Q.ORIGINAL, Q.MATCHING, name)}
        checks = Q.acceptance_unseen(summary, name)
        print(Q.tables(f"{Path(bids).name}: {direction_name}, {name}", shown, about, checks))
        print(f"bars met: {sum(ok for _, _, ok in checks)} of {len(checks)}\n")


def verdict(arm, *runs):
    """Per ``BIDS=OUT_DIR`` run: the bars each of ours and the arm meets, the bars the arm
    loses, its per-axis through-plane ratios and the within-site error (x Original's)."""
    arm_name = ARMS[arm][0]
    for run in runs:
        bids, out_dir = run.split("=", 1)
        summary = Q.summarize(json.loads(record(out_dir, arm).read_text()))
        original = summary[Q.ORIGINAL]["site_deviation_error"]
        checks = {name: Q.acceptance_unseen(summary, name) for name in (OURS, arm_name)}
        met = {name: {c for c, _, ok in rows if ok} for name, rows in checks.items()}
        print(run)
        for name in (OURS, arm_name):
            error = summary[name]["site_deviation_error"]
            print(
                f"  {name}: bars {len(met[name])} of {len(checks[name])};"
                f" anisotropy {summary[name].get('anisotropy_ratios')};"
                " within-site CSF / GM / WM "
                + " / ".join(f"{error[t] / original[t]:.3f}" for t in Q.metrics.TISSUES)
            )
        lost, gained = sorted(met[OURS] - met[arm_name]), sorted(met[arm_name] - met[OURS])
        print(f"  lost: {lost}; gained: {gained}")


def seeds(out_dir):
    """The next rule's three conditions, each method the mean of its two seeds."""
    summaries = {
        arm: Q.summarize(json.loads(record(out_dir, arm).read_text()))
        for arm in ("seed1", "denoised", "denoised-seed1")
    }
    first = summaries["denoised"]
    default = (first[OURS], summaries["seed1"][ARMS["seed1"][0]])
    arm = (first[ARMS["denoised"][0]], summaries["denoised-seed1"][ARMS["denoised-seed1"][0]])
    summary = {
        Q.ORIGINAL: first[Q.ORIGINAL],
        Q.MATCHING: first[Q.MATCHING],
        OURS: Q.mean_summary(*default),
        "arm": Q.mean_summary(*arm),
    }
    met = {
        name: {c for c, _, ok in Q.acceptance_unseen(summary, name) if ok}
        for name in (OURS, "arm")
    }
    lost = sorted(met[OURS] - met["arm"])
    print(
        f"bars: default {len(met[OURS])}, arm {len(met['arm'])}; lost {lost}; "
        f"gained {sorted(met['arm'] - met[OURS])}"
    )
    tp = {name: summary[name]["through_plane_ratio"] for name in (OURS, "arm")}
    print(
        f"sagittal through-plane: default {tp[OURS]:.3f}, arm {tp['arm']:.3f}; "
        f"per axis: default {summary[OURS]['anisotropy_ratios']},"
        f" arm {summary['arm']['anisotropy_ratios']}"
    )
    original = summary[Q.ORIGINAL]["site_deviation_error"]
    within = []
    for t in Q.metrics.TISSUES:
        d0, d1 = (s["site_deviation_error"][t] / original[t] for s in default)
        a0, a1 = (s["site_deviation_error"][t] / original[t] for s in arm)
        ok = Q.within_seed_spread((a0 + a1) / 2, d0, d1)
        within.append(ok)
        print(
            f"within-site {t}: default {d0:.3f} / {d1:.3f} (mean {(d0 + d1) / 2:.3f}), "
            f"arm {a0:.3f} / {a1:.3f} (mean {(a0 + a1) / 2:.3f}): {'holds' if ok else 'fails'}"
        )
    conditions = [not lost, abs(tp["arm"] - 1) <= abs(tp[OURS] - 1), all(within)]
    print(f"conditions {conditions}: {'passes' if all(conditions) else 'fails'}")


if __name__ == "__main__":
    if sys.argv[1] == "verdict":
        verdict(*sys.argv[2:])
    elif sys.argv[1] == "seeds":
        seeds(*sys.argv[2:])
    elif sys.argv[1] == "report":
        report(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
