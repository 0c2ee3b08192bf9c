"""Benchmark of the predict step: speed against the I/O floor, memory against region size,
and both against a whole-raster baseline (the reference implementation's approach). One command:

    python benchmarks/bench_predict.py            # 8000 x 8000 (and 4000 x 4000) inputs
    python benchmarks/bench_predict.py --size 2000  # a quick look
    python benchmarks/bench_predict.py --table --workers 16  # issue 22's node table (8000 x 8000)

Inputs are generated once into ``benchmarks/_work`` (git-ignored): 11-band int16 stacks,
tiled 512, ZSTD, whose pixels are real Sentinel-2 spectra and angles (the Qvidja stacks in
tests/data) with small noise. Every figure is measured in this run, each case in its own
process so that its peak RSS is that case's alone (``VmHWM``: Linux carries ``ru_maxrss`` over
``exec``, so a child's would include the driver's own peak, e.g. while it generates an input).

Goals (issue 2): predict / I/O floor <= 1.25; peak RSS flat from 1x to 4x the area
(< 1.2x growth) and < 1 GB; >= 3x faster and >= 10x less memory than the baseline.

Scaling (issue 22, ``--scaling``): predict's phases (:mod:`vercye_lai.predict.phases`) with
their share of the time, on one core (pinned) and on all workers, for one stack and for a
run of dates (pipelined); the speedup, Amdahl's serial fraction, the machine's own ceiling
measured in the same run (CPU-bound processes on all cores against one), CPU use and
bytes written per product byte (``/proc/self/io`` wchar: scratch files included).
The ceiling is measured twice: a pure-Python loop in N processes, and N pinned 1-worker
predicts side by side (this work's own ceiling: memory bandwidth and shared caches count);
Amdahl's fraction is given against N cores and against that ceiling.
Goals: serial fraction <= 3 %, speedup >= 0.95 x the ceiling, bytes written near 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
QVIDJA = REPO / "tests" / "data" / "qvidja"
WORK = HERE / "_work"


# ---------------------------------------------------------------- input generation


def real_spectra() -> np.ndarray:
    """(11, n) stored int16 values of every valid pixel of the real Qvidja 20 m stacks."""
    cols = []
    for f in sorted(QVIDJA.glob("qvidja_20m_*.tif")):
        with rasterio.open(f) as ds:
            a = ds.read()
            cols.append(a[:, ~(a == ds.nodata).any(axis=0)])
    return np.concatenate(cols, axis=1)


def make_input(path: Path, size: int) -> Path:
    if path.exists():
        return path
    from vercye_lai.stack import S2_BANDS_20M, STACK_NODATA

    spectra = real_spectra()
    rng = np.random.default_rng(42)
    profile = dict(driver="GTiff", width=size, height=size, count=11, dtype="int16", nodata=STACK_NODATA,
                   crs="EPSG:32636", transform=from_origin(300000, 5600000, 20, 20), tiled=True,
                   blockxsize=512, blockysize=512, compress="zstd", zstd_level=1, predictor=2,
                   bigtiff="yes")
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **profile) as ds:
        ds.scales, ds.offsets = [1e-4] * 11, [0.0] * 11
        for i, b in enumerate(S2_BANDS_20M, 1):
            ds.set_band_description(i, b)
        for row in range(0, size, 512):
            h = min(512, size - row)
            # fields: 32 x 32 px patches of one real spectrum, plus 2 % noise
            pick = rng.integers(0, spectra.shape[1], ((h + 31) // 32, (size + 31) // 32))
            patch = np.repeat(np.repeat(pick, 32, 0), 32, 1)[:h, :size]
            block = spectra[:, patch].astype(np.float32)
            block[3:] *= rng.normal(1.0, 0.02, block[3:].shape).astype(np.float32)
            block = np.round(block).astype(np.int16)
            block[:, rng.random((h, size)) < 0.05] = STACK_NODATA  # 5 % clouds
            ds.write(block, window=rasterio.windows.Window(0, row, size, h))
    tmp.rename(path)
    return path


# ---------------------------------------------------------------- the cases (child side)


def case_predict(src: Path, out: Path, workers: int, *, cog: bool, flags: bool) -> None:
    from vercye_lai.predict import PredictOptions, predict_file

    predict_file(src, {"LAI": out}, options=PredictOptions(workers=workers, cog=cog, flags=flags, overwrite=True))


def case_iofloor(src: Path, out: Path, workers: int, *, cog: bool = False) -> None:
    """Read every block of the input and write a same-sized float32 output with the same
    windows and threads as predict: the time no LAI step can beat. ``cog``: through
    predict's own product writer (the same COG with overviews), else a plain tiled GeoTIFF.
    Blocks in flight are bounded as in predict."""
    import threading
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from vercye_lai.grid import Grid
    from vercye_lai.predict import PredictOptions
    from vercye_lai.predict.products import block_windows, gdal_env
    from vercye_lai.predict.writer import BlockWriter, product_writer

    local = threading.local()

    def read(w):
        if not hasattr(local, "ds"):
            local.ds = rasterio.open(src)
        a = local.ds.read(window=w)
        return w, a[3].astype(np.float32) * np.float32(1e-4)  # a same-sized float32 result

    def blocks(windows):
        with ThreadPoolExecutor(workers) as pool:
            pending = set()
            for w in windows:
                pending.add(pool.submit(read, w))
                if len(pending) > workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (f.result() for f in done)
            yield from (f.result() for f in pending)

    with gdal_env(PredictOptions(workers=workers)), rasterio.open(src) as ds:  # predict's GDAL settings
        windows = block_windows(ds, 1024)
        with contextlib.ExitStack() as stack:
            if cog:
                dst = stack.enter_context(product_writer(out, ds, "float32", float("nan"), cog=True, tags={},
                                                         description="floor", threads=workers))
            else:
                profile = Grid.of(ds).profile(dtype="float32", nodata=float("nan"), always_tiled=True,
                                              predictor=3)
                dst = stack.enter_context(BlockWriter(stack.enter_context(rasterio.open(out, "w", **profile))))
            for w, a in blocks(windows):
                dst.write(a, w)


def case_baseline(src: Path, out: Path) -> None:
    """The reference implementation's way: read the whole raster, normalise, run the network on all pixels at
    once in float64, write the whole result."""
    from vercye_lai.model.registry import _WEIGHTS, MODELS, parse_leaf_csv

    net = parse_leaf_csv(Path(str(_WEIGHTS / MODELS["sl2p"][1])))[0]  # LAI row
    scale, offset, w1, b1 = net["in_scale"], net["in_offset"], net["w1"], net["b1"]
    w2, b2, ow, ob = net["w2"], net["b2"], net["out_w"], net["out_b"]
    with rasterio.open(src) as ds:
        data = ds.read().astype(np.float64)
        profile = dict(ds.profile, count=1, dtype="float32", nodata=float("nan"), predictor=3)
    mask = (data == -32768).any(axis=0)
    x = data.reshape(11, -1).T * 1e-4
    x = x * scale + offset
    h = np.tanh(x @ w1.reshape(5, -1).T + b1)
    lai = ((h @ w2 + b2[0] - ob[0]) / ow[0]).reshape(mask.shape)
    lai[mask] = np.nan
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(lai.astype(np.float32), 1)


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB: ``VmHWM`` of its own address space (reset by
    ``exec``, unlike ``ru_maxrss``), or ``ru_maxrss`` where there is no ``/proc``."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def written_bytes() -> int:
    """Bytes this process passed to write calls so far (scratch files included)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def cpu_phases():
    """A :class:`~vercye_lai.predict.phases.Phases` that also sums each thread's CPU seconds
    per phase (``cpu[(thread, phase)]``; a thread is numbered when it first times a phase) and
    notes when the last block phase ended (``blocks_end``, ``time.perf_counter``)."""
    import itertools
    import threading

    from vercye_lai.predict.phases import Phases

    class CpuPhases(Phases):
        def __init__(self) -> None:
            super().__init__()
            self.cpu: dict[tuple[int, str], float] = {}
            self.blocks_end = 0.0
            self._local, self._ids = threading.local(), itertools.count()

        @contextlib.contextmanager
        def __call__(self, phase):
            c0 = time.thread_time()
            try:
                with super().__call__(phase):
                    yield
            finally:
                c = time.thread_time() - c0
                if not hasattr(self._local, "id"):
                    self._local.id = next(self._ids)
                with self._lock:
                    key = (self._local.id, phase)
                    self.cpu[key] = self.cpu.get(key, 0.0) + c
                    if phase in BLOCK_PHASES:
                        self.blocks_end = max(self.blocks_end, time.perf_counter())

    return CpuPhases()


