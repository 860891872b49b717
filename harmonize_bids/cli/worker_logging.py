"""Preloaded by the forkserver that starts nipype's MultiProc workers.

The workers are not forked from the command-line process, so they would start with
nipype's own logging (every node's chatter on stdout). Importing this module applies
the command line's setup, at the verbosity it recorded in the environment.
"""

import os

from .common import VERBOSITY_ENV, setup_logging

setup_logging(int(os.environ.get(VERBOSITY_ENV, "0")))
