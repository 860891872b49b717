"""Exceptions raised by the preprocessing functions."""


class ImageError(ValueError):
    """An input image cannot be used; the message names the file and the fix."""


class MissingDependencyError(ImportError):
    """An optional dependency needed for the requested method is not installed."""