#: the phases of the product writer's lanes (each product's writes, its overviews): serial per product
LANE_PHASES = ("write", "overviews")
#: the phases of the block work, shared by the workers
BLOCK_PHASES = ("read", "check", "network", "calibrate", "encode")


def serial_path(cpu: dict, dates: int) -> dict:
    """The writer's CPU seconds per date: its busiest lane (one product's writes or overviews:
    the path no worker count shortens), what one writer thread did before the lanes (every
    product's encoding, writes and overviews), and the blocks' (read, check, network,
    calibrate, encode: shared by the workers)."""
    lanes = {(thread, phase): c for (thread, phase), c in cpu.items() if phase in LANE_PHASES}
    busiest = max(lanes, key=lanes.get, default=(0, "none"))
    blocks = sum(c for (_t, phase), c in cpu.items() if phase in BLOCK_PHASES)
    # before the lanes, one writer thread also encoded every product's values (now on the workers)
    encode = sum(c for (_t, phase), c in cpu.items() if phase == "encode")
    return {"lane": lanes.get(busiest, 0.0), "lane_phase": busiest[1],
            "writer": (sum(lanes.values()) + encode) / dates, "blocks": blocks / dates}


def case_phases(src: Path, out: Path, workers: int, dates: int) -> dict:
    """Predict ``src`` (``dates`` > 1: that many copies of it as the dates of a region,
    through predict_dir) with default options, timing the phases."""
    from vercye_lai.predict import PredictOptions, predict_dir, predict_file

    phases = cpu_phases()
    options = PredictOptions(workers=workers, overwrite=True)
    # products made for the first time, as a run makes them: replacing the last repeat's
    # would time the file system freeing them (14 ms for a 4000² date's 33 MB, measured)
    made = ([out, out.with_name(out.stem + "_flags.tif")] if dates == 1
            else list((out.parent.parent / "lai").glob("*.tif")))
    for f in made:
        f.unlink(missing_ok=True)
    w0, c0 = written_bytes(), os.times()
    t0 = time.perf_counter()
    if dates == 1:
        predict_file(src, {"LAI": out}, options=options, phases=phases)
        products = [out, out.with_name(out.stem + "_flags.tif")]
    else:  # the dates are links to one stack: the same work per date
        results = predict_dir(src.parent / "dates", out.parent / "lai", region="bench", options=options,
                              phases=phases)
        products = [p for r in results for o in r.outputs for p in (o, o.with_name(o.stem + "_flags.tif"))]
    end, c1 = time.perf_counter(), os.times()
    wall = end - t0
    product_bytes = sum(p.stat().st_size for p in products)
    return {"wall": wall, "tail": end - phases.blocks_end, "cpu": c1.user + c1.system - c0.user - c0.system,
            "phases": phases.seconds,
            "written": written_bytes() - w0, "product_bytes": product_bytes,
            "serial": serial_path(phases.cpu, dates)}


