"""The rule of site-mapped-training-3T-to-1p5T.md, read from three ``benchmarks/quality.py
--json`` records of one set and direction: 1.2.0's default, the control and the arm (both
given the site-mapped reference).

    python research/experiments/site-mapped-training-3T-to-1p5T.py \
        DEFAULT.json CONTROL.json ARM.json
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

GM_BAR = "GM volume difference <= histogram matching's"

# The first rule's reader: its summary of a record is this rule's too.
_spec = importlib.util.spec_from_file_location(
    "first_rule", Path(__file__).with_name("source-curve-augmentation.py")
)
first_rule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(first_rule)
summary, TISSUES = first_rule.summary, first_rule.TISSUES


def main(default_path: str, control_path: str, arm_path: str) -> bool:
    default, control, arm = summary(default_path), summary(control_path), summary(arm_path)
    for name, entry in (("1.2.0 default", default), ("control", control), ("arm", arm)):
        first_rule.describe(name, entry)
    lost = sorted(default["bars"] - arm["bars"])
    conditions = {
        "1. no bar of the default lost": not lost,
        "2. the GM volume bar met": GM_BAR in arm["bars"],
        "3. within-site no higher than the default's in any class": all(
            arm["within_site"][t] <= default["within_site"][t] for t in TISSUES
        ),
        "4. at least as many bars as the control": len(arm["bars"]) >= len(control["bars"]),
    }
    print(f"lost against the default: {lost}")
    print(f"gained against the default: {sorted(arm['bars'] - default['bars'])}")
    return first_rule.verdict(conditions)


if __name__ == "__main__":
    main(*sys.argv[1:])
