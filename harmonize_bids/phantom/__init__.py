"""Synthetic paired 1.5 T / 3 T MPRAGE phantom datasets (BIDS raw + ground-truth derivative).

A physics stand-in for the paper's private travelling-subject data: the ICBM152 2009a
template deformed per subject, with atrophy, optional MS lesions, skull and scalp, imaged
with the MPRAGE signal equation and each scanner's protocol (Durrer et al. 2023, Table 4).
"""

from .dataset import truth_file, write_phantom_dataset
from .protocols import PROTOCOLS, Protocol

__all__ = ['PROTOCOLS', 'Protocol', 'truth_file', 'write_phantom_dataset']
