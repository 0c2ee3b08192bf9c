"""Regenerate the Strickhof sample from ``shared/data/s2_l2a_timeseries_strickhof_CH_2022``.

Run from the repository root: ``python tests/data/strickhof/make_sample.py [SOURCE_DIR]``.

Writes, beside this script:

* ``lai/strickhof_10m_{YYYY-MM-DD}_LAI.tif``: band 1 (``lai``) of each
  ``lai_prosail_lut/*_all_phases_lutinv_traits.tif``, float32, NaN nodata, DEFLATE.
  Grids and pixel values are unchanged.
* ``fields.geojson``: the three field polygons (EPSG:4326, unchanged coordinates) with
  attributes ``FID`` (1–3) and ``name``.

Duplicate dates (2022-05-16, 2022-06-20, 2022-06-23): the operational processing
baseline N0400 is preferred over the N9999 reprocessing, and between two N0400 products
the later processing time (the reprocessed one) is kept.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

import numpy as np
import rasterio

HERE = Path(__file__).resolve().parent
DEFAULT_SRC = HERE.parents[3] / "shared" / "data" / "s2_l2a_timeseries_strickhof_CH_2022"
REGION = "strickhof"
FIELDS = ("Bramenwies", "Fluegenrain", "Hohrueti")
_SAFE = re.compile(r"S2[AB]_MSIL2A_(\d{8})T\d{6}_(N\d{4})_R\d{3}_T\w{5}_(\d{8}T\d{6})_")


def pick_products(src: Path) -> dict[dt.date, Path]:
    """One LAI product per date: baseline N0400 first, then the latest processing time."""
    best: dict[dt.date, tuple[tuple, Path]] = {}
    for path in sorted((src / "lai_prosail_lut").glob("*_all_phases_lutinv_traits.tif")):
        m = _SAFE.match(path.name)
        date = dt.datetime.strptime(m[1], "%Y%m%d").date()
        rank = (m[2] == "N0400", m[3])
        if date not in best or rank > best[date][0]:
            best[date] = (rank, path)
    return {d: p for d, (_, p) in sorted(best.items())}


def main(src: Path = DEFAULT_SRC) -> None:
    import geopandas as gpd
    import pandas as pd

    out = HERE / "lai"
    out.mkdir(exist_ok=True)
    for date, path in pick_products(src).items():
        with rasterio.open(path) as ds:
            assert ds.descriptions[0] == "lai", path
            data = ds.read(1).astype(np.float32)
            profile = dict(driver="GTiff", width=ds.width, height=ds.height, count=1,
                           dtype="float32", crs=ds.crs, transform=ds.transform, nodata=np.nan,
                           compress="deflate", predictor=3)
        dst = out / f"{REGION}_10m_{date.isoformat()}_LAI.tif"
        with rasterio.open(dst, "w", **profile) as w:
            w.write(data, 1)
            w.set_band_description(1, "lai")
            w.update_tags(SOURCE=path.name)
    parts = [gpd.read_file(src / "fields" / f"{name}.shp").assign(name=name) for name in FIELDS]
    gdf = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs)
    gdf = gdf[["name", "geometry"]]
    gdf.insert(0, "FID", range(1, len(gdf) + 1))
    dst = HERE / "fields.geojson"
    dst.unlink(missing_ok=True)
    gdf.to_file(dst, driver="GeoJSON")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SRC)
