"""The input-stack contract: band order, storage form and the stack writer.

Every acquisition source (Earth Engine, L2A SAFE, STAC, band files) ends in the same
stack that ``predict`` reads: one raster per region and date, bands in
:data:`S2_BANDS_20M` order (or :data:`S2_BANDS_10M` for the 10 m network), reflectances as
surface reflectance factors and angles as cosines, stored as ``int16`` × 10000 with the
scale (1e-4) declared in the file and ``-32768`` as nodata.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import rasterio

from .errors import BandError
from .io import GTIFF_PROFILE, atomic_output

#: Band order of the 20 m SL2P input stack.
S2_BANDS_20M: tuple[str, ...] = (
    "cosVZA", "cosSZA", "cosRAA", "B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12",
)
#: Band order of the 10 m SL2P input stack.
S2_BANDS_10M: tuple[str, ...] = ("cosVZA", "cosSZA", "cosRAA", "B2", "B3", "B4", "B8")
ANGLE_BANDS = ("cosVZA", "cosSZA", "cosRAA")

STACK_DTYPE = "int16"
STACK_SCALE = 1e-4
STACK_NODATA = -32768

_ALIASES = {
    "cosvza": "cosVZA", "cos_vza": "cosVZA", "cosviewzenith": "cosVZA",
    "cossza": "cosSZA", "cos_sza": "cosSZA", "cossunzenith": "cosSZA",
    "cosraa": "cosRAA", "cos_raa": "cosRAA", "cosrelativeazimuth": "cosRAA",
}


def canonical_band(name: str) -> str:
    """Canonical spelling of a band name: ``'B03'`` → ``'B3'``, ``'b8a'`` → ``'B8A'``,
    ``'cos_vza'`` → ``'cosVZA'``. Unknown names are returned stripped."""
    s = name.strip()
    key = re.sub(r"[\s\-]", "", s).lower()
    if key in _ALIASES:
        return _ALIASES[key]
    m = re.fullmatch(r"b0*(\d{1,2})(a?)", key)
    if m:
        return f"B{int(m[1])}{m[2].upper()}"
    return s


def check_band_order(
    descriptions: Sequence[str | None], expected: Sequence[str], *, path: str | Path | None = None
) -> None:
    """Check band descriptions (when the file has them) against the expected order.

    Bands without a description are not checked; a file where every band is described
    must match exactly (after :func:`canonical_band`).

    Raises
    ------
    BandError
        On a count or order mismatch, naming the first differing band.
    """
    if len(descriptions) != len(expected):
        raise BandError(
            f"has {len(descriptions)} bands, expected {len(expected)}: {', '.join(expected)}",
            path=path,
        )
    for i, (got, want) in enumerate(zip(descriptions, expected), start=1):
        if got and canonical_band(got) != want:
            got_all = [canonical_band(d) if d else "?" for d in descriptions]
            raise BandError(
                f"band {i} is {got!r} but should be {want!r}; bands must be in the order "
                f"{', '.join(expected)} (file has {', '.join(got_all)})",
                path=path,
            )


def encode_stack(data: np.ndarray) -> np.ndarray:
    """Physical values (reflectance factors, cosines; NaN = nodata) → int16 × 10000."""
    out = np.round(np.asarray(data, dtype=np.float64) / STACK_SCALE)
    bad = ~np.isfinite(out)
    out = np.clip(np.where(bad, 0, out), -32767, 32767).astype(np.int16)
    out[bad] = STACK_NODATA
    return out


def write_stack(
    dst: str | Path,
    data: np.ndarray | Mapping[str, np.ndarray],
    *,
    transform: rasterio.Affine,
    crs,
    bands: Sequence[str] = S2_BANDS_20M,
    tags: Mapping[str, str] | None = None,
) -> Path:
    """Write an input stack atomically in the contract's storage form.

    Parameters
    ----------
    dst
        Output path, conventionally ``{region}_{res}m_{date}.tif``.
    data
        ``(bands, rows, cols)`` array, or a mapping band name → 2-D array, of physical
        values: reflectance factors (0–1) and cosines; NaN marks nodata (clouds, no data).
        A pixel that is NaN in any band is written as nodata in every band.
    transform, crs
        Grid of the data.
    bands
        Band names, in file order; written as band descriptions.
    tags
        Extra dataset metadata (e.g. source product, sensing time).
    """
    if isinstance(data, Mapping):
        missing = [b for b in bands if b not in data]
        if missing:
            raise BandError(f"missing band(s) {', '.join(missing)}", path=dst)
        data = np.stack([np.asarray(data[b]) for b in bands])
    data = np.asarray(data)
    if data.ndim != 3 or data.shape[0] != len(bands):
        raise BandError(f"stack must have shape ({len(bands)}, rows, cols), got {data.shape}", path=dst)
    encoded = encode_stack(data)
    encoded[:, (encoded == STACK_NODATA).any(axis=0)] = STACK_NODATA
    _, height, width = encoded.shape
    profile = dict(GTIFF_PROFILE, predictor=2)
    if width < 512 or height < 512:  # tiny stacks: strips are smaller than one 512² tile
        profile.update(tiled=False, blockxsize=None, blockysize=None)
        profile = {k: v for k, v in profile.items() if v is not None}
    with atomic_output(dst) as tmp:
        with rasterio.open(
            tmp, "w", width=width, height=height, count=len(bands), dtype=STACK_DTYPE,
            crs=crs, transform=transform, nodata=STACK_NODATA, **profile,
        ) as ds:
            ds.write(encoded)
            ds.scales = [STACK_SCALE] * len(bands)
            ds.offsets = [0.0] * len(bands)
            for i, b in enumerate(bands, start=1):
                ds.set_band_description(i, b)
            if tags:
                ds.update_tags(**{k: str(v) for k, v in tags.items()})
    return Path(dst)
