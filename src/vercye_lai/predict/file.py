"""Predict a stack on this machine: its blocks on worker threads (a bounded number in
flight), written by the products' writer; and every date of a region in turn.

Memory is bounded by the block, never by the region: each worker thread (kept across
dates: :func:`.lanes.worker_threads`) reads one window (aligned to the file's tiles) with
its own dataset handle, runs the network on the valid pixels and hands the result to the
main thread, which hands each product's part to that product's lanes (:mod:`.lanes`: its
writes, its overviews; one thread writing them all was the serial part on many cores).
GDAL and numpy release the GIL, so threads scale on the cores. Every product is written
to a hidden temporary file and renamed when complete, so a killed run leaves nothing a
rerun would trust; a rerun skips products that are complete and newer than their input.
Ctrl-C or SIGTERM stops the dates under way at their next block (:func:`stopping`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from vercye_lai.errors import DataIOError, DiskFullError, LaiError, error_text, gdal_reason
from vercye_lai.io import check_utf8
from vercye_lai.model import FLAG_NODATA, load_network
from vercye_lai.model.sl2p import FLAG_CALIBRATION_OUTSIDE
from vercye_lai.naming import SENSORS, find_observations
from vercye_lai.predict.kernel import BlockResult, predict_block
from vercye_lai.predict.lanes import worker_share
from vercye_lai.predict.options import PredictOptions, ProgressFn, options_for
from vercye_lai.predict.phases import NO_PHASES, Phases
from vercye_lai.predict.products import (
    Prepared,
    all_complete,
    check_model,
    gdal_env,
    prepare,
    product_paths,
    write_products,
)
from vercye_lai.stack import NegativeTally, check_physical, open_stack

log = logging.getLogger(__name__)


class Stopped(KeyboardInterrupt):
    """Raised in a date's thread when the run is stopping (Ctrl-C, SIGTERM, an error in
    the caller): the date ends at its next block, its partial products removed. Not an
    ``Exception``: no caller reports it as one date's failure and goes on."""


@dataclass
class PredictResult:
    """What :func:`predict_file` did for one input stack."""

    source: Path
    outputs: list[Path]
    status: str  # "done" | "skipped" | "failed"
    n_valid: int = 0
    n_pixels: int = 0
    seconds: float = 0.0
    error: str | None = None
    date: dt.date | None = None



