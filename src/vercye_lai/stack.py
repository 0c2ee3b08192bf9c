"""The input stack that predict reads: its bands, its reflectance scaling and its nodata.

Whatever the source, a stack is one raster per region and date whose bands are the
network's inputs in order (:mod:`vercye_lai.bands`); reflectances are 0–1 floats or
integers whose scale/offset the file declares (Earth Engine's exports cannot: integer
stacks that declare nothing are read as ×1e-4).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from vercye_lai.bands import ANGLE_BANDS, check_band_order
from vercye_lai.errors import BandError, InputError
from vercye_lai.io import open_raster

log = logging.getLogger(__name__)

#: EE-exported integer stacks declare no scale: every band is stored × 10000.
EE_INTEGER_SCALE = 1e-4

@dataclass(frozen=True)
class StackScaling:
    """Per-band affine map from stored values to physical values: ``x = DN · a + b``."""

    a: np.ndarray
    b: np.ndarray
    how: str


def stack_scaling(
    ds: rasterio.DatasetReader,
    inputs: Sequence[str],
    *,
    scale: float | None = None,
    offset: float | None = None,
) -> StackScaling:
    """Decide how to turn a stack's stored values into reflectance factors and cosines.

    In order of precedence:

    1. ``scale``/``offset`` given by the user: reflectance = (DN + offset) × scale for the
       reflectance bands (L2A baseline ≥ 04.00: offset −1000, scale 1e-4); angle bands of an
       integer stack stay × 1e-4.
    2. Scales/offsets declared in the file (GDAL convention, x = DN × scale + offset).
    3. An integer stack without declared scale: an Earth Engine export, every band
       × 1e-4.
    4. A float stack: values are used as they are.
    """
    n = len(inputs)
    integer = np.issubdtype(np.dtype(ds.dtypes[0]), np.integer)
    declared = any(s != 1.0 for s in ds.scales) or any(o != 0.0 for o in ds.offsets)
    if scale is not None or offset is not None:
        s = 1.0 if scale is None else float(scale)
        o = 0.0 if offset is None else float(offset)
        a = np.full(n, s)
        b = np.full(n, o * s)
        for i, band in enumerate(inputs):
            if band in ANGLE_BANDS:
                a[i], b[i] = (EE_INTEGER_SCALE if integer else 1.0), 0.0
        if declared:
            log.warning("%s: --scale/--offset override the scale/offset declared in the file", ds.name)
        return StackScaling(a, b, f"user: reflectance = (DN + {o:g}) * {s:g}")
    if declared:
        return StackScaling(np.asarray(ds.scales, float), np.asarray(ds.offsets, float), "declared in file")
    if integer:
        return StackScaling(np.full(n, EE_INTEGER_SCALE), np.zeros(n), "integer stack without scale: x 1e-4")
    return StackScaling(np.ones(n), np.zeros(n), "float stack: as stored")


#: Physical limits of a stack's values, on the median of a block's valid pixels per band.
#: Reflectance factors beyond these are not a bright field but a wrong scale: a stack
#: stored × 10000 reads ~500–5000, one scaled twice ~1e-5. Medians, not extremes, so that
#: saturated or dark pixels of a real stack never fail a date.
REFLECTANCE_MEDIAN_RANGE = (-0.5, 2.0)
COSINE_RANGE = (-1.01, 1.01)
#: every reflectance band's median below this: the values were scaled twice
DARKEST_MEDIAN = 1e-3
#: take every n-th row and column for the check (a few thousand pixels of a 1024² block)
_SAMPLE_STEP = 8


def check_physical(
    data: np.ndarray,
    scaling: StackScaling,
    inputs: Sequence[str],
    nodatavals: Sequence[float | None],
    *,
    path: str | Path,
) -> None:
    """Fail when a block of stored values is not reflectance factors and cosines once scaled.

    Parameters
    ----------
    data
        ``(bands, rows, cols)`` stored values of one block, bands in ``inputs`` order.
    scaling
        The stack's scaling (:func:`stack_scaling`).

    Raises
    ------
    InputError
        Naming ``path``, the band, the median seen, how the stack was scaled and what to
        pass instead (``--scale``).
    """
    sample = data[:, ::_SAMPLE_STEP, ::_SAMPLE_STEP]
    valid = ~invalid_mask(sample, nodatavals)
    if not valid.any():
        return
    values = sample[:, valid].astype(np.float64) * scaling.a[:, None] + scaling.b[:, None]
    medians = np.median(values, axis=1)
    refl = [i for i, b in enumerate(inputs) if b not in ANGLE_BANDS]
    fix = ("reflectances must be factors 0–1: if the stack is stored × 10000, pass --scale 1e-4 "
           "(run config: scale = 1e-4 in [predict]), or declare the scale in the file")
    for i, band in enumerate(inputs):
        lo, hi = COSINE_RANGE if band in ANGLE_BANDS else REFLECTANCE_MEDIAN_RANGE
        if not lo <= medians[i] <= hi:
            what = "cosine" if band in ANGLE_BANDS else "reflectance"
            hint = ("angle bands must be cosines in -1…1: a float stack stored × 10000 in every band "
                    "must declare its scale in the file (gdal_edit.py -scale 1e-4)" if band in ANGLE_BANDS else fix)
            raise InputError(
                f"values are not physical: band {band} has a median {what} of {medians[i]:.6g} "
                f"(scaling: {scaling.how}); {hint}", path=path)
    if refl and np.all(medians[refl] < DARKEST_MEDIAN):
        raise InputError(
            f"values are not physical: every reflectance band has a median below {DARKEST_MEDIAN:g} "
            f"({', '.join(f'{inputs[i]} {medians[i]:.3g}' for i in refl[:3])}…; scaling: {scaling.how}): "
            "the stack looks scaled twice — drop --scale, or the scale declared in the file", path=path)


def open_stack(path: str | Path, inputs: Sequence[str]) -> rasterio.DatasetReader:
    """Open an input stack and check its bands against the network's inputs."""
    ds = open_raster(path)
    try:
        check_band_order(ds.descriptions, inputs, path=path)
    except BandError:
        ds.close()
        raise
    return ds


def invalid_mask(data: np.ndarray, nodatavals: Sequence[float | None]) -> np.ndarray:
    """True where any band is nodata or NaN."""
    if len(set(nodatavals)) == 1 and np.issubdtype(data.dtype, np.integer):
        nd = nodatavals[0]
        info = np.iinfo(data.dtype)
        # the usual integer stack (nodata = the type's minimum): one reduction over the bands
        if nd == info.min:
            return data.min(axis=0) == nd
        if nd == info.max:
            return data.max(axis=0) == nd
    bad = np.zeros(data.shape[1:], dtype=bool)
    floating = np.issubdtype(data.dtype, np.floating)
    for band, nd in zip(data, nodatavals):
        if floating:
            bad |= np.isnan(band)
        if nd is not None and not np.isnan(nd):
            bad |= band == nd
    return bad
