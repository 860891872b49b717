"""Our output histogram-matched to the study's target-field reference.

On unseen scanners histogram matching of the source to the site mates' pooled
target-field scans beats our output on grey-matter volume in both directions, while our
output beats it on MSE and Dice. Matching *our output* to the same reference keeps which
voxels the model made bright or dark and takes every intensity level from the study's
target scanner ("Ours, matched"). Matching pins the reference's tissue proportions too,
so a second arm keeps the output's own: the reference distribution with its 3-class
mixture's classes re-weighted to the output's class weights, each reference quantile
weighted by its posteriors ("Ours, matched, own proportions").

Each subject's output at the default setting is kept in OUT_DIR/axis0 (as
multi-planar.py keeps it); every method is measured with benchmarks/quality.py's
metrics and issue 34's bars, and the tables are printed as markdown.

    python research/experiments/output-reference-matching.py BIDS WORK CACHE DIRECTION OUT_DIR

The rule's conditions over several runs (research note):

    python research/experiments/output-reference-matching.py verdict RECORD BIDS=OUT_DIR ...

The second rule's arms (research note), after a run of the first in the same OUT_DIR:

    python research/experiments/output-reference-matching.py deviations \
        BIDS WORK CACHE DIRECTION OUT_DIR

The third rule's arms (research note), measured with Original, matching and ours, and the
fourth's (the same with the deviation read from the default outputs):

    python research/experiments/output-reference-matching.py segmentation \
        BIDS WORK CACHE DIRECTION OUT_DIR
    python research/experiments/output-reference-matching.py output-deviations \
        BIDS WORK CACHE DIRECTION OUT_DIR

The fifth rule's arms (one intensity map per site, fitted on the site mates):

    python research/experiments/output-reference-matching.py site-map \
        BIDS WORK CACHE DIRECTION OUT_DIR

The sixth rule's arms (the fifth's and our output matched to the site-mapped source), and
the one-shared-map diagnosis (after either):

    python research/experiments/output-reference-matching.py site-map-matched \
        BIDS WORK CACHE DIRECTION OUT_DIR
    python research/experiments/output-reference-matching.py site-map-shared \
        BIDS WORK CACHE DIRECTION OUT_DIR

The seventh rule's in-distribution check (after ``site-map-matched``; adds Nyul):

    python research/experiments/output-reference-matching.py in-distribution \
        BIDS WORK CACHE DIRECTION OUT_DIR

The eighth rule (``site-map-matched`` run on OUT_DIR and on a folder whose ``axis0`` holds
the default outputs of seed 1):

    python research/experiments/output-reference-matching.py seeds OUT_DIR SEED1_OUT_DIR
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

OURS = "Ours (dpm, 2 steps)"
MATCHED = "Ours, matched"
OWN = "Ours, matched, own proportions"
SHIFTED = "Ours, matched, source deviations"
SHIFTED_SOURCE = "Matching, source deviations"
SEGMENTED = "Ours, matched, segmented deviations"
SEGMENTED_SOURCE = "Matching, segmented deviations"
OUTPUT_DEVIATIONS = "Ours, matched, output deviations"
OUTPUT_DEVIATIONS_SOURCE = "Matching, output deviations"
SITE_MAPPED = "Ours, site-mapped"
SITE_MAPPED_SOURCE = "Source, site-mapped"
MATCHED_SITE_SOURCE = "Ours, matched to the site-mapped source"
SHARED_MAPPED = "Ours, one shared site map (own target in it)"
SHARED_MAPPED_SOURCE = "Source, one shared site map (own target in it)"
#: :func:`segmented`'s arms and record for each measure of the subject's deviation.
ARMS = {
    "source": (SEGMENTED, SEGMENTED_SOURCE, "segmented-deviations.json"),
    "output": (OUTPUT_DEVIATIONS, OUTPUT_DEVIATIONS_SOURCE, "output-deviations.json"),
}


def weighted_quantiles(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``LEVELS`` quantiles of ``values`` each carrying ``weights`` (midpoint rule)."""
    from harmonize_bids.image.reference import LEVELS

    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    cumulative = (np.cumsum(weights) - weights / 2) / weights.sum()
    return np.interp((np.arange(LEVELS) + 0.5) / LEVELS, cumulative, values)


