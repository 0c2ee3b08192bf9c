"""Facts about the machine the pipeline runs on."""

from __future__ import annotations

import os


def default_workers() -> int:
    """Worker threads by default: the CPU cores available to this process, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))
