"""The cores the pipeline uses by default: affinity and cgroup quota, not the host's count."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from vercye_lai.system import available_cores, cpu_quota, default_workers, limit_malloc_arenas


def fake_cgroup(tmp_path: Path, *, v2: str | None = None, v1: tuple[int, int] | None = None,
                own: str = "/job_42") -> tuple[Path, Path]:
    """A cgroup tree with this process in ``own``: a v2 ``cpu.max`` or v1 quota/period."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc_self_cgroup"
    if v2 is not None:
        (root / own.lstrip("/")).mkdir(parents=True)
        (root / own.lstrip("/") / "cpu.max").write_text(v2 + "\n")
        proc.write_text(f"0::{own}\n")
    if v1 is not None:
        d = root / "cpu" / own.lstrip("/")
        d.mkdir(parents=True)
        (d / "cpu.cfs_quota_us").write_text(f"{v1[0]}\n")
        (d / "cpu.cfs_period_us").write_text(f"{v1[1]}\n")
        proc.write_text(f"4:memory:/x\n2:cpu,cpuacct:{own}\n0::/\n")
    return root, proc


@pytest.mark.parametrize("cgroup,quota", [
    ({"v2": "300000 100000"}, 3.0),
    ({"v2": "150000 100000"}, 1.5),
    ({"v2": "max 100000"}, None),
    ({"v1": (200000, 100000)}, 2.0),
    ({"v1": (-1, 100000)}, None),
    ({}, None),
])
def test_cpu_quota_of_cgroup_v2_and_v1(tmp_path, cgroup, quota):
    assert cpu_quota(*fake_cgroup(tmp_path, **cgroup)) == quota


def test_a_quota_bounds_the_cores_and_rounds_up(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert available_cores(*fake_cgroup(tmp_path / "a", v2="150000 100000")) == 2
    assert available_cores(*fake_cgroup(tmp_path / "b", v2="max 100000")) == 64  # no cap at 8
    assert available_cores(*fake_cgroup(tmp_path / "c", v2="50000 100000")) == 1


def test_the_affinity_bounds_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5, 9})  # e.g. a SLURM cpuset
    assert available_cores(*fake_cgroup(tmp_path, v2="1600000 100000")) == 3


def test_a_container_sees_its_quota_at_the_root(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cpu.max").write_text("400000 100000\n")
    proc = tmp_path / "proc"
    proc.write_text("0::/\n")
    assert available_cores(root, proc) == 4


def test_default_workers_are_this_machines_cores():
    assert 1 <= default_workers() <= len(os.sched_getaffinity(0))


ARENAS = """
import ctypes, os, sys, threading
from vercye_lai.system import limit_malloc_arenas
stats = ctypes.CDLL(None).malloc_stats  # an "Arena i:" paragraph each, on stderr
stats()  # the arenas made before the limit (the imports' threads)
os.write(2, b"LIMIT\\n")
print(limit_malloc_arenas(int(sys.argv[1])) if sys.argv[1] != "0" else None)
held, go = [], threading.Barrier(6)
def work():
    go.wait()  # all threads malloc at once, so none can reuse another's free arena
    held.append([bytearray(4096) for _ in range(200)])
ts = [threading.Thread(target=work) for _ in range(6)]
[t.start() for t in ts]
[t.join() for t in ts]
stats()
"""


def arenas(limit: int) -> tuple[str, int, int]:
    """What limit_malloc_arenas(limit) said (0: not called), and the arenas before and after."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    r = subprocess.run([sys.executable, "-c", ARENAS, str(limit)], capture_output=True, text=True, env=env, check=True)
    before, after = r.stderr.split("LIMIT")
    return r.stdout.strip(), before.count("Arena "), after.count("Arena ")


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt(M_ARENA_MAX) is glibc's")
@pytest.mark.slow  # two subprocesses each, ~1.6 s
@pytest.mark.parametrize("limit", [1, 2])
def test_malloc_arenas_are_limited(limit):
    """Six threads that malloc at once each get an arena of their own unless limited (the
    arenas made before the limit stay)."""
    said, before, after = arenas(limit)
    assert said == "True" and after <= max(limit, before)
    _, before, unlimited = arenas(0)
    assert unlimited > max(limit, before)  # without it, more: the test sees a limit that did nothing


def test_a_users_malloc_arena_max_is_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(1) is False
