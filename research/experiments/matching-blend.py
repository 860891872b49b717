"""Averaging our output with histogram matching to the same reference.

On unseen scanners the 3 T -> 1.5 T model loses to histogram matching on grey- and
white-matter volume while beating it on MSE, and the 1.5 T -> 3 T model does the opposite
against a histogram matching that is worse than doing nothing. Their errors differ, so a
weighted mean ``(1 - w) * ours + w * matched`` may keep the better of each. Measured for
each weight in WEIGHTS on our default output (sagittal), kept in OUT_DIR/axis0 as
multi-planar.py keeps it (harmonized and saved there when missing), with
benchmarks/quality.py's metrics.

    python research/experiments/matching-blend.py BIDS WORK CACHE DIRECTION OUT_DIR SUBJECT...
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import quality as Q  # noqa: E402

WEIGHTS = (0.25, 0.5)


def main(bids, work, cache, direction_name, out_dir, *subjects):
    rows = []
    for case, ours, matched in Q.research_outputs(
        bids, work, cache, direction_name, out_dir, subjects
    ):
        images = {Q.ORIGINAL: case.source, Q.MATCHING: matched, "Ours": ours}
        for w in WEIGHTS:
            images[f"Ours and matching, w {w}"] = (1 - w) * ours + w * matched
        for name, image in images.items():
            row = case.evaluate(np.asarray(image, np.float32))
            rows.append({**row, "subject": case.subject, "method": name})
            print(case.subject, name, json.dumps(row, default=float), flush=True)
    (Path(out_dir) / "blend.json").write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main(*sys.argv[1:])