def with_class_weights(quantiles: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
    """The reference's quantiles with its 3-class mixture's classes re-weighted to
    ``class_weights`` (each quantile weighted by its posteriors)."""
    from harmonize_bids.image import intensity

    ref = np.asarray(quantiles, np.float64)
    means, weights, variances = intensity._fit_mixture(ref)
    log_joint = intensity._log_density(ref, means, weights, variances)
    posterior = np.exp(log_joint - log_joint.max(axis=1, keepdims=True))
    posterior /= posterior.sum(axis=1, keepdims=True)
    return weighted_quantiles(ref, posterior @ (class_weights / weights))


def own_proportions(quantiles: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The reference's quantiles with its mixture classes re-weighted to ``image``'s."""
    from harmonize_bids.image.intensity import tissue_mixture

    return with_class_weights(quantiles, tissue_mixture(image, mask)[1])


def shifted_proportions(quantiles: np.ndarray, deviation: np.ndarray) -> np.ndarray:
    """The reference's quantiles with ``deviation`` added to its mixture's class weights
    (each kept at 0.01 or more, then normalised)."""
    from harmonize_bids.image import intensity

    _, weights, _ = intensity._fit_mixture(np.asarray(quantiles, np.float64))
    shifted = np.clip(weights + deviation, 0.01, None)
    return with_class_weights(quantiles, shifted / shifted.sum())


def variants(ours: np.ndarray, mask: np.ndarray, quantiles: np.ndarray) -> dict:
    from harmonize_bids.image.reference import match_to_reference

    return {
        MATCHED: match_to_reference(ours, mask, quantiles),
        OWN: match_to_reference(ours, mask, own_proportions(quantiles, ours, mask)),
    }


def measure(case, site: str, images: dict, results: dict) -> None:
    """Each of ``images`` measured against ``case``'s target, appended to ``results``."""
    for name, image in images.items():
        row = {**case.evaluate(np.asarray(image, np.float32)), "seconds": float("nan")}
        results[name].append({**row, "subject": case.subject, "site": site})
        print(case.subject, name, json.dumps(row, default=float), file=sys.stderr, flush=True)


def report(bids, direction_name, results: dict, sites: int, arms: tuple) -> None:
    """Each arm's tables beside Original, matching and ours, with issue 34's bars."""
    summary = Q.summarize(results)
    about = {"subjects": len(results[OURS]), "sites": sites, "phantom": Path(bids).name}
    for name in arms:
        shown = {k: summary[k] for k in (Q.ORIGINAL, Q.MATCHING, OURS, name)}
        checks = Q.acceptance_unseen(summary, name)
        print(Q.tables(f"{Path(bids).name}: {direction_name}, {name}", shown, about, checks))
        print(f"bars met: {sum(ok for _, _, ok in checks)} of {len(checks)}\n")


def main(bids, work, cache, direction_name, out_dir):
    arms = [OURS, MATCHED, OWN]
    results = {name: [] for name in [Q.ORIGINAL, Q.MATCHING, *arms]}
    site_of = Q.sites(Path(bids))
    measured = set()
    for case, ours, matched in Q.research_outputs(bids, work, cache, direction_name, out_dir, []):
        measured.add(site_of[case.subject])
        images = {Q.ORIGINAL: case.source, Q.MATCHING: matched, OURS: ours}
        images.update(variants(ours, case.mask, case.peers.reference.quantiles))
        measure(case, site_of[case.subject], images, results)
    Path(out_dir, "output-reference-matching.json").write_text(
        json.dumps(results, indent=1, default=float)
    )
    summary = Q.summarize(results)
    about = {"subjects": len(results[OURS]), "sites": len(measured), "phantom": Path(bids).name}
    for name in arms:
        shown = {k: summary[k] for k in (Q.ORIGINAL, Q.MATCHING, name)}
        checks = Q.acceptance_unseen(summary, name)
        met = sum(ok for _, _, ok in checks)
        print(Q.tables(f"{Path(bids).name}: {direction_name}, {name}", shown, about, checks))
        print(f"bars met: {met} of {len(checks)}\n")


def deviations(bids, work, cache, direction_name, out_dir):
    """The second rule's arms: the reference re-weighted by the subject's deviation from
    its site mates in source-field class weights, our output and the source matched to
    it; Original, matching and ours taken from :func:`main`'s record in ``out_dir``."""
    from harmonize_bids.image.intensity import tissue_mixture
    from harmonize_bids.image.reference import match_to_reference

    direction = Q.DIRECTIONS[direction_name]
    site_of = Q.sites(Path(bids))
    source_weights = {
        r["subject"]: tissue_mixture(Q.load(r["source"]), Q.load(r["mask"]) > 0)[1]
        for r in Q.pair_records(Path(work), direction)
    }
    earlier = json.loads(Path(out_dir, "output-reference-matching.json").read_text())
    results = {name: earlier[name] for name in (Q.ORIGINAL, Q.MATCHING, OURS)}
    for rows in results.values():
        for row in rows:
            row.setdefault("site", site_of[row["subject"]])
    results.update({SHIFTED: [], SHIFTED_SOURCE: []})
    for case, ours, _ in Q.research_outputs(bids, work, cache, direction_name, out_dir, []):
        site = site_of[case.subject]
        mates = Q.site_mates(case.subject, source_weights, site_of)
        deviation = source_weights[case.subject] - np.mean(
            [source_weights[s] for s in mates], axis=0
        )
        quantiles = shifted_proportions(case.peers.reference.quantiles, deviation)
        images = {
            SHIFTED: match_to_reference(ours, case.mask, quantiles),
            SHIFTED_SOURCE: match_to_reference(case.source, case.mask, quantiles),
        }
        measure(case, site, images, results)
    Path(out_dir, "source-deviations.json").write_text(
        json.dumps(results, indent=1, default=float)
    )
    report(bids, direction_name, results, len(set(site_of.values())), (SHIFTED, SHIFTED_SOURCE))


def class_fractions(labels: np.ndarray) -> np.ndarray:
    """CSF / GM / WM fractions of the brain in a 3-class segmentation."""
    counts = np.array([np.count_nonzero(labels == k) for k in (1, 2, 3)], np.float64)
    return counts / counts.sum()


def class_quantiles(image: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """Each class's intensity quantiles in ``image`` (CSF, GM, WM)."""
    from harmonize_bids.image.reference import brain_quantiles

    return [brain_quantiles(image, labels == k) for k in (1, 2, 3)]


def mixed_reference(per_class: list[np.ndarray], proportions: np.ndarray) -> np.ndarray:
    """Quantiles of the mixture of the classes' distributions (each given by quantiles)
    at ``proportions``."""
    from harmonize_bids.image.reference import LEVELS

    weights = np.repeat(np.asarray(proportions, np.float64) / LEVELS, LEVELS)
    return weighted_quantiles(np.concatenate(per_class), weights)


def segmented(bids, work, cache, direction_name, out_dir, measure="source"):
    """The third rule's arms (``measure`` "source") and the fourth's ("output"): the site
    mates' target-field scans segmented, their class distributions pooled (each scan equal
    weight) and mixed at the mates' mean tissue fractions shifted by the subject's
    deviation from its mates' mean in segmented fractions of their source-field scans or of
    their default outputs; our output and the source matched to that reference."""
    from harmonize_bids.image.reference import match_to_reference, pool_quantiles

    ours_arm, source_arm, record = ARMS[measure]
    direction = Q.DIRECTIONS[direction_name]
    site_of = Q.sites(Path(bids))
    labels_dir = Path(out_dir) / "labels"
    labels_dir.mkdir(parents=True, exist_ok=True)

    def labels(kind: str, subject: str, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        kept = labels_dir / f"{subject}_{kind}.npy"
        if not kept.is_file():
            np.save(kept, Q.metrics.segment_tissues(image, mask))
        return np.load(kept)

    def outputs():
        return Q.research_outputs(bids, work, cache, direction_name, out_dir, [])

    fractions, targets = {}, {}
    for r in Q.pair_records(Path(work), direction):
        sub, mask = r["subject"], Q.load(r["mask"]) > 0
        if measure == "source":
            fractions[sub] = class_fractions(labels("source", sub, Q.load(r["source"]), mask))
        target = Q.load(r["target"])
        target_labels = labels("target", sub, target, mask)
        targets[sub] = (class_fractions(target_labels), class_quantiles(target, target_labels))
    if measure == "output":
        for case, ours, _ in outputs():
            fractions[case.subject] = class_fractions(
                labels("output", case.subject, ours, case.mask)
            )
    arms = [OURS, ours_arm, source_arm]
    results = {name: [] for name in [Q.ORIGINAL, Q.MATCHING, *arms]}
    for case, ours, matched in outputs():
        site = site_of[case.subject]
        mates = Q.site_mates(case.subject, fractions, site_of)
        deviation = fractions[case.subject] - np.mean([fractions[s] for s in mates], axis=0)
        level = np.mean([targets[s][0] for s in mates], axis=0)
        proportions = np.clip(level + deviation, 0.01, None)
        per_class = [pool_quantiles([targets[s][1][k] for s in mates]) for k in range(3)]
        quantiles = mixed_reference(per_class, proportions / proportions.sum())
        images = {
            Q.ORIGINAL: case.source,
            Q.MATCHING: matched,
            OURS: ours,
            ours_arm: match_to_reference(ours, case.mask, quantiles),
            source_arm: match_to_reference(case.source, case.mask, quantiles),
        }
        measure(case, site, images, results)
    Path(out_dir, record).write_text(json.dumps(results, indent=1, default=float))
    report(bids, direction_name, results, len(set(site_of.values())), (ours_arm, source_arm))


def site_mapped(bids, work, cache, direction_name, out_dir, record="site-mapped.json"):
    """The fifth rule's arms: one monotone map per site, from the site mates' pooled
    default outputs (or sources) to their pooled target-field scans (quantile to quantile),
    applied to the subject's output (or source).

    Record ``site-mapped-matched.json`` (sixth rule) adds our output histogram-matched to
    the subject's site-mapped source. Record ``site-mapped-shared.json`` is a diagnosis,
    never a result: the map fitted on every subject of the site, the subject's own
    target-field scan included, so that all share one map; Original, matching and ours are
    read from the fifth or sixth rule's record in ``out_dir``."""
    from harmonize_bids.image.reference import (
        ScannerMap,
        TargetReference,
        brain_quantiles,
        pool_quantiles,
    )

    direction = Q.DIRECTIONS[direction_name]
    site_of = Q.sites(Path(bids))

    def outputs():
        return Q.research_outputs(bids, work, cache, direction_name, out_dir, [])

    targets, sources, produced = {}, {}, {}
    for r in Q.pair_records(Path(work), direction):
        mask = Q.load(r["mask"]) > 0
        targets[r["subject"]] = brain_quantiles(Q.load(r["target"]), mask)
        sources[r["subject"]] = brain_quantiles(Q.load(r["source"]), mask)
    for case, ours, _ in outputs():
        produced[case.subject] = brain_quantiles(ours, case.mask)

    def scanner_map(mates, fitted_on):
        def side(scans):
            return TargetReference(0.0, pool_quantiles([scans[s] for s in mates]))

        return ScannerMap(side(fitted_on), side(targets))

    shared = record == "site-mapped-shared.json"
    arms = RECORDS[record]
    results = {name: [] for name in [Q.ORIGINAL, Q.MATCHING, *arms]}
    if shared:
        earlier = [Path(out_dir, r) for r in ("site-mapped-matched.json", "site-mapped.json")]
        rows = json.loads(next(path for path in earlier if path.exists()).read_text())
        results.update({name: rows[name] for name in (Q.ORIGINAL, Q.MATCHING, OURS)})
    for case, ours, matched in outputs():
        site = site_of[case.subject]
        mates = Q.site_mates(case.subject, targets, site_of) + ([case.subject] if shared else [])
        images = {
            arms[1]: scanner_map(mates, produced).apply(ours, case.mask),
            arms[2]: scanner_map(mates, sources).apply(case.source, case.mask),
        }
        if MATCHED_SITE_SOURCE in arms:  # as the app's --scanner-map
            images[MATCHED_SITE_SOURCE] = scanner_map(mates, sources).match(
                ours, case.source, case.mask
            )
        if not shared:
            images.update({Q.ORIGINAL: case.source, Q.MATCHING: matched, OURS: ours})
        measure(case, site, images, results)
    Path(out_dir, record).write_text(json.dumps(results, indent=1, default=float))
    report(bids, direction_name, results, len(set(site_of.values())), tuple(arms[1:]))


RECORDS = {
    "output-reference-matching.json": [OURS, MATCHED, OWN],
    "source-deviations.json": [OURS, SHIFTED, SHIFTED_SOURCE],
    "segmented-deviations.json": [OURS, SEGMENTED, SEGMENTED_SOURCE],
    "output-deviations.json": [OURS, OUTPUT_DEVIATIONS, OUTPUT_DEVIATIONS_SOURCE],
    "site-mapped.json": [OURS, SITE_MAPPED, SITE_MAPPED_SOURCE],
    "site-mapped-shared.json": [OURS, SHARED_MAPPED, SHARED_MAPPED_SOURCE],
    "site-mapped-matched.json": [OURS, SITE_MAPPED, SITE_MAPPED_SOURCE, MATCHED_SITE_SOURCE],
}


def verdict(record, *runs):
    """A rule's four conditions over ``BIDS=OUT_DIR`` runs of :func:`main` (``record``
    output-reference-matching.json), :func:`deviations` (source-deviations.json),
    :func:`segmented` (segmented-deviations.json, output-deviations.json) or
    :func:`site_mapped` (site-mapped.json)."""
    arms = RECORDS[record]
    bars = {name: [] for name in arms}
    errors = {name: [] for name in arms}
    for run in runs:
        bids, out_dir = run.split("=", 1)
        results = json.loads(Path(out_dir, record).read_text())
        site_of = Q.sites(Path(bids))
        for rows in results.values():
            for row in rows:
                row.setdefault("site", site_of[row["subject"]])
        summary = Q.summarize(results)
        original = summary[Q.ORIGINAL]["site_deviation_error"]
        for name in arms:
            checks = dict((c, ok) for c, _, ok in Q.acceptance_unseen(summary, name))
            bars[name].append(
                (sum(checks.values()), checks["GM volume difference <= histogram matching's"])
            )
            deviation = summary[name]["site_deviation_error"]
            errors[name].append([deviation[t] / original[t] for t in Q.metrics.TISSUES])
        print(run, {name: bars[name][-1] for name in arms})
    for name in arms:
        met = [b for b, _ in bars[name]]
        base = [b for b, _ in bars[OURS]]
        mean_error = np.mean(errors[name], axis=0)
        print(
            f"{name}: bars {met} (sum {sum(met)}), GM bar met on {sum(g for _, g in bars[name])},"
            f" fewer than default on {sum(m < b for m, b in zip(met, base, strict=True))},"
            " within-site error CSF / GM / WM " + " / ".join(f"{e:.3f}" for e in mean_error)
        )


def in_distribution(bids, work, cache, direction_name, out_dir):
    """The seventh rule's in-distribution check: issue 5's bars (ratios to Original, below
    histogram matching and Nyul) for the default and the participant-level arm, read from
    ``site-mapped-matched.json`` in ``out_dir``; Nyul's rows are added to it once."""
    path = Path(out_dir, "site-mapped-matched.json")
    results = json.loads(path.read_text())
    if Q.NYUL not in results:
        site_of = Q.sites(Path(bids))
        _, found = Q.research_cases(bids, work, cache, direction_name, [])
        results[Q.NYUL] = []
        for case in found:
            nyul = case.peers.nyul(case.source, case.mask)
            measure(case, site_of[case.subject], {Q.NYUL: nyul}, results)
        path.write_text(json.dumps(results, indent=1, default=float))
    summary = Q.summarize(results)
    for name in (OURS, MATCHED_SITE_SOURCE):
        checks = Q.acceptance_in_distribution(summary, name)
        print(
            f"{Path(bids).name}: {direction_name}, {name}: bars met "
            f"{sum(ok for _, _, ok in checks)} of {len(checks)}"
        )
        for check, measured, ok in checks:
            print(f"  {check}: {measured} ({'met' if ok else 'not met'})")


def seeds(seed0_dir, seed1_dir):
    """The eighth rule's three conditions: the default and the arm of site-mapped-matched.json
    in each folder (the default output with seeds 0 and 1), each the mean of the two."""
    first, second = (
        Q.summarize(json.loads(Path(d, "site-mapped-matched.json").read_text()))
        for d in (seed0_dir, seed1_dir)
    )
    summary = {name: Q.mean_summary(first[name], second[name]) for name in first}
    checks = {
        name: {c: ok for c, _, ok in Q.acceptance_unseen(summary, name)}
        for name in (OURS, MATCHED_SITE_SOURCE)
    }
    bars = {name: sum(found.values()) for name, found in checks.items()}
    gm = checks[MATCHED_SITE_SOURCE]["GM volume difference <= histogram matching's"]
    print(f"bars: default {bars[OURS]}, arm {bars[MATCHED_SITE_SOURCE]}; arm meets GM bar: {gm}")
    original = summary[Q.ORIGINAL]["site_deviation_error"]
    within = []
    for t in Q.metrics.TISSUES:
        d0, d1, arm = (
            s[n]["site_deviation_error"][t] / original[t]
            for s, n in ((first, OURS), (second, OURS), (summary, MATCHED_SITE_SOURCE))
        )
        ok = Q.within_seed_spread(arm, d0, d1)
        within.append(ok)
        print(
            f"within-site {t}: default {d0:.3f} / {d1:.3f} (mean {(d0 + d1) / 2:.3f}),"
            f" arm {arm:.3f}: {'holds' if ok else 'fails'}"
        )
    conditions = [bars[MATCHED_SITE_SOURCE] > bars[OURS], gm, all(within)]
    print(f"conditions {conditions}: {'passes' if all(conditions) else 'fails'}")


if __name__ == "__main__":
    if sys.argv[1] == "verdict":
        verdict(*sys.argv[2:])
    elif sys.argv[1] == "in-distribution":
        in_distribution(*sys.argv[2:])
    elif sys.argv[1] == "seeds":
        seeds(*sys.argv[2:])
    elif sys.argv[1] == "deviations":
        deviations(*sys.argv[2:])
    elif sys.argv[1] == "segmentation":
        segmented(*sys.argv[2:])
    elif sys.argv[1] == "output-deviations":
        segmented(*sys.argv[2:], measure="output")
    elif sys.argv[1] == "site-map":
        site_mapped(*sys.argv[2:])
    elif sys.argv[1] == "site-map-shared":
        site_mapped(*sys.argv[2:], record="site-mapped-shared.json")
    elif sys.argv[1] == "site-map-matched":
        site_mapped(*sys.argv[2:], record="site-mapped-matched.json")
    else:
        main(*sys.argv[1:])
