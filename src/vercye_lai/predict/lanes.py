"""Predict's threads: lanes (one thread running the calls handed to it in order, a bounded
number waiting) and the process's worker threads, kept from one date to the next.

Predict's writer hands each product's blocks to lanes of their own (its GDAL writes, its
overviews), so that the thread collecting the blocks only hands work out: on one thread
that work was serial, 0.16–0.19 CPU-s of a 16 Mpx date's 1.3 (its overviews 0.09–0.12,
measured), which on 16 cores would have taken longer than the blocks themselves. One
product's calls stay in order on one thread (a GDAL dataset is not thread-safe; an
overview level needs its rows top to bottom); products run beside each other.

The blocks and the COG copies run on :func:`worker_threads`, kept for the process: a
thread's first open of a georeferenced file costs 8–20 ms, and threads pay it one at a
time (GDAL gives each thread its own PROJ context, which looks the CRS up in ``proj.db``;
16 new threads at once: 130–150 ms of wall time for as much CPU, measured), now once per
thread instead of once per thread and date: on 16 workers that was ~0.14 s of every date.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import rasterio

__all__ = ["Lane", "worker_share", "worker_threads"]

_pools: dict[str, ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()


def worker_threads(purpose: str = "predict") -> ThreadPoolExecutor:
    """The process's worker threads for ``purpose`` (``predict``: block reads and networks,
    COG copies; ``encode``: COG tiles' compression, :mod:`.cog`), kept across dates and calls.
    Callers bound their own concurrency (tasks in flight, a semaphore): a pool only grows, on
    demand, to what the callers running at once ask for, and an idle thread is reused before
    a new one starts, so calls one after another run on the same threads.
    """
    with _pool_lock:
        if purpose not in _pools:
            # a cap far above what callers keep in flight (each bounds its own): never the limit
            _pools[purpose] = ThreadPoolExecutor(max(64, 8 * (os.cpu_count() or 1)), thread_name_prefix=purpose,
                                                 initializer=_hold_gdal_env)
        return _pools[purpose]


def _hold_gdal_env() -> None:
    """Give a kept thread one GDAL environment for its life: a dataset opened in a thread
    without one starts (and ends) its own, and every start resets PROJ's search paths for
    every thread of the process (the COG tiles' compressions open several a date)."""
    rasterio.Env().__enter__()


def worker_share(workers: int) -> Callable[..., Future]:
    """A ``submit`` onto :func:`worker_threads` that runs at most ``workers`` of its calls at
    once (one caller's share; a call beyond it waits on its thread, not in the queue)."""
    running = threading.Semaphore(max(1, workers))

    def call(fn: Callable[..., object], args: tuple) -> object:
        with running:
            return fn(*args)

    def submit(fn: Callable[..., object], *args: object) -> Future:
        return worker_threads().submit(call, fn, args)

    return submit


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool there."""
    global _pools, _pool_lock
    _pools, _pool_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


class Lane:
    """Run calls in order on one thread of its own; at most ``depth`` wait (a caller
    handing out more waits for one to finish: the blocks they hold bound the memory).

    The first call that raises stops the lane: the calls after it are not run, and
    :meth:`submit` and :meth:`close` raise its exception.
    """

    def __init__(self, name: str, *, depth: int = 4) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._room = threading.BoundedSemaphore(max(1, depth))
        self._error: BaseException | None = None

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` after the calls before it."""
        self._raise()
        self._room.acquire()
        try:
            self._pool.submit(self._run, fn, args).add_done_callback(self._free)
        except BaseException:
            self._room.release()
            raise

    def _run(self, fn: Callable[..., object], args: tuple) -> None:
        if self._error is None:  # after a failure, the calls still queued are dropped
            try:
                fn(*args)
            except BaseException as exc:
                self._error = exc

    def _free(self, _f: Future) -> None:
        self._room.release()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self, *, cancel: bool = False) -> None:
        """Wait for the calls handed over (drop the waiting ones if ``cancel``), end the
        thread and raise the first call's exception (not when cancelling: the caller is
        already failing)."""
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        if not cancel:
            self._raise()
