"""k-fold cross-validation over a study's travelling subjects, before it trusts a model.

Each fold trains a model (the same schedule and starting point as the final one) on the
other folds' pairs and harmonizes its own pairs with the app's defaults. Every left-out
pair is then measured against its real target scan: Original (the source as it is),
histogram matching of the source to the other subjects' target-field scans (the simple
baseline a user would pick), the paired quantile map (the source put through a monotone
map fitted on the fold's training pairs, source to target: the baseline a user with pairs
could pick, no model), and the model (with an output calibration, also the model's output
without it). The rows go to
``MODEL_DIR/cross_validation.tsv`` and a summary page ``cross_validation.html``; the
summary, with the verdict, into model.json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

LOGGER = logging.getLogger(__name__)
PAIRED = "Paired quantile map"
METHODS = ("Original", "Histogram matching", PAIRED, "Model")
#: The fold model's output before its output calibration (--calibrate-output runs only).
UNCALIBRATED = "Model without output calibration"
TABLE = "cross_validation.tsv"
REPORT = "cross_validation.html"
#: What the verdict compares, lower is better for each.
VERDICT_METRICS = (
    "mse",
    "csf_volume_difference_mm3",
    "gm_volume_difference_mm3",
    "wm_volume_difference_mm3",
)


def folds(n: int, k: int) -> list[list[int]]:
    """``min(k, n)`` folds of the indices 0..n-1, dealt round-robin."""
    k = min(k, n)
    return [list(range(start, n, k)) for start in range(k)]


def cross_validate(request, data, init) -> dict | None:
    """Run the folds; returns the summary (None with fewer than two pairs)."""
    from .image.reference import match_to_reference
    from .inference import InferenceSettings, harmonize
    from .model.folder import load_model_folder
    from .model.quantile_map import fit_quantile_map
    from .training import train_model

    n = len(data.prepared)
    if n < 2:
        LOGGER.warning("Cross-validation needs at least 2 travelling subjects; skipped.")
        return None
    splits = folds(n, request.cv_folds)
    root = request.work_dir / f"cv-{request.direction.slug}"
    rows = []
    for number, held in enumerate(splits, start=1):
        kept = [i for i in range(n) if i not in held]
        model_dir = root / f"fold-{number}" / "model"
        LOGGER.info(
            "Cross-validation fold %d of %d: training on %d pair(s), testing on %s",
            number,
            len(splits),
            len(kept),
            ", ".join(f"sub-{data.pairs[i].subject}" for i in held),
        )
        train_model(
            request,
            data,
            init,
            model_dir,
            subset=kept,
            work_dir=root / f"fold-{number}" / "checkpoints",
            progress=False,
        )
        model = load_model_folder(model_dir)
        calibration, model.calibration = model.calibration, None
        paired = fit_quantile_map(
            [data.volumes[i] for i in kept], [f"sub-{data.pairs[i].subject}" for i in kept]
        )
        settings = InferenceSettings.resolve(model, device=request.device)
        for i in held:
            source, target, mask = data.volumes[i]
            reference = data.references[i]
            plain = harmonize(model, source, mask, settings, reference=reference).image
            outputs = {
                "Histogram matching": match_to_reference(source, mask, reference.quantiles),
                PAIRED: paired.apply(source, mask),
                "Model": plain if calibration is None else calibration.apply(plain, source, mask),
            }
            if calibration is not None:
                outputs[UNCALIBRATED] = plain
            for method, row in evaluate(source, outputs, target, mask).items():
                rows.append(
                    {
                        "participant_id": data.pairs[i].subject,
                        "fold": number,
                        "method": method,
                        **row,
                    }
                )
    summary = summarize(rows)
    write_rows(request.work_dir / f"{TABLE}", rows)
    LOGGER.info("Cross-validation: %s", summary["verdict"])
    return {**summary, "folds": len(splits), "rows": rows}


def evaluate(
    source: np.ndarray, outputs: dict[str, np.ndarray], target: np.ndarray, mask: np.ndarray
) -> dict[str, dict[str, float]]:
    """Paired metrics of the source (Original) and of each output against the target."""
    from .qc.paired import paired_metrics

    rows = {}
    for method, image in outputs.items():
        measured = paired_metrics(source, image, target, mask)
        rows.setdefault("Original", measured["Original"])
        rows[method] = measured["Harmonized"]
    return rows


def summarize(rows: list[dict]) -> dict:
    """Per-method means, whether the model beats histogram matching on each of MSE and
    the three volume differences, and (when measured) the paired quantile map too."""
    metrics = [key for key in rows[0] if key not in ("participant_id", "fold", "method")]
    means = {
        method: {
            key: float(np.mean([r[key] for r in rows if r["method"] == method])) for key in metrics
        }
        for method in (*METHODS, UNCALIBRATED)
        if any(r["method"] == method for r in rows)
    }
    beats = _beats(means, "Histogram matching")
    if all(beats.values()):
        verdict = "the model beats histogram matching on MSE and every tissue volume"
    else:
        verdict = (
            f"the model does NOT beat histogram matching on {_lost(beats)}: consider "
            "histogram matching to your target-field scans, or more travelling subjects"
        )
    summary = {"means": means, "model_beats_histogram_matching": beats}
    if PAIRED in means:
        summary["model_beats_paired_quantile_map"] = paired = _beats(means, PAIRED)
        if not all(paired.values()):
            verdict += (
                f"; the paired quantile map of the sources (no model) does better on "
                f"{_lost(paired)}"
            )
    return {**summary, "verdict": verdict}


def _beats(means: dict, baseline: str) -> dict[str, bool]:
    return {key: means["Model"][key] <= means[baseline][key] for key in VERDICT_METRICS}


def _lost(beats: dict[str, bool]) -> str:
    return ", ".join(key for key, ok in beats.items() if not ok)


def write_rows(path: Path, rows: list[dict]) -> Path:
    from .atomic import write_text

    columns = list(rows[0])
    lines = ["\t".join(columns)]
    lines += ["\t".join(_cell(row[c]) for c in columns) for row in rows]
    return write_text(path, "\n".join(lines) + "\n")


def write_report(model_dir: Path, cv: dict) -> None:
    """cross_validation.tsv and .html into the finished model folder."""
    import jinja2

    from .atomic import write_text

    write_rows(model_dir / TABLE, cv["rows"])
    template = jinja2.Environment(autoescape=True).from_string(_TEMPLATE)
    metrics = list(next(iter(cv["means"].values())))
    write_text(
        model_dir / REPORT,
        template.render(
            cv=cv,
            metrics=metrics,
            methods=list(cv["means"]),
            fmt=_cell,
            rows_json=json.dumps(cv["rows"]),
        ),
    )


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if np.isfinite(value) else "n/a"
    return str(value)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Cross-validation</title>
<style>body{font-family:sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}.bad{color:#b00;font-weight:bold}</style>
</head><body>
<h1>Cross-validation on the study's travelling subjects</h1>
<p>{{ cv.folds }}-fold: each fold's pairs were harmonized by a model trained without them and
compared with their real target scans. Histogram matching maps each source onto the other
subjects' target-field scans; the paired quantile map puts it through a monotone map
fitted on the fold's training pairs (neither uses a model). Lower is better except
Dice.</p>
<p class="{{ '' if cv.model_beats_histogram_matching.values()|min else 'bad' }}">Verdict:
{{ cv.verdict }}.</p>
<table><tr><th>method</th>{% for m in metrics %}<th>{{ m }}</th>{% endfor %}</tr>
{% for method in methods %}<tr><td>{{ method }}</td>
{% for m in metrics %}<td>{{ fmt(cv.means[method][m]) }}</td>{% endfor %}</tr>{% endfor %}
</table>
<h2>Per pair</h2>
<table><tr><th>subject</th><th>fold</th><th>method</th>{% for m in metrics %}<th>{{ m }}</th>
{% endfor %}</tr>{% for r in cv.rows %}<tr><td>sub-{{ r.participant_id }}</td>
<td>{{ r.fold }}</td><td>{{ r.method }}</td>{% for m in metrics %}<td>{{ fmt(r[m]) }}</td>
{% endfor %}</tr>{% endfor %}</table>
</body></html>
"""
