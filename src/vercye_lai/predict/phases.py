"""Where predict's time goes: a cheap timer of its phases (block reads, network, flags,
the writer's block writes, the COG copies), off unless one is passed in.

A phase's seconds are summed over the threads that ran it, so at N workers the worker
phases add up to about N × the wall time they overlap; ``wall`` holds the wall time of the
whole call. :mod:`benchmarks.bench_predict` turns these into per-phase shares and Amdahl's
serial fraction.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

#: the phases predict reports, in pipeline order: worker threads read a block, check it,
#: run the networks (with their flags and uncertainty: one kernel) and the calibration, and
#: encode the values as stored; each product's lanes (:mod:`.lanes`) write its blocks and
#: compute its overviews; then the COG of each product and of its flags is made
PHASES = ("read", "check", "network", "calibrate", "encode", "write", "overviews", "cog", "cog_flags")


class Phases:
    """Seconds per phase, summed over threads (thread-safe).

    ``with phases("read"): ...`` adds the block's duration to ``seconds["read"]``; the
    context costs two ``perf_counter`` calls and a lock, once per block and phase.
    """

    enabled = True

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, phase: str, seconds: float) -> None:
        with self._lock:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - t0)


class _NoPhases(Phases):
    """The default: times nothing (one shared do-nothing context per call)."""

    enabled = False

    def add(self, phase: str, seconds: float) -> None:
        pass

    def __call__(self, phase: str) -> contextlib.nullcontext:  # type: ignore[override]
        return _NULL


_NULL = contextlib.nullcontext()
#: the timer used when none is passed in: no timing, no cost beyond a method call
NO_PHASES: Phases = _NoPhases()
