"""Report size and time for 1,000 fields x 40 observation dates (a 180-day season).

    python benchmarks/bench_report.py [--fields 1000] [--dates 40]

Writes a synthetic analysis folder (1,000 square fields in a GeoJSON, their STATS.csv with
40 observations between gap-filled days, a MANIFEST.json as analyze writes it) and times
``write_report`` on it; prints the page's size, its share that is Bokeh's inlined library
(the size of an empty page), and the seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make(folder: Path, n_fields: int, n_dates: int) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    rng = np.random.default_rng(0)
    side = int(np.ceil(np.sqrt(n_fields)))
    geoms = [box(500000 + 300 * (i % side), 5500000 + 300 * (i // side),
                 500000 + 300 * (i % side) + 250, 5500000 + 300 * (i // side) + 250) for i in range(n_fields)]
    names = [f"f{i:04d}" for i in range(n_fields)]
    geometry = folder / "fields.geojson"
    gpd.GeoDataFrame({"name": names}, geometry=geoms, crs="EPSG:32636").to_crs(4326).to_file(geometry)
    days = pd.date_range("2024-04-01", periods=180)
    obs_days = np.sort(rng.choice(180, n_dates, replace=False))
    zones = []
    for name in names:
        peak = rng.uniform(3, 6)
        curve = peak * np.exp(-(((np.arange(180) - 90) / 35) ** 2))
        obs = np.zeros(180, bool)
        obs[obs_days] = True
        df = pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "n_pixels": np.where(obs, 150, 0),
                           "interpolated": (~obs).astype(int), "LAI Mean": curve.round(4),
                           "LAI Median": curve.round(4), "LAI Stddev": np.where(obs, 0.3, np.nan),
                           "LAI Mean Adjusted": (curve * 1.05).round(4), "LAI Median Adjusted": (curve * 1.05).round(4),
                           "LAI Stddev Adjusted": np.where(obs, 0.3, np.nan),
                           "Cloud or Snow Percentage": np.where(obs, rng.uniform(0, 30, 180).round(1), np.nan),
                           "outlier": 0, "LAI Mean Rejected": np.nan})
        csv = f"R_fields_{name}_2024-04-01_2024-09-27_STATS.csv"
        df.to_csv(folder / csv, index=False)
        zones.append({"name": name, "csv": csv, "max_tif": None})
    (folder / "MANIFEST.json").write_text(json.dumps({
        "fingerprint": {"geometry": [str(geometry), 0, 0], "options": {"id_column": "name"}},
        "zones": zones, "n_files": n_dates, "skipped": {}}))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fields", type=int, default=1000)
    ap.add_argument("--dates", type=int, default=40)
    a = ap.parse_args()
    from vercye_lai.outputs.report import write_report

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make(root, a.fields, a.dates)
        t0 = time.perf_counter()
        page = write_report(root)
        secs = time.perf_counter() - t0
        size = page.stat().st_size
        empty = Path(tmp) / "empty"
        (empty / "a").mkdir(parents=True)
        make(empty / "a", 1, a.dates)
        base = write_report(empty).stat().st_size
    print(f"{a.fields} fields x {a.dates} observations: report.html {size / 1e6:.1f} MB "
          f"(Bokeh's inlined library and one field: {base / 1e6:.1f} MB; per field {(size - base) / a.fields / 1e3:.1f} kB), "
          f"written in {secs:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
