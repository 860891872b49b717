"""Tissue contrast of the phantom per field strength (cf. the paper's Appendix E histograms).

Generates (or reads) a phantom, scales each raw T1w image to [0, 1] by its 0.1 / 99.9 brain
percentiles (as the preprocessing does, here without bias correction) and prints mean (sd)
of CSF, GM and WM from the ground-truth labels, and the GM/WM separation.

    python benchmarks/phantom_contrast.py [--dataset DIR | --subjects N --size full]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from harmonize_bids.phantom import write_phantom_dataset
from harmonize_bids.phantom.contrast import gm_wm_separation, tissue_stats

SESSIONS = (('1p5T', 1.5), ('3T', 3.0))


def run(root: Path) -> None:
    subs = sorted(p.name[4:] for p in root.glob('sub-*') if p.is_dir())
    print(f'{"field":>6} {"sub":>4} {"CSF":>13} {"GM":>13} {"WM":>13} {"WM-GM":>7} {"dprime":>7}')
    summary = {b0: [] for _, b0 in SESSIONS}
    for sub in subs:
        for ses, b0 in SESSIONS:
            st = tissue_stats(root, sub, ses)
            diff, dprime = gm_wm_separation(st)
            summary[b0].append((diff, dprime))
            cells = ' '.join(f'{st[t][0]:.3f} ({st[t][1]:.3f})' for t in ('CSF', 'GM', 'WM'))
            print(f'{b0:>5}T {sub:>4} {cells} {diff:7.3f} {dprime:7.2f}')
    for b0, vals in summary.items():
        v = np.array(vals)
        print(f'{b0:>5}T mean WM-GM {v[:, 0].mean():.3f}, mean dprime {v[:, 1].mean():.2f}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset', type=Path, help='existing phantom (else generate one)')
    parser.add_argument('--subjects', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', choices=('tiny', 'full'), default='full')
    args = parser.parse_args()
    if args.dataset:
        run(args.dataset)
        return
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = write_phantom_dataset(Path(tmp) / 'ph', n_subjects=args.subjects,
                                     seed=args.seed, size=args.size, lesion_fraction=0.5)
        print(f'generated {args.subjects} {args.size} subjects in '
              f'{time.perf_counter() - t0:.1f} s')
        run(root)


if __name__ == '__main__':
    main()
