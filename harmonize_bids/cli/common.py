"""What every entry point shares: logging, and mapping errors to exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from ..errors import HarmonizeBidsError

LOGGER = logging.getLogger("harmonize_bids")
#: The verbosity, for worker processes that set up their logging on their own.
VERBOSITY_ENV = "HARMONIZE_BIDS_VERBOSITY"


def run_entry_point(
    parse: Callable[[list[str] | None], argparse.Namespace],
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None,
    *,
    prog: str = "harmonize-bids",
) -> int:
    """Parse, run, and turn any failure into one line and its exit code."""
    os.environ.setdefault("NIPYPE_NO_ET", "1")  # nipype must not phone home
    verbose = 0
    try:
        options = parse(argv)
        verbose = options.verbose
        setup_logging(verbose)
        return run(options)
    except HarmonizeBidsError as error:
        return _fail(error, error.exit_code, verbose, prog=prog)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - last resort: one line, code 1
        return _fail(error, 1, verbose, prog=prog, unexpected=True)


def setup_logging(verbose: int) -> None:
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


def _fail(
    error: BaseException, code: int, verbose: int, *, prog: str, unexpected: bool = False
) -> int:
    message = str(error) or type(error).__name__
    if unexpected:
        message = f"unexpected {type(error).__name__}: {message}"
    if not verbose:
        hint = " (run with -v for the traceback)" if unexpected else ""
        print(f"{prog}: error: {message}{hint}", file=sys.stderr)
    else:
        LOGGER.exception("%s: error: %s", prog, message)
    return code