def burn(seconds: float) -> float:
    """Pure-Python CPU work for about ``seconds`` on one core; returns the work rate."""
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        for _ in range(10000):
            n += 1
    return n / (time.perf_counter() - t0)


def ceiling(cores: int, seconds: float = 2.0) -> float:
    """How many times one process's CPU-bound rate ``cores`` processes reach together, here
    and now (a shared or throttled machine gives less than ``cores``)."""
    import multiprocessing as mp

    one = burn(seconds)
    with mp.Pool(cores) as pool:
        rates = pool.map(burn, [seconds] * cores)
    return sum(rates) / one


def workload_ceiling(src: Path, cores: int) -> float:
    """How many times one pinned 1-worker predict's rate ``cores`` of them reach side by
    side, each pinned to its own core: the machine's ceiling for this very work (memory
    bandwidth, shared caches and clocks included), which a pure-Python loop overstates."""
    alone = run_phases(src, 1, 1, True, 1)["wall"]
    procs = []
    for k in range(cores):
        out = WORK / "phases" / f"ceiling_{k}" / "bench_LAI.tif"
        out.parent.mkdir(parents=True, exist_ok=True)
        procs.append(subprocess.Popen([sys.executable, __file__, "--child", f"phases-1-pin{k}", str(src), str(out), "1"],
                                      stdout=subprocess.PIPE, text=True))
    walls = [json.loads(p.communicate()[0].strip().splitlines()[-1])["wall"] for p in procs]
    return sum(alone / w for w in walls)


