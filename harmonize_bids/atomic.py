"""Atomic writes: a reader sees the old file or the new one, never a partial one.

Everything harmonize_bids writes outside the nipype work directory goes through here:
several participant jobs of an HPC array may write into one OUTPUT_DIR at once, and a job
killed mid-write must not leave a truncated file behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

# The mode a plain open() gives a new file (mkstemp's temporary files are 0600 otherwise).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


@contextmanager
def staged_file(target: str | os.PathLike[str]):
    """Yield a temporary path beside ``target``; on success it replaces ``target`` in
    one rename, on failure it is removed. The suffix is kept (``.png``, ``.nii.gz``) so
    writers that choose a format by extension still do."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.fchmod(handle, _FILE_MODE)
    os.close(handle)
    try:
        yield Path(partial)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``target`` with ``data`` in one rename."""
    with staged_file(target) as partial:
        partial.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Replace ``target`` with ``text`` in one rename."""
    return write_bytes(target, text.encode())


def write_with(target: str | os.PathLike[str], writer: Callable[[Path], object]) -> Path:
    """Replace ``target`` with what ``writer(path)`` writes to a temporary path."""
    with staged_file(target) as partial:
        writer(partial)
    return Path(target)


def create_once(target: str | os.PathLike[str], text: str) -> bool:
    """Create ``target`` with ``text`` unless it exists (a hard link never overwrites);
    returns whether this call created it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.fchmod(handle, _FILE_MODE)
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    try:
        os.link(partial, target)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(partial)


def move_into_place(staged: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Rename a finished file ``staged`` onto ``target`` (same file system) in one step."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    return target


def replace_folder(staged: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Move a finished folder ``staged`` onto ``target``, replacing any old one (the old
    folder is moved aside first, then deleted)."""
    staged, target = Path(staged), Path(target)
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(staged, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target
