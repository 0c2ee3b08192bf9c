"""Benchmark ``analyze --mode poly_iter`` against a per-polygon, per-date ``rasterio.mask`` loop.

Generates, in a temporary folder, a large LAI raster per date (smooth field + noise, cloud
blobs of NaN) and non-overlapping field polygons, then times, in the same run:

* ``vercye_lai.analysis.analyze`` (mode ``poly_iter``) — complete, with every CSV and MAX.tif;
* the baseline: for each date, for each polygon, ``rasterio.mask.mask(crop=True)`` and the
  count and mean of the valid pixels (what the reference implementation does, statistics only).

Prints both times, their ratio (goal ≤ 0.1) and the agreement: pixel counts identical and
means within 1e-6 for every (polygon, date).

    python benchmarks/bench_analysis.py            # 3000 px, 1000 polygons, 30 dates
    python benchmarks/bench_analysis.py --quick    # 1000 px, 150 polygons, 8 dates
    python benchmarks/bench_analysis.py --max-bands none   # CSVs only, no MAX.tif
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import rasterio.mask
from rasterio.transform import from_origin

ORIGIN = (500000.0, 5600000.0)  # UTM 31N, 10 m pixels
RES = 10.0
CRS = "EPSG:32631"
REGION = "bench"
START = dt.date(2022, 3, 1)


def make_lai(folder: Path, size: int, n_dates: int, rng: np.random.Generator) -> list[dt.date]:
    """One ``{REGION}_10m_{date}_LAI.tif`` per date (every 5 days), float32, NaN clouds."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = 2 + np.sin(6 * xx) * np.cos(4 * yy)  # smooth spatial pattern, 1-3
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="float32", crs=CRS,
                   transform=from_origin(*ORIGIN, RES, RES), nodata=np.nan, tiled=True,
                   blockxsize=512, blockysize=512, compress="zstd", zstd_level=1)
    dates = []
    for i in range(n_dates):
        date = START + dt.timedelta(days=5 * i)
        season = 0.3 + 1.5 * np.sin(np.pi * i / max(n_dates - 1, 1))
        data = (base * season + rng.normal(0, 0.3, (size, size))).astype(np.float32)
        # clouds: a few discs of NaN, different each date
        for _ in range(rng.integers(0, 6)):
            cy, cx = rng.uniform(0, 1, 2)
            r = rng.uniform(0.03, 0.12)
            data[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = np.nan
        path = folder / f"{REGION}_10m_{date.isoformat()}_LAI.tif"
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(data, 1)
        dates.append(date)
    return dates


def make_fields(path: Path, size: int, n: int, rng: np.random.Generator):
    """``n`` non-overlapping random convex fields, one per cell of a regular grid."""
    import geopandas as gpd
    from shapely.geometry import MultiPoint

    cells = int(np.ceil(np.sqrt(n)))
    cell = size * RES / cells
    picked = rng.choice(cells * cells, n, replace=False)
    geoms = []
    for k in picked:
        cy, cx = divmod(int(k), cells)
        x0 = ORIGIN[0] + cx * cell
        y0 = ORIGIN[1] - (cy + 1) * cell
        pts = rng.uniform(0.08, 0.92, (8, 2)) * cell + (x0, y0)
        geoms.append(MultiPoint(pts).convex_hull)
    gdf = gpd.GeoDataFrame({"FID": np.arange(1, n + 1)}, geometry=geoms, crs=CRS)
    gdf.to_file(path, driver="GPKG")
    return gdf


Stats = dict[tuple[int, dt.date], tuple[int, float]]  # (FID, date) -> (n valid, mean)


def baseline(lai_dir: Path, dates: list[dt.date], gdf) -> Stats:
    """Per polygon and date: rasterio.mask, then count and mean of valid (clipped) LAI."""
    out = {}
    geoms = list(gdf.geometry)
    for date in dates:
        with rasterio.open(lai_dir / f"{REGION}_10m_{date.isoformat()}_LAI.tif") as ds:
            for fid, geom in zip(gdf["FID"], geoms, strict=True):
                data, _ = rasterio.mask.mask(ds, [geom], crop=True, filled=False, indexes=1)
                v = data.compressed()
                v = np.maximum(v[~np.isnan(v)], 0).astype(np.float64)
                out[int(fid), date] = (v.size, v.mean() if v.size else np.nan)
    return out


def ours(dates: list[dt.date], result) -> Stats:
    """The same figures read back from analyze's CSVs."""
    import pandas as pd

    want = {d.isoformat() for d in dates}
    out = {}
    for z in result.zones:
        df = pd.read_csv(z.csv)
        df = df[df["Date"].isin(want)]
        for d, n, m in zip(df["Date"], df["n_pixels"], df["LAI Mean"], strict=True):
            out[int(z.name), dt.date.fromisoformat(d)] = (int(n), float(m) if n else np.nan)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small size (seconds)")
    ap.add_argument("--size", type=int, help="raster side in pixels")
    ap.add_argument("--polygons", type=int, help="number of fields")
    ap.add_argument("--dates", type=int, help="number of dates")
    ap.add_argument("--max-bands", default="both", choices=("both", "estimate", "adjusted", "none"),
                    help="analyze's --max-bands (none: CSVs only)")
    args = ap.parse_args(argv)
    size = args.size or (1000 if args.quick else 3000)
    n_poly = args.polygons or (150 if args.quick else 1000)
    n_dates = args.dates or (8 if args.quick else 30)

    from vercye_lai.analysis import AnalysisOptions, analyze

    rng = np.random.default_rng(42)
    with tempfile.TemporaryDirectory(prefix="bench_analysis_") as tmp:
        tmp = Path(tmp)
        lai_dir = tmp / "lai"
        lai_dir.mkdir()
        t = time.perf_counter()
        dates = make_lai(lai_dir, size, n_dates, rng)
        gdf = make_fields(tmp / "fields.gpkg", size, n_poly, rng)
        print(f"data: {size}x{size} px x {n_dates} dates, {n_poly} polygons "
              f"({time.perf_counter() - t:.1f} s to generate)")

        import scipy.interpolate  # noqa: F401  (import time is not analysis time)

        marks = {}
        t = time.perf_counter()
        result = analyze(lai_dir, tmp / "out", REGION, tmp / "fields.gpkg", resolution=10,
                         options=AnalysisOptions(mode="poly_iter", max_bands=args.max_bands),
                         progress=lambda done, total: marks.setdefault(done, time.perf_counter()))
        t_ours = time.perf_counter() - t
        t_stats = marks[max(marks)] - t  # reading + statistics of every date, all polygons
        n_files = len(result.outputs)
        print(f"analyze poly_iter : {t_ours:8.2f} s  (of which {t_stats:.2f} s reading and "
              f"statistics of all dates, {t_ours - t_stats:.2f} s gap filling and writing "
              f"{n_files} files)")

        t = time.perf_counter()
        ref = baseline(lai_dir, dates, gdf)
        t_base = time.perf_counter() - t
        print(f"rasterio.mask loop: {t_base:8.2f} s  ({n_poly * n_dates} mask calls, stats only)")

        mine = ours(dates, result)
        assert mine.keys() == ref.keys(), "different (polygon, date) pairs"
        counts_equal = all(mine[k][0] == ref[k][0] for k in ref)
        diffs = [abs(mine[k][1] - ref[k][1]) for k in ref if ref[k][0]]
        max_diff = max(diffs) if diffs else 0.0
        ratio = t_ours / t_base
        print(f"ratio analyze / baseline = {ratio:.3f}  (goal <= 0.1: "
              f"{'met' if ratio <= 0.1 else 'NOT met'}); statistics alone: "
              f"{t_stats / t_base:.3f}")
        print(f"agreement: counts identical: {counts_equal} over {len(ref)} (polygon, date) pairs; "
              f"max |mean difference| = {max_diff:.2e} (goal <= 1e-6: "
              f"{'met' if max_diff <= 1e-6 else 'NOT met'})")
        ok = counts_equal and max_diff <= 1e-6
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
