"""Tissue contrast of the phantom per field strength (cf. the paper's Appendix E histograms).

Generates (or reads) a phantom, scales each raw T1w image to [0, 1] by its 0.1 / 99.9 brain
percentiles after N4 (the app's own preprocessing functions; ground-truth brain mask
instead of skull stripping) and prints mean (sd)
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


def run(root: Path, n4: bool) -> None:
    subs = sorted(p.name[4:] for p in root.glob('sub-*') if p.is_dir())
    print(f'{"field":>6} {"sub":>4} {"CSF":>13} {"GM":>13} {"WM":>13} {"WM-GM":>7} {"dprime":>7}')
    summary = {b0: [] for _, b0 in SESSIONS}
    for sub in subs:
        for ses, b0 in SESSIONS:
            st = tissue_stats(root, sub, ses, n4=n4)
            diff, dprime = gm_wm_separation(st)
            summary[b0].append((diff, dprime))
            cells = ' '.join(f'{st[t][0]:.3f} ({st[t][1]:.3f})' for t in ('CSF', 'GM', 'WM'))
            print(f'{b0:>5}T {sub:>4} {cells} {diff:7.3f} {dprime:7.2f}')
    for b0, vals in summary.items():
        v = np.array(vals)
        print(f'{b0:>5}T mean WM-GM {v[:, 0].mean():.3f}, mean dprime {v[:, 1].mean():.2f}')


def figure(root: Path, out: Path, sub: str = '01') -> None:
    """Sagittal and coronal slices, 1.5 T beside 3 T (display in RAS, robust windowing)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import nibabel as nib

    fig, axes = plt.subplots(2, 2, figsize=(8, 8.6), facecolor='black')
    for col, (ses, b0) in enumerate(SESSIONS):
        img = nib.as_closest_canonical(
            nib.load(root / f'sub-{sub}/ses-{ses}/anat/sub-{sub}_ses-{ses}_T1w.nii.gz')
        )
        data = np.asarray(img.dataobj, dtype=np.float32)
        zooms = img.header.get_zooms()
        vmax = np.percentile(data[data > 0], 99.5)
        i, j = data.shape[0] // 2 + 8, data.shape[1] // 2 + 6
        views = (
            (data[i].T, zooms[2] / zooms[1], 'sagittal'),
            (data[:, j].T, zooms[2] / zooms[0], 'coronal'),
        )
        for row, (sl, aspect, name) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(
                sl,
                origin='lower',
                cmap='gray',
                vmin=0,
                vmax=vmax,
                aspect=aspect,
                interpolation='nearest',
            )
            ax.set_title(f'{b0} T, {name}', color='white')
            ax.axis('off')
    fig.suptitle(
        f'Phantom sub-{sub}: 1.5 T Avanto vs 3 T Skyra MPRAGE (raw, int16)', color='white'
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110, facecolor='black')
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset', type=Path, help='existing phantom (else generate one)')
    parser.add_argument('--subjects', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', choices=('tiny', 'full'), default='full')
    parser.add_argument('--no-n4', action='store_true', help='skip N4 bias correction')
    parser.add_argument('--figure', type=Path, help='also write a 1.5 T / 3 T slice figure')
    args = parser.parse_args()
    if args.dataset:
        run(args.dataset, not args.no_n4)
        if args.figure:
            figure(args.dataset, args.figure)
        return
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = write_phantom_dataset(
            Path(tmp) / 'ph',
            n_subjects=args.subjects,
            seed=args.seed,
            size=args.size,
            lesion_fraction=0.5,
        )
        print(
            f'generated {args.subjects} {args.size} subjects in {time.perf_counter() - t0:.1f} s'
        )
        run(root, not args.no_n4)
        if args.figure:
            figure(root, args.figure)


if __name__ == '__main__':
    main()
