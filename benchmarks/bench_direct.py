"""The direct route (``predict-stac``: STAC items → Dask chunks → SL2P → products) against stack-then-predict
(``stack-stac`` + ``predict``) on the same static STAC catalogue: wall time, bytes written, and
the direct route's peak RSS as the area grows 4×.

The catalogue is the tests' (``tests/conftest.py``: the Irish L2A product of ``../shared/data``,
tile 29UNU, 2022-10-05, its 60 m JP2 bands, SCL and MTD_TL.xml as the assets), read at 20 m
over a square of ``--side`` km and one of twice that side (4× the area). Each route runs in a
fresh process (local threads, ``--workers``; chunks of ``--chunk`` px) so that its peak RSS is
its own; LAI + flags, int16 COG (the defaults), cloud buffer 2.

With ``--cluster``, predict-stac also runs on a Dask ``LocalCluster`` of ``--workers`` processes (one
thread each) beside its local threads: on a cluster the tasks of a date on one worker share that
process's open assets: each task reopening and re-decoding them made the cluster 1.62-1.71x the
threads' time on 2 cores, now 1.21-1.29x (the driver, writing the products, shares the cores with
the workers; measured). Its peak RSS is the driver's alone.

    python benchmarks/bench_direct.py [--side 27.5] [--chunk 512] [--workers 2] [--cluster]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import datetime as dt, json, sys, time
from pathlib import Path
sys.path[:0] = [{tests!r}, {benchmarks!r}]
from bench_predict import peak_rss_mb  # this process's own peak (VmHWM), as bench_predict measures it
from conftest import UTM, make_catalog, make_item
from rasterio.warp import transform_geom
from shapely.geometry import box, shape
from vercye_lai.acquire import stac
from vercye_lai.predict import PredictOptions, predict_dir
from vercye_lai.predict.direct import predict_stac

route, tmp, x0, y1, side, chunk, workers = sys.argv[1:]
tmp, side = Path(tmp), float(side) * 1000
cat = tmp / "cat" / "catalog.json"
if not cat.exists():
    make_catalog(tmp / "cat", [make_item("S2A_T29UNU_20221005")])
geom = shape(transform_geom(UTM, "EPSG:4326", box(float(x0), float(y1) - side, float(x0) + side, float(y1)).__geo_interface__))
kw = dict(catalog=str(cat), region="ie", geometry=geom, start=dt.date(2022, 10, 1), end=dt.date(2022, 10, 10),
          resolution=20, crs=UTM, cloud_buffer=2)
options = PredictOptions(workers=int(workers), overwrite=True)
out = tmp / route
t0 = time.perf_counter()
if route == "stack":
    stac.stack_stac(out_dir=out / "stacks", block=int(chunk), **kw)
    predict_dir(out / "stacks", out / "lai", region="ie", resolution=20, options=options)
elif route == "cluster":
    import importlib

    import distributed
    with distributed.LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True) as cluster, \
            distributed.Client(cluster) as client:
        client.run(importlib.import_module, "vercye_lai.predict.direct")  # the workers' imports: start-up too
        t0 = time.perf_counter()  # the cluster's start-up is not the route's
        (res,) = predict_stac(out_dir=out / "lai", options=options, chunk=int(chunk), client=client, **kw)
        seconds = time.perf_counter() - t0
else:
    (res,) = predict_stac(out_dir=out / "lai", options=options, chunk=int(chunk), **kw)
seconds = seconds if route == "cluster" else time.perf_counter() - t0
written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
print(json.dumps({{"seconds": seconds, "bytes": written, "rss_mb": peak_rss_mb()}}))
"""


def run(route: str, tmp: Path, x0: float, y1: float, side: float, chunk: int, workers: int) -> dict:
    code = CHILD.format(tests=str(ROOT / "tests"), benchmarks=str(ROOT / "benchmarks"))
    r = subprocess.run([sys.executable, "-c", code, route, str(tmp), str(x0), str(y1), str(side), str(chunk),
                        str(workers)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{route} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=float, default=27.5, help="km a side of the 1x square (20 m pixels)")
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cluster", action="store_true", help="also predict-stac on a LocalCluster of --workers processes")
    args = ap.parse_args()
    x0, y1 = 505000.0, 5860000.0  # the square's upper-left corner in the tile (EPSG:32629)
    print(f"{'area':>6} {'Mpx':>6} {'route':>16} {'wall s':>8} {'MB written':>11} {'peak RSS MB':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for factor in (1, 2):
            side = args.side * factor
            mpx = (side * 1000 / 20) ** 2 / 1e6
            routes = [("stack", "stack + predict"), ("direct", "predict-stac")]
            routes += [("cluster", "on a cluster")] if args.cluster else []
            seconds = {}
            for route, label in routes:
                m = run(route, Path(tmp) / f"{route}{factor}", x0, y1, side, args.chunk, args.workers)
                seconds[route] = m["seconds"]
                print(f"{factor * factor:>5}x {mpx:>6.2f} {label:>16} {m['seconds']:>8.1f} "
                      f"{m['bytes'] / 1e6:>11.1f} {m['rss_mb']:>12.0f}", flush=True)
            if args.cluster:
                print(f"       predict-stac on {args.workers} worker processes / on {args.workers} threads: "
                      f"{seconds['cluster'] / seconds['direct']:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
