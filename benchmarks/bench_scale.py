"""Scale-out benchmark: the same predict workload on a Dask LocalCluster of 1 and 2 workers.

    python benchmarks/bench_scale.py                  # 3 dates of 3000 x 3000 px
    python benchmarks/bench_scale.py --size 2000 --dates 4 --workers 1 2 4

Inputs come from ``bench_predict.make_input`` (real Sentinel-2 spectra and angles, tiled
512, int16, cached in ``benchmarks/_work``). Each case starts a fresh cluster of N worker
processes (one thread each, GDAL/BLAS single-threaded, as ``vercye-lai run`` does), runs
the predict step of a run config on it (dates split into part tasks, assembled per date)
and reports the wall time, the speed-up over 1 worker, and each worker process's RSS
before the run and its peak during it (VmHWM, reset just before the run; Linux).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_predict import WORK, make_input  # noqa: E402  (the generator of bench_predict)

REGION = "bench"


def _rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS since the last reset) of this process, MB (Linux /proc)."""
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def _reset_peak() -> tuple[float, float]:
    """Start a new peak-RSS measurement in this process (writing 5 to clear_refs resets VmHWM)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _rss_mb()


def inputs(size: int, dates: int) -> Path:
    """``dates`` stacks ``bench_20m_2023-06-DD.tif`` of ``size`` px a side (generated once)."""
    folder = WORK / f"scale_{size}"
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(1, dates + 1):
        make_input(folder / f"{REGION}_20m_2023-06-{d:02d}.tif", size)
    return folder


def run_case(stacks: Path, out: Path, n_workers: int, dates: int, part_pixels: int) -> dict:
    import distributed

    from vercye_lai.run import parse_config, run_pipeline
    from vercye_lai.run.executor import DaskExecutor, DaskSettings, worker_env

    shutil.rmtree(out, ignore_errors=True)
    cfg = parse_config({
        "output_root": str(out), "resolution": 20,
        "regions": [{"name": REGION, "start_date": "2023-06-01", "end_date": f"2023-06-{dates:02d}"}],
        "source": {"kind": "local", "path": str(stacks)},
        "predict": {"part_pixels": part_pixels},
        "executor": {"kind": "dask"},
    })
    settings = DaskSettings(n_workers=n_workers)
    with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", env=worker_env(settings.gdal_cache_mb)) as cluster, \
            distributed.Client(cluster) as client:
        ex = DaskExecutor(settings, client=client)
        base = client.run(_reset_peak)
        t0 = time.perf_counter()
        summary = run_pipeline(cfg, only=["predict"], executor=ex, write_summary=False)
        seconds = time.perf_counter() - t0
        peak = client.run(_rss_mb)
    assert summary.ok, summary.to_dict()
    return {"workers": n_workers, "seconds": seconds, "dates": summary.steps[0].count("done"),
            "worker_rss_start_mb": sorted(b[0] for b in base.values()),
            "worker_peak_rss_mb": sorted(p[1] for p in peak.values())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=3000, help="side of each input stack, pixels")
    p.add_argument("--dates", type=int, default=3, help="number of dates (input stacks)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="cluster sizes to compare")
    p.add_argument("--part-pixels", type=int, default=4 * 1024 * 1024, help="pixels per part task")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()

    stacks = inputs(args.size, args.dates)
    mpx = args.size * args.size * args.dates / 1e6
    print(f"workload: {args.dates} dates x {args.size} x {args.size} px = {mpx:.0f} Mpx, "
          f"part tasks of {args.part_pixels / 1e6:.1f} Mpx")
    results = [run_case(stacks, WORK / f"scale_out_{n}", n, args.dates, args.part_pixels) for n in args.workers]
    t1 = results[0]["seconds"] * results[0]["workers"]  # normalised to one worker
    print(f"{'workers':>7} {'seconds':>8} {'Mpx/s':>7} {'speed-up':>8}  RSS per worker, MB (idle -> peak)")
    for r in results:
        r["speedup"] = results[0]["seconds"] / r["seconds"]
        r["efficiency"] = t1 / (r["seconds"] * r["workers"])
        peaks = ", ".join(f"{a:.0f} -> {b:.0f}" for a, b in zip(r["worker_rss_start_mb"], r["worker_peak_rss_mb"]))
        print(f"{r['workers']:>7} {r['seconds']:>8.2f} {mpx / r['seconds']:>7.1f} {r['speedup']:>7.2f}x  {peaks}")
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "dates": args.dates, "results": results}, indent=2))


if __name__ == "__main__":
    main()
