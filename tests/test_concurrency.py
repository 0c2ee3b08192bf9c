"""Temporary files: a rerun removes every one its killed writer left (whatever GDAL or a zone id
added to the name) and never one whose writer still runs; two runs on the same folders both
finish with the outputs of one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_same_outputs, copy_qvidja, pixel_box, strickhof_run_config
from conftest import run_cli as run

from vercye_lai import io
from vercye_lai.analysis import analyze


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def tmp_name(final: str, pid: int, host: str = io.HOST, extra: str = "") -> str:
    return f".{final}.{host}~{pid}~abc123{io.TMP_SUFFIX}{extra}"


def test_writer_names_and_liveness(tmp_path):
    t = io.tmp_path_for(tmp_path / "x.tif")
    assert t.name.startswith(f".x.tif.{io.HOST}~{os.getpid()}~") and t.name.endswith(".part")
    assert io.writer_alive(t)  # ours
    dead = tmp_path / tmp_name("x.tif", dead_pid())
    dead.touch()
    assert not io.writer_alive(dead)
    legacy = tmp_path / ".x.tif.k2j3h4.part"  # older versions: no writer in the name
    legacy.touch()
    assert not io.writer_alive(legacy)
    other_host = tmp_path / tmp_name("x.tif", 1, host="node042")
    other_host.touch()
    assert io.writer_alive(other_host)  # a shared file system: taken to be alive ...
    old = time.time() - io.STALE_AFTER_S - 60
    os.utime(other_host, (old, old))
    assert not io.writer_alive(other_host)  # ... for a day at most


def test_rerun_removes_gdal_sidecars_of_a_dead_writer_but_not_a_live_one(tmp_path):
    s2 = copy_qvidja(tmp_path / "s2")
    lai = tmp_path / "lai"
    lai.mkdir()
    final = "qvidja_20m_2023-06-09_LAI.tif"
    pid = dead_pid()
    leftovers = [lai / tmp_name(final, pid, extra=e) for e in ("", ".ovr.tmp", ".aux.xml", ".msk")]
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as sleeper:
        live = lai / tmp_name(final, sleeper.pid)
        for p in (*leftovers, live):
            p.write_bytes(b"half")
        assert run("-q", "predict", s2, lai, "--region", "qvidja").exit_code == 0
        hidden = sorted(p.name for p in lai.iterdir() if p.name.startswith("."))
        assert hidden == [live.name]  # the other process' file is its own
        sleeper.kill()
    assert run("-q", "predict", s2, lai, "--region", "qvidja", "--overwrite").exit_code == 0
    assert not [p for p in lai.iterdir() if p.name.startswith(".")]


def test_poly_iter_rerun_removes_per_zone_temporaries(tmp_path, lai_writer, polygon_writer):
    lai_writer("2022-06-01", np.ones((6, 6), np.float32))
    g = polygon_writer("fields.geojson", [pixel_box(0, 0, 2, 2), pixel_box(3, 3, 6, 5)], FID=[11, 12])
    out = tmp_path / "out"
    out.mkdir()
    pid = dead_pid()
    stray = [out / tmp_name("R_fields_12_2022-06-01_2022-06-01_STATS.csv", pid),
             out / tmp_name("R_fields_11_2022-06-01_2022-06-01_MAX.tif", pid, extra=".aux.xml")]
    for p in stray:
        p.write_bytes(b"half")
    analyze(tmp_path / "lai", out, "R", g, resolution=10)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "run"])
def test_two_concurrent_runs_both_finish_with_the_outputs_of_one(tmp_path, strickhof_stacks, command):
    """Run A is frozen (SIGSTOP) right after its first product, with its next file half made;
    run B starts on the same folders and makes products while A is frozen; then A goes on
    beside B. Both finish with the outputs of one run, and the overlap is checked, not hoped for."""
    cli = [sys.executable, "-c", "from vercye_lai.cli.main import main; main()"]

    def args(root: str, *verbosity: str) -> list[str]:
        if command == "predict":
            return [*cli, *verbosity, "predict", str(strickhof_stacks), str(tmp_path / root), "--region", "strickhof",
                    "--res", "10", "--workers", "1"]
        cfg = strickhof_run_config(tmp_path, strickhof_stacks, root, variables='["LAI", "FAPAR"]')
        return [*cli, *verbosity, "run", str(cfg)]

    def products() -> set[Path]:
        return {p for p in (tmp_path / "shared").rglob("*_LAI.tif") if not p.name.startswith(".")}

    def wait_for(condition, what: str, timeout: float = 120.0) -> None:
        t_end = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < t_end, f"timed out waiting for {what}"
            time.sleep(0.002)

    single = subprocess.run(args("single", "-q"), capture_output=True, text=True, timeout=300, check=False)
    assert single.returncode == 0, single.stderr
    n_products = len(list((tmp_path / "single").rglob("*_LAI.tif")))
    assert n_products == 34

    def start() -> subprocess.Popen:
        # a session of its own: SIGSTOP reaches every process of the run
        return subprocess.Popen(args("shared"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    a = start()
    try:
        wait_for(lambda: products() or a.poll() is not None, "run A's first product")
        os.killpg(a.pid, signal.SIGSTOP)
        frozen_with = products()
        assert a.poll() is None and 0 < len(frozen_with) < n_products, "run A ended before it could be frozen"
        b = start()
        # B makes products of its own while A sits frozen in the middle of its run ...
        wait_for(lambda: len(products() - frozen_with) >= 2 or b.poll() is not None, "run B's products")
        assert len(products() - frozen_with) >= 2, b.communicate()[1]
    finally:
        os.killpg(a.pid, signal.SIGCONT)
    # ... then both go on together
    outs = {name: p.communicate(timeout=300) for name, p in (("A", a), ("B", b))}
    for name, p in (("A", a), ("B", b)):
        out, err = outs[name]
        assert p.returncode == 0 and "Traceback" not in err, (name, err)
    if command == "predict":  # each made some dates, and one found dates the other had made
        # (not each: running side by side they may reach every date together, and a run skips
        # only what is whole when it gets there; 3 of 10 runs saw B skip none, before and after
        # the COG assembly, measured)
        made = [int(re.search(r"(\d+) done, (\d+) skipped", "".join(outs[n])).group(1)) for n in "AB"]
        assert all(m > 0 for m in made) and min(made) < n_products, made
    assert assert_same_outputs(tmp_path / "single", tmp_path / "shared") > 0
    assert not [p for p in (tmp_path / "shared").rglob("*") if p.name.endswith(".part") or ".part." in p.name]


def test_a_finishing_task_makes_again_a_part_a_concurrent_run_removed(tmp_path):
    from vercye_lai.run.executor import make_executor
    from vercye_lai.run.jobs import PartsJob, Task, run_parts_jobs

    made: list[str] = []

    def write_part(path, value):
        made.append(path.name)
        path.write_text(value)

    def combine(*, parts):
        # the other run finished first and removed the parts: ours must not depend on them
        for p in tmp_path.glob("part*"):
            p.unlink()
        return [p.read_text() for p in parts]

    paths = [tmp_path / f"part{i}" for i in range(3)]
    paths[1].write_text("b")  # written before, by a run that is finishing now
    results: list = []
    job = PartsJob([(p, Task(write_part, (p, v))) for p, v in zip(paths, "abc")],
                   Task(combine), results.append, pytest.fail)
    with make_executor("serial") as ex:
        run_parts_jobs(ex, [job])
    assert results == [["a", "b", "c"]]
    assert sorted(made) == ["part0", "part2"]  # part1 was reused, not made again
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no held link is left

    # a part removed before the finishing task holds it is made again
    paths[0].write_text("a")
    job = PartsJob([(p, Task(write_part, (p, v))) for p, v in zip(paths[:1], "a")], Task(combine),
                   results.append, pytest.fail)
    paths[0].unlink()
    from vercye_lai.run.jobs import finish_job
    assert finish_job(job.finish, job.parts) == ["a"]
    assert list(tmp_path.iterdir()) == []
