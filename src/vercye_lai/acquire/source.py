"""What an acquisition source is: a typed :class:`Source`, registered explicitly (as pystac
registers its extensions), and the :class:`Region` the sources read.

A source ends in the input-stack contract of :mod:`vercye_lai.stack`; ``vercye-lai run``
dispatches on :attr:`Source.kind` (``[source] kind = "safe"``), and a new source is one
module that defines a ``SOURCE`` and one line in :mod:`vercye_lai.acquire` that registers it
(plus one CLI wrapper).
"""

from __future__ import annotations

import datetime as dt
import glob
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vercye_lai.errors import ConfigError, InputError
from vercye_lai.options import Options


class RegionLike(Protocol):
    """What a source reads of a region: :class:`Region` (a command's) or
    :class:`vercye_lai.run.RegionConfig` (a run's)."""

    name: str
    start: dt.date
    end: dt.date

    @property
    def has_geometry(self) -> bool: ...

    def shape(self) -> Any: ...


#: ``acquire(region, options, out_dir, *, resolution, state_dir) -> {date: path}``
AcquireFn = Callable[..., dict]


@dataclass(frozen=True)
class Source:
    """One acquisition source.

    Attributes
    ----------
    kind
        Its name in the run config (``[source] kind = "safe"``).
    options
        Its frozen options type (:mod:`vercye_lai.options`): the fields are the ``[source]``
        keys and the options of its command.
    acquire
        ``acquire(region, options, out_dir, *, resolution, state_dir) -> {date: path}``:
        write (or find) the stacks of ``region`` in ``out_dir``, skipping those that exist.
    in_process
        It must run in the submitting process (interactive log-ins), not on a worker.
    needs_geometry
        The regions need a geometry (``library`` or ``geometry``) for it.
    sensors
        ``sensors(options)``: the sensor tokens of the stacks it writes with these options
        (``S2``, ``L30``, ``S30``, ``L8``, ``L9``; default ``{"S2"}``). Two sources of a run may
        not write one sensor: a date both cover would keep one source's stack.
    products
        It writes the products themselves, not stacks (``stac-direct``): the run gives its
        ``acquire`` the LAI folder as ``out_dir``, the predict options as ``predict`` and its
        Dask client, if any, as ``client``.
    """

    kind: str
    options: type[Options]
    acquire: AcquireFn
    in_process: bool = False
    needs_geometry: bool = True
    sensors: Callable[[Any], frozenset[str]] = lambda options: frozenset({"S2"})
    products: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.options, type) and issubclass(self.options, Options)):
            raise TypeError(f"source {self.kind!r}: options must be an Options type, not {self.options!r}")
        if not callable(self.acquire):
            raise TypeError(f"source {self.kind!r}: acquire must be callable")


_REGISTRY: dict[str, Source] = {}


def register(src: Source) -> Source:
    """Add a source to the registry (a kind is registered once)."""
    if src.kind in _REGISTRY and _REGISTRY[src.kind] is not src:
        raise ValueError(f"a source of kind {src.kind!r} is registered already")
    _REGISTRY[src.kind] = src
    return src


def registered() -> dict[str, Source]:
    """The registered sources by kind, in registration order."""
    return dict(_REGISTRY)


def source(kind: str) -> Source:
    """The source of ``kind``.

    Raises
    ------
    ConfigError
        No such kind (naming the allowed ones).
    """
    if kind not in _REGISTRY:
        raise ConfigError(f"source.kind: {kind!r} is not allowed; allowed values: " + ", ".join(_REGISTRY))
    return _REGISTRY[kind]


def expand_patterns(patterns: Iterable[str | Path]) -> list[str]:
    """Paths and glob patterns (as a config gives them) → the sorted, distinct paths; a path
    that is not a pattern is kept as it is (opening it names it; it may be a GDAL path).

    Raises
    ------
    InputError
        A pattern that matches no file (it was then read as a file name: "no acquisition
        time"), or no path at all.
    """
    out = set()
    for pat in map(str, patterns):
        found = glob.glob(pat)
        if not found and glob.has_magic(pat):
            raise InputError("matches no file", path=pat)
        out.update(found or [pat])
    if not out:
        raise InputError("no file given (the source's files or paths)")
    return sorted(out)


@dataclass(frozen=True)
class Region:
    """A region as the sources read it, for a command (the run uses its ``RegionConfig``).

    ``geometry`` is shapely, EPSG:4326 (``None``: the region only names the files).
    """

    name: str
    geometry: Any = None
    start: dt.date = dt.date.min
    end: dt.date = dt.date.max

    @property
    def has_geometry(self) -> bool:
        return self.geometry is not None

    def shape(self) -> Any:
        if self.geometry is None:
            raise ConfigError(f"region {self.name!r}: this source needs its geometry")
        return self.geometry
