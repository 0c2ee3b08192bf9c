"""What a reflectance GeoTIFF of named bands declares: which band is which, how its values
scale to reflectance, and the coarse sample its offset is checked on.

Held apart from :mod:`vercye_lai.acquire.bands` (which re-exports every public name here)
because it reads only a file's metadata and a coarse sample, never the output grid: both the
stack (:func:`~vercye_lai.acquire.bands.plan_band_stack`) and the choice of a date's file
(:mod:`vercye_lai.acquire._band_dates`) use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import rasterio

from vercye_lai.acquire import scl as masks
from vercye_lai.acquire.angles import (
    STACK_VIEW_BANDS as REFLECTANCE_BANDS,  # B3 … B12 in stack order
)
from vercye_lai.acquire.offset import Sample, read_sample
from vercye_lai.errors import BandError
from vercye_lai.stack import canonical_band

_MAX_REFLECTANCE = 5.0  # beyond this a "reflectance" is a fill value or a wrong --scale


def band_indexes(ds: rasterio.DatasetReader, names: Sequence[str] | None = None) -> dict[str, int]:
    """Canonical band name → 1-based band index, from ``names`` (one per band, in file
    order) or from the band descriptions.

    Raises
    ------
    BandError
        Band names missing, of the wrong count, or lacking a reflectance band of the stack.
    """
    if names is not None:
        if len(names) != ds.count:
            raise BandError(f"{len(names)} band names given for {ds.count} bands", path=ds.name)
        descr = list(names)
    else:
        descr = list(ds.descriptions)
        if not any(descr):
            raise BandError(
                "bands have no descriptions; name them in file order (--band-names B02,B03,…)",
                path=ds.name,
            )
    index = {canonical_band(d): i for i, d in enumerate(descr, start=1) if d}
    missing = [b for b in REFLECTANCE_BANDS if b not in index]
    if missing:
        raise BandError(
            f"lacks band(s) {', '.join(missing)} (has {', '.join(d or '?' for d in descr)})",
            path=ds.name,
        )
    return index


def reflectance_scaling(
    ds: rasterio.DatasetReader,
    index: dict[str, int],
    *,
    scale: float | None = None,
    offset: float | None = None,
) -> tuple[float, float, str]:
    """``(scale, offset, how)``: reflectance = stored × scale + offset (an ``offset`` given
    alone keeps the file's own scale, as predict's does)."""
    if scale is not None or offset is not None:
        if scale is None:
            scale = reflectance_scaling(ds, index)[0]
        return scale, (offset or 0.0), "given"
    bands = [index[b] - 1 for b in REFLECTANCE_BANDS]
    scales = {ds.scales[i] for i in bands}
    offsets = {ds.offsets[i] for i in bands}
    if len(scales) == 1 and len(offsets) == 1 and (scales != {1.0} or offsets != {0.0}):
        return scales.pop(), offsets.pop(), "declared in the file"
    if np.issubdtype(np.dtype(ds.dtypes[bands[0]]), np.floating):
        return 1.0, 0.0, "float data: reflectance factors as stored"
    return 1e-4, 0.0, "integer data: scale 1e-4"


def file_sample(ds: rasterio.DatasetReader, index: dict[str, int]) -> Sample:
    """The coarse sample of a reflectance file the offset check reads: B3, B4, B8A, and as
    land its SCL 4/5 pixels (every pixel with data when it has no SCL band)."""
    green = read_sample(ds, index["B3"])
    red, nir = (read_sample(ds, index[b], shape=green.shape) for b in ("B4", "B8A"))
    if "SCL" in index:
        land = np.isin(read_sample(ds, index["SCL"], shape=green.shape), masks.LAND_CLASSES)
    else:
        land = np.isfinite(green) & np.isfinite(red)
    # undeclared fill values (EOdal's 1e20) are no land
    return Sample(green, red, nir, land & (np.abs(green) < _MAX_REFLECTANCE / 1e-4))
