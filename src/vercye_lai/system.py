"""Facts about the machine the pipeline runs on."""

from __future__ import annotations

import ctypes
import math
import os
from pathlib import Path

#: where Linux mounts the cgroup file systems
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _own_cgroup(root: Path, proc_cgroup: Path) -> tuple[Path, Path]:
    """This process's cgroup v2 folder and cgroup v1 ``cpu`` folder under ``root`` (the
    folders need not exist: a container sees its own cgroup at the root)."""
    v2 = v1 = ""
    for line in (_read(proc_cgroup) or "").splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return root / v2.lstrip("/"), root / "cpu" / v1.lstrip("/")


def cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """Cores this process's cgroup may use (its CPU quota / period), or ``None`` without a
    quota: cgroup v2 ``cpu.max``, else cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``;
    the process's own cgroup first, then the root (what a container sees)."""
    v2, v1 = _own_cgroup(root, proc_cgroup)
    for folder in dict.fromkeys((v2, root)):
        text = _read(folder / "cpu.max")
        if text:
            quota, _, period = text.partition(" ")
            if quota == "max":
                return None
            return int(quota) / int(period or 100000)
    for folder in dict.fromkeys((v1, root / "cpu")):
        quota_us, period_us = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
        if quota_us and period_us:
            return None if int(quota_us) < 0 else int(quota_us) / int(period_us)
    return None


def available_cores(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """The cores this process may run on: its CPU affinity (what ``taskset`` or a batch
    scheduler's cpuset allow), further bounded by its cgroup's CPU quota (a container's
    ``--cpus``, rounded up: 1.5 cores keep 2 threads busy), never the host's count."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    quota = cpu_quota(root, proc_cgroup)
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)


def default_workers() -> int:
    """Worker threads by default: every core available to this process (:func:`available_cores`)."""
    return available_cores()


#: glibc's ``mallopt`` parameter for the most malloc arenas (``malloc.h``)
_M_ARENA_MAX = -8


def limit_malloc_arenas(n: int) -> bool:
    """Let glibc's malloc keep at most ``n`` arenas (its default: 8 per core), unless
    ``MALLOC_ARENA_MAX`` is set; ``False`` where that is not possible (not glibc).

    Predict's threads (blocks, COG copies, dates in flight) each took an arena of their own,
    and freed blocks stayed in them: six 16 Mpx dates peaked at 1.2-1.4 GB on one core and
    0.94-1.02 GB on two, against 0.81 and 0.74 GB with one arena per core, which also ran
    8-17 % faster on one core and the same on two (measured). Process-wide: the command line
    sets it once, before any work.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:  # the symbols already loaded (libc's among them): no library search at every command's start
        return bool(ctypes.CDLL(None).mallopt(_M_ARENA_MAX, max(1, int(n))))
    except (OSError, AttributeError, TypeError):  # no mallopt (macOS), or none that takes it (musl)
        return False
