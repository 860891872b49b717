"""The rule of source-curve-augmentation.md (also reference-following-1p5T-to-3T.md's), read
from two ``benchmarks/quality.py --json`` records of one set and direction: control, arm.

    python research/experiments/source-curve-augmentation.py CONTROL.json ARM.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TISSUES = ("CSF", "GM", "WM")
VOLUME_MARGIN = 0.02  # x Original: what the training seed alone moved a design GM figure by
WITHIN_SITE_MARGIN = 0.05  # x Original's: above the largest two-seed spread on 12 subjects


def summary(path: str) -> dict:
    """The default method's measures, relative to Original, and its bars met."""
    (record,) = json.loads(Path(path).read_text()).values()
    methods = record["methods"]
    ours, original = methods[record["default"]], methods["Original"]
    return {
        "bars": {row["check"] for row in record["acceptance"] if row["met"]},
        "mse": ours["mse"] / original["mse"],
        "volume": {t: ours["volume_diff"][t] / original["volume_diff"][t] for t in TISSUES},
        "within_site": {
            t: ours["site_deviation_error"][t] / original["site_deviation_error"][t]
            for t in TISSUES
        },
    }


def describe(name: str, entry: dict) -> None:
    """One line of a summary: bars, MSE, volume differences, within-site error."""
    print(
        f"{name}: bars {len(entry['bars'])}; MSE {entry['mse']:.3f}; volume difference "
        + " / ".join(f"{entry['volume'][t]:.3f}" for t in TISSUES)
        + "; within-site "
        + " / ".join(f"{entry['within_site'][t]:.3f}" for t in TISSUES)
    )


def verdict(conditions: dict[str, bool]) -> bool:
    """Print each condition and whether all of them hold."""
    for name, held in conditions.items():
        print(f"{name}: {held}")
    passed = all(conditions.values())
    print("passes" if passed else "fails")
    return passed


def main(control_path: str, arm_path: str) -> bool:
    control, arm = summary(control_path), summary(arm_path)
    fewer = len(arm["bars"]) < len(control["bars"])
    volumes = all(arm["volume"][t] <= control["volume"][t] - VOLUME_MARGIN for t in ("GM", "WM"))
    within = all(
        arm["within_site"][t] <= control["within_site"][t] + WITHIN_SITE_MARGIN for t in TISSUES
    )
    for name, entry in (("control", control), ("arm", arm)):
        print(
            f"{name}: bars {len(entry['bars'])}; volume difference CSF / GM / WM "
            + " / ".join(f"{entry['volume'][t]:.3f}" for t in TISSUES)
            + "; within-site "
            + " / ".join(f"{entry['within_site'][t]:.3f}" for t in TISSUES)
        )
    print(f"lost: {sorted(control['bars'] - arm['bars'])}")
    print(f"gained: {sorted(arm['bars'] - control['bars'])}")
    print(f"1. at least as many bars: {not fewer}")
    print(f"2. GM and WM volume lower by >= {VOLUME_MARGIN}: {volumes}")
    print(f"3. within-site at most {WITHIN_SITE_MARGIN} higher in every class: {within}")
    passed = not fewer and volumes and within
    print("passes" if passed else "fails")
    return passed


if __name__ == "__main__":
    main(*sys.argv[1:])
