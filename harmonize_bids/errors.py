"""User-facing errors and the BIDS-Apps exit codes they map to.

Each error carries one line that names the file and the fix; the command line prints
that line (no traceback unless -v) and exits with the error's code.
"""

from __future__ import annotations


class HarmonizeBidsError(Exception):
    """A failure the user can act on. `exit_code` follows the BIDS execution spec."""

    exit_code = 1


class UsageError(HarmonizeBidsError):
    """Bad command-line arguments or option files (sysexits EX_USAGE)."""

    exit_code = 64


class InvalidBIDSError(HarmonizeBidsError):
    """The input dataset is not valid BIDS."""

    exit_code = 16


class NoMatchingImagesError(HarmonizeBidsError):
    """The participant, session or BIDS filters matched no T1w image."""

    exit_code = 18


class MissingInputError(HarmonizeBidsError):
    """A required input is missing: no T1w, no field strength, a missing file (EX_NOINPUT)."""

    exit_code = 66


class OutputNotCreatableError(HarmonizeBidsError):
    """OUTPUT_DIR cannot be created or written, or would land inside the raw dataset."""

    exit_code = 73


class ProcessingError(HarmonizeBidsError):
    """Processing failed for at least one image."""

    exit_code = 1


#: Exit codes as documented in README.md, in one place for the CLI and the docs tests.
EXIT_CODES = {
    0: "success",
    1: "processing failure (at least one image failed; the others finished)",
    16: "invalid BIDS dataset",
    18: "participant, session or BIDS filters matched no T1w image",
    64: "usage error (bad option or option file)",
    66: "required input missing (no T1w, unknown field strength, missing input file)",
    73: "output not creatable (unwritable, or inside BIDS_DIR but not under derivatives/)",
}
