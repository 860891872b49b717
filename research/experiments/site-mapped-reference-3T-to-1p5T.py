"""The second rule of site-mapped-reference-3T-to-1p5T.md, read from two
``benchmarks/quality.py --json`` records of one set and direction: control, arm.

    python research/experiments/site-mapped-reference-3T-to-1p5T.py CONTROL.json ARM.json
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

WITHIN_SITE_GAIN = 0.05  # x Original's: the largest two-seed spread on 12 subjects
VOLUME_MARGIN = 0.02  # x Original: what the training seed alone moved a design GM figure by

# The first rule's reader: its summary of a record is this rule's too.
_spec = importlib.util.spec_from_file_location(
    "first_rule", Path(__file__).with_name("source-curve-augmentation.py")
)
first_rule = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(first_rule)
summary, TISSUES = first_rule.summary, first_rule.TISSUES


def main(control_path: str, arm_path: str) -> bool:
    control, arm = summary(control_path), summary(arm_path)
    for name, entry in (("control", control), ("arm", arm)):
        first_rule.describe(name, entry)
    lost = sorted(control["bars"] - arm["bars"])
    conditions = {
        "1. no bar lost": not lost,
        f"2. within-site lower by >= {WITHIN_SITE_GAIN} in every class": all(
            arm["within_site"][t] <= control["within_site"][t] - WITHIN_SITE_GAIN for t in TISSUES
        ),
        f"3. no volume difference higher by > {VOLUME_MARGIN}": all(
            arm["volume"][t] <= control["volume"][t] + VOLUME_MARGIN for t in TISSUES
        ),
        "4. MSE no higher": arm["mse"] <= control["mse"],
    }
    print(f"lost: {lost}")
    print(f"gained: {sorted(arm['bars'] - control['bars'])}")
    return first_rule.verdict(conditions)


if __name__ == "__main__":
    main(*sys.argv[1:])
