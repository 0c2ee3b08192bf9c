"""What a date of LAI costs on disk, and in predict time, for each ``predict --dtype``.

The input is a real stack: the Irish L2A SAFE of ``../shared/data`` (tile 29UNU, 2022-10-05,
60 m, 1830 × 1830 px; 40 % of the tile outside the swath, 60 % of the rest cloud: the clear
land is ~0.5 Mpx), stacked once with ``stack-safe`` (SCL mask: none, so every pixel of the
swath is predicted, as on a clear date). Each storage then predicts it ``--repeat`` times (LAI
with its flags and uncertainty, COG); printed: the bytes of the LAI product, of its
uncertainty raster, of the date's three files, the ratio to float32, the best predict time,
and the largest difference from the float32 LAI read back (int16: half its 0.001 step; LERC:
its bound).

    python benchmarks/bench_storage.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from click.testing import CliRunner
from shapely.geometry import box, mapping

from vercye_lai.cli.main import cli
from vercye_lai.io import read_values

SAFE = (Path(__file__).resolve().parents[2] / "shared" / "data" / "s2_l2a_safe_ireland_T29UNU_20221005"
        / "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE")


def vercye(*args) -> None:
    r = CliRunner().invoke(cli, ["-q", *map(str, args)])
    if r.exit_code:
        raise SystemExit(f"vercye-lai {' '.join(map(str, args))} failed:\n{r.output}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not SAFE.exists():
        raise SystemExit(f"{SAFE}: missing (../shared/data)")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "ie.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [{
            "type": "Feature", "properties": {},
            "geometry": mapping(box(-9.1, 52.2, -7.2, 53.3))}]}))
        vercye("stack-safe", SAFE, "--geometry", t / "ie.geojson", "--region", "ie", "--res", "60",
               "-o", t / "s2", "--scl-mask", "0")
        stack = next((t / "s2").glob("ie_60m_*.tif"))
        with rasterio.open(stack) as ds:
            valid = int((ds.read(4) != ds.nodata).sum())
        print(f"stack {stack.name}: {valid / 1e6:.2f} Mpx with data; LAI + flags + uncertainty, COG, "
              f"best of {args.repeat}\n")
        print("| storage | LAI bytes | uncertainty bytes | date's 3 files | vs float32 | predict s | "
              "max abs difference from float32 |\n| --- | --- | --- | --- | --- | --- | --- |")
        base = None
        ref = None
        for dtype in ("float32", "int16", "lerc"):
            best = float("inf")
            for _ in range(args.repeat):
                out = t / dtype
                t0 = time.perf_counter()
                vercye("predict", t / "s2", out, "--region", "ie", "--res", "60", "--dtype", dtype,
                       "--uncertainty", "--overwrite")
                best = min(best, time.perf_counter() - t0)
            lai = next(out.glob("*_LAI.tif"))
            unc = next(out.glob("*_LAI_uncertainty.tif"))
            flags = next(out.glob("*_LAI_flags.tif"))
            size = lai.stat().st_size
            total = size + unc.stat().st_size + flags.stat().st_size
            with rasterio.open(lai) as ds:
                values = read_values(ds)
            if ref is None:
                ref, base = values, total
            diff = float(np.nanmax(np.abs(values - ref)))
            print(f"| {dtype} | {size / 1e6:.2f} MB | {unc.stat().st_size / 1e6:.2f} MB | {total / 1e6:.2f} MB | "
                  f"{total / base:.2f} | {best:.2f} | {diff:.5f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
