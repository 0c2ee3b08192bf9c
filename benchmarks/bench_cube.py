"""Cube benchmark: ``vercye-lai cube`` on a season of LAI products against reading them once.

    python benchmarks/bench_cube.py                   # 40 dates of 3000 x 3000 px
    python benchmarks/bench_cube.py --size 1000 --dates 10

Inputs: ``dates`` LAI GeoTIFFs (float32, tiled, DEFLATE, smooth random fields; cached in
``benchmarks/_work``). Each case runs in its own process: the baseline reads every date
whole with rasterio (the floor: no cube can read less); ``codec`` shuffles and deflates
(level 1) every 512² chunk on every core, reads not counted (the NetCDF's codec floor); the
cases write the NetCDF-4 cube (zlib, and the zstd option) and the Zarr cube. Printed: seconds, MB/s of raw float32 data, the ratio to the baseline, and
each process's peak RSS (VmHWM, Linux) — the cube is written one date at a time, so its
peak must stay near one date's array, not the season's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"


def make_inputs(size: int, dates: int) -> Path:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from scipy.ndimage import zoom

    folder = WORK / f"cube_{size}_{dates}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for d in range(dates):
        day = f"2023-{4 + d // 28:02d}-{1 + d % 28:02d}"
        path = folder / f"bench_20m_{day}_LAI.tif"
        if path.exists():
            continue
        coarse = rng.uniform(0, 6, (size // 50 + 2, size // 50 + 2))
        v = zoom(coarse, 50, order=1)[:size, :size].astype("float32")
        with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32",
                           crs="EPSG:32636", transform=from_origin(500000, 5500000, 20, 20), nodata=float("nan"),
                           tiled=True, blockxsize=512, blockysize=512, compress="deflate") as ds:
            ds.write(v, 1)
            ds.update_tags(VERCYE_MODEL="sl2p", VERCYE_VARIABLE="LAI")
    return folder


def _peak_mb() -> float:
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(status["VmHWM"].split()[0]) / 1024


def case(kind: str, folder: str, out: str) -> dict:
    # the libraries are imported before the clock starts, in every case: their import (once per
    # command, ~0.9 s for vercye-lai with zarr or netCDF4, 0.15 s for rasterio) is reported apart
    t_import = time.perf_counter()
    import rasterio

    if kind not in ("baseline", "codec"):
        from vercye_lai.outputs.cube import build_cube

        __import__("zarr" if out.endswith(".zarr") else "h5py")
        __import__("numcodecs" if out.endswith(".zarr") else "netCDF4")
    imports = time.perf_counter() - t_import
    t0 = time.perf_counter()
    if kind == "baseline":
        for p in sorted(Path(folder).glob("*_LAI.tif")):
            with rasterio.open(p) as ds:
                ds.read(1)
    elif kind == "codec":  # the codec alone on every core: shuffle + deflate (level 1) each 512² chunk
        import os
        import zlib
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np

        def pack(part):
            return len(zlib.compress(np.ascontiguousarray(part).view(np.uint8).reshape(-1, 4).T.tobytes(), 1))

        with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
            arrays = []
            for p in sorted(Path(folder).glob("*_LAI.tif")):
                with rasterio.open(p) as ds:
                    arrays.append(ds.read(1))
            t0 = time.perf_counter()  # the reads are the baseline's: not counted here
            for a in arrays:
                list(pool.map(pack, [a[r:r + 512, c:c + 512] for r in range(0, a.shape[0], 512)
                                     for c in range(0, a.shape[1], 512)]))
    else:
        codec = "zstd" if kind == "netcdf-zstd" else "zlib"
        build_cube(folder, out, region="bench", resolution=20, codec=codec)
    return {"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb(), "imports": imports}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=3000)
    ap.add_argument("--dates", type=int, default=40)
    ap.add_argument("--case", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case:
        print(json.dumps(case(*a.case)))
        return 0
    folder = make_inputs(a.size, a.dates)
    raw_mb = a.size * a.size * 4 * a.dates / 1e6
    results = {}
    for kind, out in (("baseline", ""), ("codec", ""), ("netcdf", str(WORK / "cube.nc")),
                      ("netcdf-zstd", str(WORK / "cube_zstd.nc")), ("zarr", str(WORK / "cube.zarr"))):
        shutil.rmtree(out, ignore_errors=True) if out.endswith(".zarr") else Path(out or WORK / "x").unlink(missing_ok=True)
        res = subprocess.run([sys.executable, __file__, "--case", kind, str(folder), out], check=True,
                             capture_output=True, text=True)
        results[kind] = json.loads(res.stdout.strip().splitlines()[-1])
    base = results["baseline"]["seconds"]
    print(f"{a.dates} dates of {a.size} x {a.size} px ({raw_mb:.0f} MB of float32 LAI), 2-core machine")
    print("| case | seconds | MB/s | ÷ baseline | peak RSS (MB) | imports before the clock (s) |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for kind, r in results.items():
        print(f"| {kind} | {r['seconds']:.1f} | {raw_mb / r['seconds']:.0f} | {r['seconds'] / base:.2f} | "
              f"{r['peak_mb']:.0f} | {r['imports']:.2f} |")
    floor = base + results["codec"]["seconds"]
    print(f"NetCDF (zlib) ÷ (read + deflate on every core, {floor:.1f} s): "
          f"{results['netcdf']['seconds'] / floor:.2f}; codec case: the deflate alone, reads not counted")
    print(f"one date's float32 array: {a.size * a.size * 4 / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
