"""The error hierarchy.

Every error the library raises on purpose derives from :class:`LaiError`, and each
subclass also inherits the builtin a caller would naturally catch (``ValueError`` for bad
input, ``OSError`` for files that cannot be read or written, ``ImportError`` for a missing
optional extra). The CLI turns a ``LaiError`` into one line naming the file and the cause.
"""

from __future__ import annotations

import os
from os import PathLike


def printable_path(path: str | PathLike[str] | bytes) -> str:
    """``path`` as text that can always be printed: bytes that are not UTF-8 (a Linux file
    name may hold any; Python hands them over as surrogates) shown as ``\\xff`` escapes
    instead of failing the print."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """``text`` with the surrogates of undecodable file-name bytes shown as ``\\xff``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


class LaiError(Exception):
    """Root of all vercye-lai errors.

    Parameters
    ----------
    message
        What went wrong, in words a user can act on.
    path
        The file or folder concerned, if any; the CLI prints it first.
    """

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else printable_path(path)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InputError(LaiError, ValueError):
    """Input data or arguments that cannot be used as given (wrong bands, CRS, dates...)."""


class BandError(InputError):
    """A raster whose band count or band order does not match what the step needs."""


class ModelError(InputError):
    """An unknown model or variable, or a coefficient file that cannot be parsed."""


class ConfigError(InputError):
    """A configuration value that is missing or not among the allowed ones."""


class DataIOError(LaiError, OSError):
    """A file that cannot be opened, read or written (missing, corrupt, not georeferenced)."""


class DiskFullError(DataIOError):
    """The output's file system is full: the other dates would fail the same way, so a
    run stops at the first one (its message always contains :data:`NO_SPACE`)."""


#: the words every :class:`DiskFullError` says (a run's summary looks for them)
NO_SPACE = "No space left on device"


class NoDataFoundError(InputError):
    """Nothing to work on: no files for the region/resolution/date range."""


class DependencyError(LaiError, ImportError):
    """An optional extra is needed but not installed."""


class ServiceError(LaiError, RuntimeError):
    """A remote service (Earth Engine, Google Drive, a STAC API) refused or failed."""


def gdal_reason(exc: BaseException) -> str:
    """What GDAL said, not rasterio's "Read failed. See previous exception for details.":
    the message of the innermost cause (e.g. a VRT's missing source file)."""
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        if str(cause):
            text = str(cause)
        cause = cause.__cause__ or cause.__context__
    return text


def detached(exc: BaseException) -> BaseException:
    """``exc`` without the exceptions it was raised from (its message already says why): a
    task's error crosses to a Dask client pickled with its chain, and rasterio's GDAL errors do
    not unpickle ("property 'args' of CPLE_OpenFailedError has no setter"), so distributed put a
    bare ``Exception: DataIOError(...)`` and a 75-line traceback in its place."""
    exc.__cause__ = exc.__context__ = None
    exc.__suppress_context__ = True
    return exc


def error_text(exc: BaseException) -> str:
    """One line for a report: a :class:`LaiError` as it is, an OS error as ``file: cause``,
    anything else with its type."""
    if isinstance(exc, LaiError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{printable_path(exc.filename)}: {exc.strerror}" if exc.filename else exc.strerror
    if isinstance(exc, UnicodeEncodeError) and "surrogates" in str(exc):  # a path passed to GDAL
        return f"{printable_path(exc.object)}: path is not valid UTF-8 (GDAL needs UTF-8 file names)"
    return f"{type(exc).__name__}: {exc}"


def require(module: str, extra: str):
    """Import an optional dependency, or raise a :class:`DependencyError` naming the extra.

    Parameters
    ----------
    module
        Dotted module name to import, e.g. ``"ee"``.
    extra
        The pip extra that provides it, e.g. ``"gee"``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(
            f"this needs the optional '{extra}' extra ({module} is not installed): "
            f"pip install 'vercye-lai[{extra}]'"
        ) from exc