def thread_startup(src: Path, threads: int = 16) -> tuple[float, float]:
    """Wall seconds for ``threads`` new threads to open ``src`` at once, then for the same
    threads to open it again: a thread's first georeferenced open sets up GDAL's per-thread
    PROJ context (not in parallel: measured serial), which predict's kept worker threads
    (:func:`vercye_lai.predict.lanes.worker_threads`) pay once per process, not per date."""
    import threading
    from concurrent.futures import ThreadPoolExecutor, wait

    rasterio.open(src).close()  # the process's own first open (drivers) is not a thread's
    walls = []
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(2):
            start = threading.Barrier(threads + 1)

            def one() -> None:
                start.wait()
                rasterio.open(src).close()

            futures = [pool.submit(one) for _ in range(threads)]
            start.wait()
            t0 = time.perf_counter()
            wait(futures)
            walls.append(time.perf_counter() - t0)
    return walls[0], walls[1]


def child(args: list[str]) -> None:
    mode, src, out, workers = args[0], Path(args[1]), Path(args[2]), int(args[3])
    import vercye_lai.model  # noqa: F401  (imports are not part of the timed work)
    import vercye_lai.predict  # noqa: F401
    from vercye_lai.system import available_cores, limit_malloc_arenas

    if "-pin" in mode:  # phases-{dates}-pin{k}: on the k-th core
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[int(mode.split("-pin")[1] or 0)]})
    limit_malloc_arenas(available_cores())  # as the command line does (after the pinning)
    if mode.startswith("phases"):  # phases-{dates}[-pin{k}]
        res = case_phases(src, out, workers, int(mode.split("-")[1]))
        res["rss_mb"] = peak_rss_mb()
        print(json.dumps(res))
        return
    t0 = time.perf_counter()
    if mode.startswith("predict"):  # predict[-noflags][-nocog]
        case_predict(src, out, workers, cog="nocog" not in mode, flags="noflags" not in mode)
    elif mode.startswith("iofloor"):  # iofloor[-cog]
        case_iofloor(src, out, workers, cog=mode.endswith("cog"))
    elif mode == "baseline":
        case_baseline(src, out)
    secs = time.perf_counter() - t0
    rss_mb = peak_rss_mb()
    print(json.dumps({"seconds": secs, "rss_mb": rss_mb}))


# ---------------------------------------------------------------- the driver


