"""Logging for every entry point and for nipype's worker processes.

The forkserver that starts nipype's MultiProc workers imports this module (see
:data:`WORKER_PRELOAD`); the workers are not forked from the command-line process, so
importing it applies the command line's setup at the verbosity recorded in the
environment.
"""

from __future__ import annotations

import logging
import os

LOGGER = logging.getLogger("harmonize_bids")
#: The verbosity, for worker processes that set up their logging on their own.
VERBOSITY_ENV = "HARMONIZE_BIDS_VERBOSITY"
#: What the forkserver preloads: this module.
WORKER_PRELOAD = __name__


def setup_logging(verbose: int) -> None:
    """One handler for everything; nipype's node chatter only with ``-v``."""
    os.environ[VERBOSITY_ENV] = str(verbose)
    level = logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        datefmt="%y%m%d-%H:%M:%S",
        force=True,
    )
    logging.getLogger("bids").setLevel(logging.WARNING)
    # nipype keeps its own stdout handler and re-reads its levels from its config at
    # every run: log once, through ours, and show node chatter only with -v.
    from nipype import config as nipype_config
    from nipype import logging as nipype_logging

    # Without -v, node failures are summarised by us (one line each, crash file named).
    levels = {"workflow_level": "CRITICAL", "interface_level": "WARNING", "utils_level": "WARNING"}
    for key, quiet in levels.items():
        nipype_config.set("logging", key, "INFO" if verbose else quiet)
    nipype_logging.update_logging(nipype_config)
    nipype_root = logging.getLogger("nipype")
    nipype_root.handlers.clear()
    nipype_root.propagate = True


if os.environ.get(VERBOSITY_ENV) is not None and __name__ != "__main__":
    # Imported by a worker's forkserver after the command line recorded its verbosity.
    if not logging.getLogger().handlers:
        setup_logging(int(os.environ[VERBOSITY_ENV]))
