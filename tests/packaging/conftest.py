"""Puts packaging_support (the helpers these tests share) on the import path."""

from __future__ import annotations

import sys
from pathlib import Path

# No __init__.py here on purpose: a package named `packaging` on the test path would
# shadow the PyPI `packaging` library that pip, setuptools and nipype import.
sys.path.insert(0, str(Path(__file__).parent))
