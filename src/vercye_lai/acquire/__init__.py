"""Acquisition sources that end in the input-stack contract of :mod:`vercye_lai.stack`:
a folder of existing stacks, reflectance GeoTIFFs from other tools, local L2A SAFE
products, a STAC catalogue and Earth Engine.

Every source is one module with the same small interface, so ``vercye-lai run``
dispatches by kind and a new source is one module (plus one CLI wrapper):

``KIND``
    Its name in the run config (``[source] kind = "safe"``).
``Options``
    A frozen options type (:mod:`vercye_lai.options`): its fields are the ``[source]``
    keys and the options of its command.
``IN_PROCESS``
    True when it must run in the submitting process (interactive log-ins), not on a
    worker.
``NEEDS_GEOMETRY``
    True when the regions need a geometry (``library`` or ``geometry``) for it.
``acquire(region, options, out_dir, *, resolution, state_dir) -> {date: path}``
    Write (or find) the stacks of ``region`` (``name``, ``start``, ``end``, ``shape()``:
    see :class:`vercye_lai.run.RegionConfig`) in ``out_dir``, skipping those that exist,
    and return them by date.

A source whose stacks are read where they are (``local``) gives its folder by
``Options.stacks_folder(region)``.
"""

from __future__ import annotations

import datetime as dt
import glob
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from vercye_lai.errors import ConfigError

#: kind -> module under vercye_lai.acquire
SOURCES: dict[str, str] = {
    "local": "local",
    "bands": "bands",
    "safe": "safe",
    "stac": "stac",
    "gee": "gee",
    "hls": "hls",
    "landsat": "landsat",
}


def expand_patterns(patterns: Iterable[str | Path]) -> list[str]:
    """Paths and glob patterns (as a config gives them) → the sorted, distinct paths; a
    pattern that matches nothing is kept as it is, so that opening it names it."""
    return sorted({p for pat in map(str, patterns) for p in (glob.glob(pat) or [pat])})


def source(kind: str) -> ModuleType:
    """The module of the source ``kind`` (imported on first use: extras stay optional)."""
    if kind not in SOURCES:
        raise ConfigError(f"source.kind: {kind!r} is not allowed; allowed values: "
                          + ", ".join(SOURCES))
    return importlib.import_module(f"{__name__}.{SOURCES[kind]}")


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
