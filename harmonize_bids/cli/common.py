"""What every entry point shares: parse, set up logging, map errors to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import HarmonizeBidsError
from ..logs import LOGGER, setup_logging

#: TemplateFlow home for every entry point: the app uses no template (see its README).
EMPTY_TEMPLATEFLOW_HOME = Path(__file__).parents[1] / "data" / "templateflow"


def run_entry_point(
    parse: Callable[[list[str] | None], argparse.Namespace],
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None,
    *,
    prog: str = "harmonize-bids",
) -> int:
    """Parse, run, and turn any failure into one line and its exit code."""
    os.environ.setdefault("NIPYPE_NO_ET", "1")  # nipype must not phone home
    os.environ["TEMPLATEFLOW_HOME"] = str(EMPTY_TEMPLATEFLOW_HOME)
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
