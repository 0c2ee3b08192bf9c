"""Acquisition: sources that end in the input-stack contract of :mod:`vercye_lai.stack`
(a folder of existing stacks, reflectance GeoTIFFs from other tools, local L2A SAFE products,
a STAC catalogue, HLS and Landsat scenes, Earth Engine), and the mosaics of a date's parts.

Every source is a typed :class:`~vercye_lai.acquire.source.Source`, registered here one by
one; ``vercye-lai run`` dispatches by kind (:func:`source`). Extras (Earth Engine, Drive,
STAC clients) are imported when a source first uses them, not here.
"""

from vercye_lai.acquire import bands, gee, hls, landsat, local, safe, stac
from vercye_lai.acquire.source import Region, Source, expand_patterns, register, registered, source

for _module in (local, bands, safe, stac, gee, hls, landsat):
    register(_module.SOURCE)

#: the registered kinds, in the order the docs and the example config list them
SOURCES: tuple[str, ...] = tuple(registered())

__all__ = ["SOURCES", "Region", "Source", "expand_patterns", "register", "registered", "source"]
