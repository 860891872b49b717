"""BIDS derivatives output: niworkflows' DerivativesDataSink, written atomically."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from niworkflows.interfaces.bids import DerivativesDataSink as _NiworkflowsSink

from ..atomic import move_into_place
from ..derivatives import PATTERNS

STAGING = ".staging"
#: Tries at making a private staging folder while other jobs may remove the shared one.
STAGING_TRIES = 20


class DerivativesDataSink(_NiworkflowsSink):
    """Write into OUTPUT_DIR itself (no subfolder), named by the derivatives spec, and
    never leave a truncated file.

    The parent sink writes into a private staging folder inside OUTPUT_DIR (same file
    system), then every file is renamed into place: a reader, a crash or a concurrent
    job sees either the old file or the complete new one.
    """

    out_path_base = ""
    _file_patterns = (PATTERNS["derivative"],)

    def _run_interface(self, runtime):
        base = Path(self.inputs.base_directory).absolute()
        staging = _private_staging(base / STAGING)
        final_base = self.inputs.base_directory
        self.inputs.base_directory = str(staging)
        try:
            runtime = super()._run_interface(runtime)
            self._results["out_file"] = _publish(self._results.get("out_file"), staging, base)
            if "out_meta" in self._results:
                self._results["out_meta"] = _publish(self._results["out_meta"], staging, base)
        finally:
            self.inputs.base_directory = final_base
            shutil.rmtree(staging, ignore_errors=True)
            _remove_if_empty(base / STAGING)
        return runtime


def _private_staging(shared: Path) -> Path:
    """A new folder inside ``shared``, made again if a concurrent job (an array task
    finishing) removed ``shared`` as empty between its creation and ours."""
    for _ in range(STAGING_TRIES):
        shared.mkdir(parents=True, exist_ok=True)
        try:
            return Path(tempfile.mkdtemp(prefix="sink-", dir=shared))
        except FileNotFoundError:
            continue
    raise OSError(f"{shared} keeps disappearing; is another program deleting it?")


def _publish(written, staging: Path, base: Path):
    """Rename staged files to their place under base; returns the final path(s)."""
    if written is None:
        return None
    paths = [written] if isinstance(written, str) else list(written)
    final = []
    for staged in map(Path, paths):
        final.append(str(move_into_place(staged, base / staged.relative_to(staging))))
    return final[0] if isinstance(written, str) else final


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # another job is still staging, or it is already gone
