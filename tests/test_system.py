"""The cores the pipeline uses by default: affinity and cgroup quota, not the host's count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vercye_lai.system import available_cores, cpu_quota, default_workers


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