def predict_file(
    src: str | Path,
    outputs: dict[str, str | Path],
    *,
    options: PredictOptions = PredictOptions(),
    progress: ProgressFn | None = None,
    phases: Phases = NO_PHASES,
    blocks_done: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> PredictResult:
    """Predict one or more variables for one input stack, block by block.

    Parameters
    ----------
    src
        Input stack (GeoTIFF or VRT), bands in the model's input order (see
        :mod:`vercye_lai.stack`). Any CRS; the outputs keep the input grid.
    outputs
        Variable → output path, e.g. ``{"LAI": Path(".../x_20m_2022-05-01_LAI.tif")}``
        (see :func:`product_paths`); these variables are predicted, whatever
        ``options.variables`` says.
    options
        The model (bundled name or coefficient path, see
        :func:`vercye_lai.model.load_network`), block size (pixels a side, rounded to the
        file's tiles), worker threads, scale/offset override, quality flags
        (``…_flags.tif`` beside each product), COG layout, overwrite.
    progress
        Called with (windows done, windows total) as blocks complete.
    phases
        Collects the seconds of each phase (:mod:`vercye_lai.predict.phases`); none by default.
    blocks_done
        Called once every block is computed, before the products' COG copies (see
        :func:`pipelined`: the next date may start then).
    stop
        Once set, no more blocks are started: :class:`Stopped` is raised (see :func:`stopping`).

    Returns
    -------
    PredictResult
        ``status`` is ``"skipped"`` when every product was already complete.

    Raises
    ------
    LaiError
        Bad input (bands, georeferencing, unreadable blocks) or unknown model/variable.
    """
    src = check_utf8(src)
    outputs = {v: check_utf8(p) for v, p in outputs.items()}
    options = options_for(src, options)
    t0 = time.perf_counter()
    networks = [load_network(options.model, v) for v in outputs]
    if not options.overwrite and all_complete(outputs, src, networks, options):
        return PredictResult(src, list(outputs.values()), "skipped")

    with gdal_env(options), open_stack(src, networks[0].inputs) as ds:
        prep = prepare(ds, src, networks, options)
        blocks = run_blocks(src, prep.windows, prep, options, phases=phases, blocks_done=blocks_done, stop=stop)
        n_valid = write_products(ds, outputs, networks, prep, blocks, options, progress, phases=phases)
        n_pixels = ds.width * ds.height
    return PredictResult(src, list(outputs.values()), "done", n_valid, n_pixels, time.perf_counter() - t0)



def calibrate_block(values: list[np.ndarray], flags: list[np.ndarray | None], data: np.ndarray,
                    prep: Prepared, uncertainty: list[np.ndarray] = ()) -> None:
    """Replace the calibrated variable's values of a block by the calibration's (in place);
    pixels outside its training domain keep the network's value and get flag bit 32. With
    ``uncertainty`` (``--uncertainty``), its σ becomes the calibration's error model's."""
    k, cal, doy = prep.calibration.index, prep.calibration.calibration, prep.calibration.doy
    v = values[k]
    x = None
    if cal.needs_bands:  # the physical inputs, as predict-table gives them
        x = (data.reshape(data.shape[0], -1).astype(np.float64) * prep.scaling.a[:, None]
             + prep.scaling.b[:, None])
    d = None if doy is None else np.full(v.size, doy)
    calibrated, outside = cal.calibrate(v.ravel(), x, d)
    values[k] = calibrated.astype(np.float32).reshape(v.shape)
    if uncertainty and prep.calibration.sigma:
        uncertainty[k] = cal.uncertainty(calibrated).astype(np.float32).reshape(v.shape)
    f = flags[k]
    if f is not None:
        f[outside.reshape(v.shape) & (f != FLAG_NODATA)] |= FLAG_CALIBRATION_OUTSIDE


def run_blocks(
    src: Path,
    windows: Sequence[Window],
    prep: Prepared,
    options: PredictOptions,
    *,
    phases: Phases = NO_PHASES,
    blocks_done: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> Iterable[BlockResult]:
    """Yield block results as they complete, with a bounded number in flight.

    Each block is checked to hold physical values first (:func:`check_physical`): a wrong
    scale fails the date instead of writing a plausible-looking product; so does an offset
    applied twice, once every block is in (:class:`NegativeTally`). ``phases``
    collects the seconds of the worker phases; ``blocks_done`` is called once the last
    block is computed and taken (the threads are free); once ``stop`` is set, no block is
    started and :class:`Stopped` is raised.
    """
    local = threading.local()
    negatives = NegativeTally(prep.scaling, prep.inputs)  # an offset applied twice: said once all are in
    handles: list[rasterio.DatasetReader] = []
    lock = threading.Lock()

    def work(window: Window) -> BlockResult | None:
        if ended.is_set():  # the call failed or was stopped while this block waited
            return None
        ds = getattr(local, "ds", None)
        if ds is None:  # one handle per thread: GDAL datasets are not thread-safe
            ds = local.ds = rasterio.open(src)
            with lock:
                handles.append(ds)
        try:
            with phases("read"):
                data = ds.read(window=window)
        except rasterio.errors.RasterioIOError as exc:
            raise DataIOError(f"cannot read block {window.col_off},{window.row_off}: {gdal_reason(exc)}", path=src) from exc
        with phases("check"):
            check_physical(data, prep.scaling, prep.inputs, prep.nodatavals, path=src)
            negatives.add(data, prep.nodatavals)
        with phases("network"):
            values, flags, n_valid, unc = predict_block(data, prep.stored, prep.nodatavals, flags=options.flags,
                                                        out_of_range=options.out_of_range, errors=prep.errors,
                                                        haze=prep.haze)
        if prep.calibration is not None:
            with phases("calibrate"):
                calibrate_block(values, flags, data, prep, unc)
        with phases("encode"):  # as stored, here on the workers (the writer's lanes then only write)
            values = [s.encode(v) for s, v in zip(prep.stores, values, strict=True)]
            unc = [s.encode(u) for s, u in zip(prep.stores, unc, strict=True)] if unc else unc
        return BlockResult(window, values, flags, n_valid, unc)

    workers = max(1, options.workers)
    max_in_flight = workers + 1  # bounds memory: a few blocks, whatever the region size
    # on the threads kept across dates (:mod:`.lanes`: each thread's GDAL set-up is paid once),
    # ``workers`` blocks at once (the one more in flight waits for its turn)
    submit = worker_share(workers)
    ended = threading.Event()
    pending: set[Future] = set()
    todo = iter(windows)

    def check() -> None:  # before each block is started or taken, and before the COG copies
        if stop is not None and stop.is_set():
            raise Stopped(f"{src.name}: stopped")

    try:
        for w in todo:
            check()
            pending.add(submit(work, w))
            if len(pending) >= max_in_flight:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    check()
                    yield f.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                check()
                yield f.result()
        negatives.check(path=src)  # before the products are complete: none is written
        check()
        if blocks_done is not None:  # every block computed and written
            blocks_done()
    finally:
        ended.set()
        for f in pending:
            f.cancel()
        wait(pending)  # the blocks under way end before their threads' handles close
        for h in handles:
            h.close()



def finishing_dates(workers: int) -> int:
    """How many dates may be making their COGs beside the blocks of the next: one per two
    workers. A date's tail (its products' COG copies, GDAL's overviews only partly threaded)
    keeps ~1.5 cores busy, while its blocks take all of them; on many cores one date's
    blocks end long before the last date's copies, so more tails must overlap."""
    return max(1, workers // 2)


def _wait_awake(what: Future | threading.Event, every: float = 0.1) -> None:
    """Wait for ``what`` (returning as soon as it is done or set), waking every ``every``
    seconds meanwhile: Python runs a signal's handler only in the main thread, which a
    signal the kernel gave another thread does not wake from a plain wait (SIGTERM was then
    seen a whole date late)."""
    if isinstance(what, threading.Event):
        while not what.wait(every):
            pass
    else:
        while not wait([what], timeout=every).done:
            pass


@contextlib.contextmanager
def stopping() -> Iterator[threading.Event]:
    """An event for :func:`predict_file`'s ``stop``, set if the block it guards raises
    (Ctrl-C, SIGTERM, an error): the dates under way then end at their next block instead
    of running to their end while the command is exiting."""
    stop = threading.Event()
    try:
        yield stop
    except BaseException:
        stop.set()
        raise


def pipelined(jobs: Iterable[Callable[[Callable[[], None]], PredictResult]], *,
              finishing: int = 1, stop: threading.Event | None = None) -> Iterator[Future]:
    """Run the dates' jobs in order, each overlapping the tails of the ones before: a job is
    called with a ``blocks_done`` callback (:func:`predict_file`'s), and the next job starts
    once it is called (or the job ended), so earlier dates' COG copies run beside the next
    date's blocks and the cores stay busy across dates.

    Memory stays bounded: one date computes its blocks (``workers + 1`` blocks) and at most
    ``finishing`` dates make their COGs (see :func:`finishing_dates`; each holds its copies'
    working buffers, a few MB, beside GDAL's cache, ``gdal_cache_mb``, which all share); a
    later date waits until the oldest is complete. Yields each job's future, in order
    (``result()`` raises what the job raised). Stop iterating to start no more jobs; the
    ones under way still finish, unless this raises (Ctrl-C, SIGTERM while it waits): then
    ``stop``, the jobs' (see :func:`stopping`), is set before waiting for them to end.
    """
    depth = 1 + max(1, finishing)
    in_flight: deque[Future] = deque()
    with ThreadPoolExecutor(depth, thread_name_prefix="date") as pool:
        try:
            for job in jobs:
                if len(in_flight) == depth:
                    _wait_awake(in_flight[0])
                    yield in_flight.popleft()
                started = threading.Event()
                fut = pool.submit(job, started.set)
                fut.add_done_callback(lambda _f, e=started: e.set())
                in_flight.append(fut)
                _wait_awake(started)
                if fut.done() and not isinstance(fut.exception(), (Exception, type(None))):
                    break  # interrupted (Ctrl-C, exit): start no later date
            while in_flight:
                _wait_awake(in_flight[0])
                yield in_flight.popleft()
        except GeneratorExit:  # the caller stopped iterating: the jobs under way finish
            raise
        except BaseException:
            if stop is not None:
                stop.set()
            raise


def predict_dir(
    s2_dir: str | Path,
    out_dir: str | Path,
    *,
    region: str,
    resolution: float = 20,
    start: dt.date | None = None,
    end: dt.date | None = None,
    options: PredictOptions = PredictOptions(),
    on_plan: Callable[[int], None] | None = None,
    on_start: Callable[[dt.date, Path], None] | None = None,
    progress: ProgressFn | None = None,
    on_done: Callable[[PredictResult], None] | None = None,
    phases: Phases = NO_PHASES,
) -> list[PredictResult]:
    """Predict every date of a region: ``{region}_{res}m_{date}[_{SENSOR}].{vrt,tif}`` in
    ``s2_dir`` → ``{region}_{res}m_{date}[_{SENSOR}]_{VAR}.tif`` in ``out_dir``: Sentinel-2
    stacks at ``resolution``, Landsat and HLS stacks at theirs (see :func:`options_for`).

    A date that fails (corrupt file, wrong bands) is reported in its result and the other
    dates still run; model/variable errors fail at once, before any date. ``on_plan`` is
    called with the number of dates found, before the first; ``on_start``, ``progress`` and
    ``on_done`` as each date runs; ``phases`` collects every date's phase seconds.

    Raises
    ------
    NoDataFoundError
        No stack for the region/resolution (and date range) in ``s2_dir``.
    ModelError
        Unknown model or variable.
    """
    check_model(options)  # fail fast on a bad model/variable, not once per date
    stacks = find_observations(s2_dir, region, resolution, sensors=SENSORS, start=start, end=end)
    if on_plan:
        on_plan(len(stacks))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    dates = list(stacks.items())

    def job(date: dt.date, src: Path, stop: threading.Event) -> Callable[[Callable[[], None]], PredictResult]:
        def run(blocks_done: Callable[[], None]) -> PredictResult:
            if on_start:
                on_start(date, src)
            return predict_file(src, product_paths(src, out_dir, options.variables), options=options,
                                progress=progress, phases=phases, blocks_done=blocks_done, stop=stop)
        return run

    # dates' COG copies overlap the next date's blocks (:func:`pipelined`); GDAL's block cache is the
    # process's, and a date's environment set it back to GDAL's default (5 % of the RAM) at its end
    # while the next date ran: held here for all of them (2 dates of 8000² peaked 1.86 GB, 0.93 one by one)
    with stopping() as stop, gdal_env(options):
        for i, fut in enumerate(pipelined((job(date, src, stop) for (date, _sensor), src in dates),
                                          finishing=finishing_dates(options.workers), stop=stop)):
            (date, _sensor), src = dates[i]
            disk_full = False
            try:
                res = fut.result()
            except (LaiError, OSError) as exc:  # an OS/GDAL error is one date's failure too
                error = error_text(exc)
                disk_full = isinstance(exc, DiskFullError)
                if disk_full:  # every later date would fail the same way (one may be under way:
                    # it ends, failing too, and is not reported; its products never appear)
                    error += f"; stopped: the {len(dates) - i - 1} later date(s) were not attempted"
                log.error("%s", error)
                res = PredictResult(src, [], "failed", error=error)
            res.date = date
            results.append(res)
            if on_done:
                on_done(res)
            if disk_full:
                break
    return results
