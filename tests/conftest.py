"""Shared test helpers: tiny GeoTIFFs with known values written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHARED = REPO.parent / "shared" / "data"  # present in CI (shared/ beside the clone)


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: str | None = "EPSG:32632",
    transform=None,
    nodata=None,
    descriptions: list[str] | None = None,
    scales=None,
    offsets=None,
    tiled: bool = False,
    blocksize: int = 256,
    **profile,
) -> Path:
    """Write ``data`` (bands, rows, cols) or (rows, cols) to a GeoTIFF and return its path.

    Default grid: 10 m pixels, upper-left corner at (475780, 5255000) in UTM 32N.
    """
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    count, height, width = data.shape
    if transform is None:
        transform = from_origin(475780.0, 5255000.0, 10.0, 10.0)
    kw = dict(
        driver="GTiff", width=width, height=height, count=count, dtype=data.dtype,
        crs=crs, transform=transform, nodata=nodata,
    )
    if tiled:
        kw.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    kw.update(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **kw) as ds:
        ds.write(data)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                ds.set_band_description(i, d)
        if scales is not None:
            ds.scales = scales
        if offsets is not None:
            ds.offsets = offsets
    return path


@pytest.fixture
def raster_writer(tmp_path):
    """``raster_writer(name, data, **kw)`` writes ``tmp_path / name``."""

    def _write(name: str, data, **kw) -> Path:
        return write_raster(tmp_path / name, data, **kw)

    return _write