def measure(mode: str, src: Path, workers: int, repeat: int = 1) -> dict:
    best = None
    for _ in range(repeat):
        out = WORK / f"out_{mode}_{src.stem}.tif"
        r = subprocess.run([sys.executable, __file__, "--child", mode, str(src), str(out), str(workers)],
                           capture_output=True, text=True, check=True)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        out.unlink(missing_ok=True)
        if best is None or res["seconds"] < best["seconds"]:
            best = {**res, "rss_mb": max(res["rss_mb"], best["rss_mb"] if best else 0)}
    return best


def run_phases(src: Path, workers: int, dates: int, pin: bool, repeat: int) -> dict:
    """The best of ``repeat`` runs of :func:`case_phases`, each in its own process."""
    best = None
    for _ in range(repeat):
        out = WORK / "phases" / "bench_LAI.tif"
        out.parent.mkdir(exist_ok=True)
        mode = f"phases-{dates}" + ("-pin" if pin else "")
        r = subprocess.run([sys.executable, __file__, "--child", mode, str(src), str(out), str(workers)],
                           capture_output=True, text=True, check=True)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        if best is None or res["wall"] < best["wall"]:
            best = res
    return best


def scaling(src: Path, workers: int, dates: int, repeat: int) -> None:
    """Per-phase shares at one core and at ``workers``, speedup, serial fraction, ceiling."""
    from vercye_lai.predict.phases import PHASES

    folder = src.parent / "dates"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():  # links of an earlier run with more dates
        old.unlink()
    for i in range(dates):
        link = folder / f"bench_20m_2022-06-{i + 1:02d}.tif"
        if not link.exists():
            link.symlink_to(src)
    ceil = ceiling(workers)
    print(f"\nmachine ceiling: {workers} CPU-bound processes run {ceil:.2f}x one (measured now)")
    work_ceil = workload_ceiling(src, workers)
    print(f"this work's ceiling: {workers} pinned 1-worker predicts side by side run {work_ceil:.2f}x one")
    fresh, kept = thread_startup(src)
    print(f"thread start-up: 16 new threads open the stack at once in {fresh * 1000:.0f} ms (GDAL's per-thread "
          f"set-up, one at a time), the same threads again in {kept * 1000:.0f} ms: predict keeps its threads "
          f"across dates (started anew for each, 16 workers would spend {fresh * 1000:.0f} ms of every date on it)")
    print("shares: of all threads' phase seconds (thread-seconds, so overlapping phases add up)")
    for n_dates in (1, dates):
        one = run_phases(src, 1, n_dates, True, repeat)
        many = run_phases(src, workers, n_dates, False, repeat)
        what = "one stack (predict_file)" if n_dates == 1 else f"{n_dates} dates (predict_dir, pipelined)"
        print(f"\n{what}, CLI defaults (COG + flags):")
        print(f"  {'phase':10s} {'1 core s':>9s} {'share':>6s} {workers:>3d} workers s {'share':>6s}")
        t1, tn = sum(one["phases"].values()), sum(many["phases"].values())
        for ph in PHASES:
            if ph in one["phases"] or ph in many["phases"]:
                a, b = one["phases"].get(ph, 0.0), many["phases"].get(ph, 0.0)
                print(f"  {ph:10s} {a:9.2f} {a / t1:6.0%} {b:13.2f} {b / tn:6.0%}")
        speedup = one["wall"] / many["wall"]
        serial = (workers / speedup - 1) / (workers - 1) if workers > 1 else 0.0
        # Amdahl's fraction again, with the cores this work can use side by side as the N
        serial_work = (work_ceil / speedup - 1) / (work_ceil - 1) if work_ceil > 1 else 0.0
        print(f"  wall: 1 core {one['wall']:.2f} s, {workers} workers {many['wall']:.2f} s: speedup {speedup:.2f}x "
              f"(machine ceiling {ceil:.2f}x, {speedup / ceil:.0%} of it; this work's {work_ceil:.2f}x, "
              f"{speedup / work_ceil:.0%} of it)")
        print(f"  Amdahl serial fraction {serial:.1%} [<= 3 %] (against this work's ceiling: {serial_work:.1%}); "
              f"CPU use {many['cpu'] / many['wall'] / workers:.0%} of {workers} cores [>= 90 %]; "
              f"peak RSS {one['rss_mb']:.0f} / {many['rss_mb']:.0f} MB")
        sp = one["serial"]  # CPU seconds on one core: no other thread's waits in them
        if n_dates == 1:
            # what runs after the last block cannot overlap its own date's blocks (a COG's overviews
            # precede its full-resolution tiles); across dates the next date's blocks hide it
            print(f"  after the last block: {many['tail']:.3f} s of {many['wall']:.2f} s ({many['tail'] / many['wall']:.0%}) "
                  f"at {workers} workers, {one['tail']:.3f} s at 1 core: the date's COGs (the last band's "
                  f"overviews, the last tiles' compression, the files written out; GDAL's copies before)")
            idle = workers * many["wall"] - many["cpu"]
            print(f"  cores idle at {workers} workers: {idle:.3f} core-s of {workers * many['wall']:.2f} "
                  f"(CPU {many['cpu']:.2f} s there, {one['cpu']:.2f} s on 1 core: "
                  f"{many['cpu'] / one['cpu'] - 1:+.0%} for the same work side by side)")
        if n_dates == 1:  # (pipelined on one core, a lane's CPU seconds include its cache misses after others)
            print(f"  writer: busiest lane ({sp['lane_phase']}) {sp['lane']:.3f} CPU-s (one writer thread did "
                  f"{sp['writer']:.3f}: every product's encoding, writes, overviews), blocks {sp['blocks']:.2f}: the blocks set the "
                  f"pace up to {sp['blocks'] / max(sp['lane'], 1e-9):.0f} workers (with one writer thread: "
                  f"{sp['blocks'] / max(sp['writer'], 1e-9):.0f})")
        print(f"  bytes written per product byte: {one['written'] / one['product_bytes']:.2f} "
              f"({one['written'] / 1e6:.0f} MB for {one['product_bytes'] / 1e6:.0f} MB of products)")
    print(f"\nmachine ceiling again, after the cases: {ceiling(workers):.2f}x")


