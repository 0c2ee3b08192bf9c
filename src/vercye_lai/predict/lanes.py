"""A lane: one thread that runs the calls handed to it in order, a bounded number waiting.

Predict's writer hands each product's blocks to lanes of their own (its GDAL writes, its
overviews), so that the thread collecting the blocks only hands work out: on one thread
that work was serial, 0.16–0.19 CPU-s of a 16 Mpx date's 1.3 (its overviews 0.09–0.12,
measured), which on 16 cores would have taken longer than the blocks themselves. One
product's calls stay in order on one thread (a GDAL dataset is not thread-safe; an
overview level needs its rows top to bottom); products run beside each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["Lane"]


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
