"""Paired training data from travelling subjects.

Each pair is preprocessed exactly as the participant level preprocesses (image/), and
the target-field image is registered to the source-field image with antspyx (affine
then SyN, mutual information), as the paper. Finished pairs are cached in the work
directory, so an interrupted preparation resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from .bids import TravellingPair

LOGGER = logging.getLogger(__name__)
_DONE = "pair.json"


@dataclass(frozen=True)
class PreparedPair:
    """Preprocessed source, registered target and the source brain mask, one grid."""

    subject: str
    source: Path
    target: Path
    mask: Path

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float32 source and target in [0, 1] (zero outside the brain), bool mask."""
        mask = np.asanyarray(nib.load(self.mask).dataobj) > 0
        source = np.asanyarray(nib.load(self.source).dataobj).astype(np.float32)
        target = np.asanyarray(nib.load(self.target).dataobj).astype(np.float32)
        target = np.clip(target, 0.0, 1.0)
        source[~mask] = 0.0
        target[~mask] = 0.0
        return source, target, mask


def prepare_pair(pair: TravellingPair, work_dir: Path, *, skull_strip: str = "deepbet",
                 sloppy: bool = False) -> PreparedPair:
    """Preprocess both images of one subject and register the target to the source."""
    from .image import preprocess_t1w, register_pair

    subject_dir = work_dir / f"sub-{pair.subject}"
    done = subject_dir / _DONE
    if done.is_file():
        recorded = json.loads(done.read_text())
        if recorded["inputs"] == [str(pair.source.path), str(pair.target.path)]:
            LOGGER.info("sub-%s: reusing prepared pair in %s", pair.subject, subject_dir)
            return PreparedPair(pair.subject, *(Path(recorded[key])
                                                for key in ("source", "target", "mask")))
    shutil.rmtree(subject_dir, ignore_errors=True)
    source = preprocess_t1w(pair.source.path, subject_dir / "source", skull_strip=skull_strip,
                            sloppy=sloppy)
    target = preprocess_t1w(pair.target.path, subject_dir / "target", skull_strip=skull_strip,
                            sloppy=sloppy)
    registered = register_pair(source["preproc"], target["preproc"],
                               subject_dir / "target_in_source.nii.gz",
                               fixed_mask=source["mask"], sloppy=sloppy)
    prepared = PreparedPair(pair.subject, source["preproc"], registered, source["mask"])
    record = {"inputs": [str(pair.source.path), str(pair.target.path)],
              "source": str(prepared.source), "target": str(prepared.target),
              "mask": str(prepared.mask)}
    partial = done.with_suffix(".tmp")
    partial.write_text(json.dumps(record, indent=2))
    partial.replace(done)
    return prepared


def prepare_pairs(pairs: list[TravellingPair], work_dir: Path, *, skull_strip: str = "deepbet",
                  sloppy: bool = False, progress: bool = True) -> list[PreparedPair]:
    """Prepare every pair, with a progress bar; cached pairs are reused."""
    from tqdm import tqdm

    work_dir.mkdir(parents=True, exist_ok=True)
    return [prepare_pair(pair, work_dir, skull_strip=skull_strip, sloppy=sloppy)
            for pair in tqdm(pairs, desc="preparing pairs", unit="subject",
                             disable=not progress)]


def wait_for_pairs(pairs: list[TravellingPair], work_dir: Path, *, skull_strip: str = "deepbet",
                   sloppy: bool = False, timeout_s: float = 24 * 3600,
                   poll_s: float = 5.0) -> list[PreparedPair]:
    """Non-zero ranks under torchrun: wait for rank 0 to prepare every pair."""
    import time

    deadline = time.monotonic() + timeout_s
    while not all((work_dir / f"sub-{pair.subject}" / _DONE).is_file() for pair in pairs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"prepared pairs did not appear in {work_dir}")
        time.sleep(poll_s)
    return [prepare_pair(pair, work_dir, skull_strip=skull_strip, sloppy=sloppy)
            for pair in pairs]
