"""harmonize-bids-phantom: write a synthetic paired 1.5 T / 3 T MPRAGE BIDS dataset."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

LOGGER = logging.getLogger('harmonize_bids.phantom')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='harmonize-bids-phantom',
        description='Generate a synthetic BIDS dataset of paired 1.5 T / 3 T T1w MPRAGE '
        'scans with ground-truth tissue labels in derivatives/phantom.',
    )
    parser.add_argument('out_dir', type=Path, help='output BIDS dataset directory')
    parser.add_argument(
        '--subjects', type=int, default=2, metavar='N', help='number of participants (default: 2)'
    )
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        metavar='S',
        help='random seed; subject i uses SeedSequence([S, i]) (default: 0)',
    )
    parser.add_argument(
        '--size',
        choices=('tiny', 'full'),
        default='full',
        help='full: the scanner grid (~1 mm); tiny: ~4 mm, for tests',
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        '--lesions', action='store_true', help='give every participant MS-like lesions (group MS)'
    )
    group.add_argument(
        '--lesion-fraction',
        type=float,
        default=0.0,
        metavar='F',
        help='fraction of participants with lesions, spread evenly (default 0)',
    )
    parser.add_argument(
        '--scanners',
        choices=('paper', 'core', 'unseen'),
        default='paper',
        help="paper: the paper's Siemens 1.5 T / 3 T pair; core: random sites "
        '(Siemens MPRAGE, Philips TFE) from the ranges bundled models '
        'train on; unseen: held-out sites (GE IR-FSPGR, protocols and tissue '
        'values outside the core ranges, stronger atrophy) (default: paper)',
    )
    parser.add_argument(
        '--subjects-per-site',
        type=int,
        default=1,
        metavar='K',
        help='consecutive participants sharing one site (default: 1)',
    )
    parser.add_argument(
        '--same-pose',
        action='store_true',
        help='keep each head where it was in both sessions (pairs align by '
        'scanner coordinates, no registration needed)',
    )
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format='%(asctime)s %(name)s %(levelname)s: %(message)s',
    )
    fraction = 1.0 if args.lesions else args.lesion_fraction
    if args.subjects < 1 or args.subjects_per_site < 1 or not 0.0 <= fraction <= 1.0:
        LOGGER.error(
            '--subjects and --subjects-per-site must be >= 1 and --lesion-fraction '
            'in [0, 1] (got %s, %s and %s).',
            args.subjects,
            args.subjects_per_site,
            fraction,
        )
        return 1
    from tqdm import tqdm

    from ..phantom import write_phantom_dataset

    bar = tqdm(
        range(args.subjects),
        desc='phantom subjects',
        unit='subject',
        disable=not sys.stderr.isatty(),
    )
    try:
        root = write_phantom_dataset(
            args.out_dir,
            n_subjects=args.subjects,
            seed=args.seed,
            size=args.size,
            lesion_fraction=fraction,
            scanners=args.scanners,
            subjects_per_site=args.subjects_per_site,
            same_pose=args.same_pose,
            progress=bar,
        )
    except OSError as err:
        LOGGER.error('Could not write the phantom to %s: %s', args.out_dir, err)
        return 1
    LOGGER.info('Phantom dataset written to %s', root)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