def node_table(src: Path, workers: int, repeat: int) -> None:
    """Issue 22's table: one stack predicted with default options (COG, flags) at 1, 2, 4, …
    and ``workers`` workers, then at ``workers`` with ``--no-cog --no-flags``; each case in a
    fresh process, the best of ``repeat``. Goal: ``workers`` = 16 runs >= 10x one worker."""
    counts = sorted({1 << k for k in range(workers.bit_length()) if 1 << k <= workers} | {workers})
    secs = {n: measure("predict", src, n, repeat)["seconds"] for n in counts}
    plain = measure("predict-noflags-nocog", src, workers, repeat)["seconds"]
    with rasterio.open(src) as ds:
        print(f"input: {src.name} ({ds.width} x {ds.height} px, 11 bands); cpus available: "
              f"{len(os.sched_getaffinity(0))}")
    print("| workers | " + " | ".join(str(n) for n in counts) + f" | {workers}, `--no-cog --no-flags` |")
    print("|---|" + "---|" * (len(counts) + 1))
    print("| seconds | " + " | ".join(f"{secs[n]:.1f}" for n in counts) + f" | {plain:.1f} |")
    print("| speed-up | " + " | ".join(f"{secs[1] / secs[n]:.2f}x" for n in counts) + f" | {secs[1] / plain:.2f}x |")
    if 16 in secs:
        print(f"16 workers / 1 worker: {secs[1] / secs[16]:.1f}x [>= 10x]")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=8000, help="side of the large (4x) input, pixels")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--repeat", type=int, default=2, help="runs per timed case (best is kept)")
    p.add_argument("--no-baseline", action="store_true", help="skip the slow whole-raster baseline")
    p.add_argument("--scaling", action="store_true",
                   help="only the phases, speedup and serial fraction (issue 22), on the 1x input")
    p.add_argument("--dates", type=int, default=6, help="dates of the pipelined run (--scaling)")
    p.add_argument("--table", action="store_true",
                   help="only issue 22's node table: seconds of one --size stack at 1, 2, 4, ... workers "
                        "(CLI defaults) and at all of them with --no-cog --no-flags")
    a = p.parse_args()
    WORK.mkdir(exist_ok=True)
    if a.table:
        return node_table(make_input(WORK / f"bench_{a.size}.tif", a.size), a.workers, a.repeat)
    if a.scaling:
        src = make_input(WORK / f"bench_{a.size // 2}.tif", a.size // 2)
        print(f"input: {src.name} ({a.size // 2}^2 px, 11 bands); workers={a.workers}; cpus={os.cpu_count()}")
        return scaling(src, a.workers, a.dates, a.repeat)
    small = make_input(WORK / f"bench_{a.size // 2}.tif", a.size // 2)
    large = make_input(WORK / f"bench_{a.size}.tif", a.size)
    print(f"inputs: {large.name} ({a.size}^2 px, 11 bands) and {small.name}; workers={a.workers}; "
          f"cpus={os.cpu_count()}")

    floor = measure("iofloor", large, a.workers, a.repeat)
    floor_cog = measure("iofloor-cog", large, a.workers, a.repeat)
    pred_default = measure("predict", large, a.workers, a.repeat)
    pred = measure("predict-noflags", large, a.workers, a.repeat)
    pred_nocog = measure("predict-noflags-nocog", large, a.workers, a.repeat)
    pred_small = measure("predict-noflags", small, a.workers, 1)
    mpx = a.size * a.size / 1e6
    rows = [
        ("I/O floor (read input + write 1 float32 tif)", floor),
        ("I/O floor, COG output (same writer as predict)", floor_cog),
        ("predict LAI, COG (--no-flags)", pred),
        ("predict LAI, plain tiled tif (--no-flags --no-cog)", pred_nocog),
        ("predict LAI + flags raster, COG (CLI default)", pred_default),
        (f"predict at 1x area ({a.size // 2}^2, --no-flags)", pred_small),
    ]
    base = None
    if not a.no_baseline:
        base = measure("baseline", small, 1, 1)
        pred_small_cmp = pred_small
        rows.append((f"whole-raster baseline at 1x area ({a.size // 2}^2)", base))
    print(f"\n{'case':52s} {'seconds':>9s} {'Mpix/s':>8s} {'peak RSS MB':>12s}")
    for name, r in rows:
        px = mpx / 4 if "1x" in name else mpx
        print(f"{name:52s} {r['seconds']:9.2f} {px / r['seconds']:8.1f} {r['rss_mb']:12.0f}")
    print("\nratios (goal in brackets):")
    print(f"  (a) predict / I/O floor, plain tiled   {pred_nocog['seconds'] / floor['seconds']:6.2f}  [<= 1.25]")
    print(f"      predict / I/O floor, both COG      {pred['seconds'] / floor_cog['seconds']:6.2f}  [<= 1.25]")
    print(f"      COG predict / plain floor          {pred['seconds'] / floor['seconds']:6.2f}")
    print(f"      + flags raster (CLI default) / COG floor {pred_default['seconds'] / floor_cog['seconds']:6.2f}")
    print(f"  (b) peak RSS 4x area / 1x area        {pred['rss_mb'] / pred_small['rss_mb']:6.2f}  [< 1.2]"
          f"   (4x: {pred['rss_mb']:.0f} MB [< 1000])")
    if base:
        print(f"  (c) baseline time / predict time      {base['seconds'] / pred_small_cmp['seconds']:6.2f}  [>= 3]")
        print(f"      baseline RSS / predict RSS        {base['rss_mb'] / pred_small_cmp['rss_mb']:6.2f}  [>= 10]")


if __name__ == "__main__":
    main()
