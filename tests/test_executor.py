"""Executors: serial/threads, predict split into parts, Dask on loopback (same outputs as
serial, worker settings, a lost worker), and dask-jobqueue clusters from the config."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import rasterio
from conftest import assert_same_outputs, running, strickhof_run_config

from vercye_lai.errors import ConfigError, DataIOError, ServiceError
from vercye_lai.predict import (
    PredictOptions,
    assemble_parts,
    part_path,
    predict_file,
    predict_windows_to_part,
    product_paths,
    stack_windows,
)
from vercye_lai.run import executor, load_config, run_pipeline
from vercye_lai.run.executor import (
    DaskSettings,
    SerialExecutor,
    ThreadExecutor,
    jobqueue_kwargs,
    make_cluster,
    make_executor,
    worker_env,
)


def strickhof_config(tmp_path, stacks, root: str, kind: str = "serial", extra: str = ""):
    return load_config(strickhof_run_config(tmp_path, stacks, root, start="2022-04-01", end="2022-06-30",
                                            kind=kind, workers=2, extra=extra))


# --- in-process executors -------------------------------------------------------------


@pytest.mark.parametrize("ex", [SerialExecutor(), ThreadExecutor(2)], ids=["serial", "threads"])
def test_local_executors_report_results_and_errors(ex):
    with ex:
        good = ex.submit(pow, 2, 10)
        bad = ex.submit(int, "x")
        assert {f.result() for f in ex.as_completed([good])} == {1024}
        done = ex.first_completed([good, bad])
        assert done and done <= {good, bad}
        with pytest.raises(ValueError):
            bad.result()


def test_make_executor_rejects_unknown_kind():
    with pytest.raises(ConfigError, match="allowed|one of serial, threads, dask"):
        make_executor("mpi")


@pytest.mark.parametrize("uncertainty", [False, True])
def test_parts_assembled_equal_predict_file(tmp_path, strickhof_stacks, uncertainty):
    """The split path (parts + assemble) writes the very file predict_file writes."""
    src = sorted(strickhof_stacks.glob("*.tif"))[10]
    options = PredictOptions(block_size=64, workers=1, uncertainty=uncertainty)
    ref = predict_file(src, product_paths(src, tmp_path / "serial", ["LAI", "FAPAR"]), options=options)
    outputs = product_paths(src, tmp_path / "parts", ["LAI", "FAPAR"])
    windows = stack_windows(src, block_size=64)
    assert len(windows) == 2
    parts = [part_path(outputs, "k", i) for i in range(len(windows))]
    n = sum(predict_windows_to_part(src, p, [w], options=replace(options, variables=("LAI", "FAPAR")))
            for p, w in zip(parts, windows))
    assert all(p.name.startswith(".") for p in parts)
    stale = part_path(outputs, "old", 0)
    stale.write_bytes(b"from an older run")
    res = assemble_parts(src, parts, outputs, options=options)
    assert res.n_valid == ref.n_valid == n
    for a, b in zip(ref.outputs, res.outputs):
        assert a.read_bytes() == b.read_bytes()
        for suffix in ("", "_flags", *(["_uncertainty"] if uncertainty else [])):
            fa, fb = a.with_name(a.stem + suffix + ".tif"), b.with_name(b.stem + suffix + ".tif")
            with rasterio.open(fa) as x, rasterio.open(fb) as y:
                assert np.array_equal(x.read(), y.read(), equal_nan=True)
                assert x.tags() == y.tags()
    assert not list((tmp_path / "parts").glob(".*"))  # parts and stale parts removed


# --- dask-jobqueue, with a fake module (no batch system here) --------------------------


@pytest.mark.parametrize(("answer", "said"), [
    ("echo 'sbatch: error: invalid partition specified: nope' >&2; exit 1",
     "sbatch --test-only refused the workers' job: sbatch: error: invalid partition specified: nope"),
    ("sleep 30", "sbatch --test-only got no answer within 0.2 s (is the controller up?)"),
    ("echo 'sbatch: Job 7 to start at 2026-12-05T10:00:00' >&2", None),
])
def test_a_batch_system_that_would_not_take_the_workers_stops_the_run_at_once(tmp_path, monkeypatch, answer, said):
    """A SLURM controller that is down, or a wrong partition, left the run waiting for workers
    that never came (dask-jobqueue submits in the background)."""
    fake = tmp_path / "bin" / "sbatch"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\n{answer}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(executor, "CONNECT_TIMEOUT", 0.2)
    if said is None:
        executor.check_submission("slurm", "#!/bin/sh\n#SBATCH -p debug\n")
        return
    with pytest.raises(ServiceError) as e:
        executor.check_submission("slurm", "#!/bin/sh\n#SBATCH -p nope\n")
    assert str(e.value) == f"dask.cluster = slurm: {said}"


def test_a_scheduler_file_that_is_missing_or_no_scheduler_file_is_said(tmp_path):
    """distributed.Client waits for a missing file forever, and fails on a bad one with a bare
    AssertionError."""
    with pytest.raises(ConfigError, match=f"dask.scheduler_file: {tmp_path / 'nope.json'}: No such file"):
        executor.DaskExecutor(DaskSettings(scheduler_file=str(tmp_path / "nope.json")))
    (tmp_path / "bad.json").write_text("cluster: x\n")
    with pytest.raises(ConfigError, match="not a Dask scheduler file"):
        executor.DaskExecutor(DaskSettings(scheduler_file=str(tmp_path / "bad.json")))


@pytest.mark.parametrize("cluster, directives", [
    ("slurm", ["#SBATCH -A proj", "#SBATCH -p normal", "#SBATCH --cpus-per-task=8", "#SBATCH -t 02:00:00",
               "#SBATCH --exclusive"]),
    ("pbs", ["#PBS -A proj", "#PBS -q normal", "#PBS -l select=1:ncpus=8:mem=30GB",
             "#PBS -l walltime=02:00:00", "#PBS --exclusive"]),
])
def test_jobqueue_cluster_from_the_dask_table(monkeypatch, cluster, directives):
    """The batch script dask-jobqueue itself renders from the [dask] table: the job settings,
    the single-thread worker environment before the user's prologue, 8 one-thread workers."""
    import dask_jobqueue

    cls = dask_jobqueue.SLURMCluster if cluster == "slurm" else dask_jobqueue.PBSCluster
    scaled, checked = [], []
    # no sbatch/qsub here: record the jobs asked for (the constructor's own scale(0) aside)
    monkeypatch.setattr(cls, "scale", lambda self, n=None, **kw: kw and scaled.append(kw))
    monkeypatch.setattr(executor, "check_submission", lambda kind, script: checked.append((kind, script)))
    s = DaskSettings(cluster=cluster, cores=8, memory="32GB", walltime="02:00:00", account="proj",
                     queue="normal", job_prologue=("module load gdal",), job_extra=("--exclusive",),
                     n_workers=3, gdal_cache_mb=512, interface="lo")
    made = make_cluster(s)
    try:
        assert isinstance(made, cls) and scaled == [{"jobs": 3}]
        script = made.job_script().splitlines()
        assert checked == [(cluster, made.job_script())]  # asked before any job was submitted
    finally:
        made.close()
    for line in directives:
        assert line in script, "\n".join(script)
    exports = ["export OMP_NUM_THREADS=1", "export OPENBLAS_NUM_THREADS=1", "export GDAL_NUM_THREADS=1",
               "export NUMBA_NUM_THREADS=1", "export GDAL_CACHEMAX=512"]
    assert all(e in script for e in exports)
    assert max(script.index(e) for e in exports) < script.index("module load gdal")
    worker = script[-1]
    assert "--nthreads 1" in worker and "--nworkers 8" in worker
    with pytest.raises(ConfigError, match="dask.cores and dask.memory"):
        jobqueue_kwargs(DaskSettings(cluster="pbs"))
    # the CLI's quiet console does not silence a batch worker's own log (its job's output file)
    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", "warning")
    assert "unset DASK_LOGGING__DISTRIBUTED" in jobqueue_kwargs(s)["job_script_prologue"]
    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", "debug")  # a user's own choice is theirs
    assert "unset DASK_LOGGING__DISTRIBUTED" not in jobqueue_kwargs(s)["job_script_prologue"]


def test_jobqueue_missing_names_the_extra(monkeypatch):
    from vercye_lai.errors import DependencyError

    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # import fails
    with pytest.raises(DependencyError, match=r"vercye-lai\[jobqueue\]"):
        make_cluster(DaskSettings(cluster="pbs", cores=4, memory="8GB"))


# --- Dask on loopback -------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=":0",
                                       env=worker_env(64))
    client = distributed.Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


@pytest.mark.slow
def test_dask_outputs_equal_serial(tmp_path, strickhof_stacks, dask_cluster):
    cluster, client = dask_cluster
    serial = run_pipeline(strickhof_config(tmp_path, strickhof_stacks, "serial"))
    assert serial.ok
    # the config's own way to a running scheduler
    extra = f'[dask]\nscheduler_address = "{cluster.scheduler_address}"\ngdal_cache_mb = 64'
    cfg = strickhof_config(tmp_path, strickhof_stacks, "dask", "dask", extra)
    summary = run_pipeline(cfg)
    assert summary.ok, summary.to_dict()
    assert summary.executor == "dask"
    predict = summary.steps[2]
    assert predict.count("done") == serial.steps[2].count("done") > 10
    n = assert_same_outputs(tmp_path / "serial", tmp_path / "dask")  # CSV text identical
    assert n > 2 * predict.count("done")
    # workers run single-threaded libraries with an explicit GDAL cache
    env = client.run(lambda: {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "GDAL_NUM_THREADS",
                                                             "GDAL_CACHEMAX", "NUMBA_NUM_THREADS")})
    assert all(e == {"OMP_NUM_THREADS": "1", "GDAL_NUM_THREADS": "1", "GDAL_CACHEMAX": "64",
                     "NUMBA_NUM_THREADS": "1"} for e in env.values())
    # no part file is left beside the products
    assert not list((tmp_path / "dask").rglob(".*"))
    # and a rerun on Dask skips everything
    again = run_pipeline(cfg)
    assert all(s.count("done") == 0 for s in again.steps)


@pytest.mark.slow
def test_a_tasks_warnings_reach_the_runs_log_and_its_errors_no_worker_log(tmp_path, dask_cluster, caplog):
    """A date's warning on a worker was printed bare on the console and missing from run.log;
    a task's error was printed by the worker with its traceback, once per try."""
    import logging

    cluster, client = dask_cluster
    ex = executor.DaskExecutor(DaskSettings(scheduler_address=cluster.scheduler_address, retries=0))
    try:
        def warn():
            logging.getLogger("vercye_lai.stack").warning("a warning on a worker")

        caplog.set_level(logging.INFO)
        ex.submit(warn).result()
        deadline = time.monotonic() + 10
        while "a warning on a worker" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "a warning on a worker" in caplog.text
        filters = client.run(lambda: [type(f).__name__ for f in logging.getLogger("distributed.worker").filters])
        assert all("_NotOurTaskErrors" in f for f in filters.values())

        # a task's error raised from one of GDAL's (which do not unpickle) reaches the run as itself,
        # not as distributed's bare "Exception: DataIOError(...)"
        def fails():
            try:
                rasterio.open("/nonexistent/x.tif")
            except rasterio.errors.RasterioIOError as exc:
                raise DataIOError("cannot open image", path="/nonexistent/x.tif") from exc

        with pytest.raises(DataIOError, match="^/nonexistent/x.tif: cannot open image$"):
            ex.submit(fails).result()
    finally:
        ex.close()


@pytest.mark.slow
def test_dask_reuses_parts_of_an_interrupted_run(tmp_path, strickhof_stacks, dask_cluster):
    """Parts written before a kill are used as they are, not computed again."""
    _, client = dask_cluster
    from vercye_lai.predict import part_key, plan_predict
    from vercye_lai.run.executor import DaskExecutor
    from vercye_lai.run.runner import _stacks, predict_options

    ref = run_pipeline(strickhof_config(tmp_path, strickhof_stacks, "serial"), only=["predict"])
    assert ref.ok
    cfg = strickhof_config(tmp_path, strickhof_stacks, "dask", "dask")
    options = predict_options(cfg)
    todo = [u for u in plan_predict(_stacks(cfg, cfg.regions[0]), cfg.lai_dir("strickhof"),
                                    options=options) if not u.up_to_date]
    u, other = todo[0], todo[1]
    windows = stack_windows(u.src, block_size=64)
    # a marked part: window 0 of *another* date, under the name of u's first part
    first = part_path(u.outputs, part_key(u, options), 0)
    predict_windows_to_part(other.src, first, windows[:1], options=PredictOptions(block_size=64, workers=1))
    summary = run_pipeline(cfg, only=["predict"], executor=DaskExecutor(cfg.dask, client=client))
    assert summary.ok and summary.steps[0].count("done") == len(todo)
    assert not first.exists()  # consumed by the assembly

    def read(root, unit, window):
        with rasterio.open(tmp_path / root / "lai" / "strickhof" / unit.outputs["LAI"].name) as ds:
            return ds.read(1, window=window)

    assert np.array_equal(read("dask", u, windows[0]), read("serial", other, windows[0]), equal_nan=True)
    assert np.array_equal(read("dask", u, windows[1]), read("serial", u, windows[1]), equal_nan=True)


def _kill_own_worker_once(marker: str, value: int) -> int:
    """A task that kills the worker process running it, the first time only."""
    import os
    import signal
    from pathlib import Path

    m = Path(marker)
    if not m.exists():
        m.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return value * 2


@pytest.mark.slow
def test_lost_worker_does_not_fail_the_run(tmp_path, dask_cluster):
    from vercye_lai.run.executor import DaskExecutor

    _, client = dask_cluster
    ex = DaskExecutor(DaskSettings(retries=2), client=client)
    marker = tmp_path / "killed"
    # the function travels by value: the test module is not importable in the workers
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    futures = [ex.submit(_kill_own_worker_once, str(marker), i, key=f"kill-{i}") for i in range(4)]
    assert sorted(f.result(timeout=60) for f in futures) == [0, 2, 4, 6]
    assert marker.exists()  # one worker really died
    client.wait_for_workers(2, timeout=30)  # the nanny restarted it


@pytest.mark.slow
def test_cli_starts_its_own_local_cluster(tmp_path, strickhof_stacks, monkeypatch):
    """executor.kind = "dask" with no scheduler: a LocalCluster of processes, closed at the end."""
    pytest.importorskip("distributed")
    import json

    from click.testing import CliRunner
    from distributed.core import Status

    import vercye_lai.run.executor as executor_mod
    from vercye_lai.cli.main import cli

    started = []  # (cluster, pids of its worker processes)

    def spy(settings):
        cluster = make_cluster(settings)
        started.append((cluster, [nanny.pid for nanny in cluster.workers.values()]))
        return cluster

    monkeypatch.setattr(executor_mod, "make_cluster", spy)
    cfg = strickhof_run_config(tmp_path, strickhof_stacks, "own", start="2022-06-10", end="2022-06-15",
                               kind="threads", extra="[dask]\nn_workers = 2\ngdal_cache_mb = 96")
    r = CliRunner().invoke(cli, ["-q", "run", str(cfg), "--executor", "dask", "--only", "predict"])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "own" / "run_summary.json").read_text())
    assert summary["executor"] == "dask" and summary["steps"][0]["done"] == 3
    ((cluster, pids),) = started
    assert len(pids) == 2 and cluster.status == Status.closed
    assert [pid for pid in pids if running(pid)] == []  # the worker processes are gone


def test_incomplete_parts_write_no_product(tmp_path, strickhof_stacks):
    from vercye_lai.errors import DataIOError

    src = sorted(strickhof_stacks.glob("*.tif"))[0]
    outputs = product_paths(src, tmp_path, ["LAI"])
    options = PredictOptions(block_size=64, workers=1)
    part = part_path(outputs, "k", 0)
    predict_windows_to_part(src, part, stack_windows(src, block_size=64)[:1], options=options)
    with pytest.raises(DataIOError, match="not the 2 blocks"):
        assemble_parts(src, [part], outputs, options=options)
    assert not outputs["LAI"].exists()  # nothing under a final name
    assert not list(tmp_path.glob(".*"))  # and the unusable part is gone: a rerun redoes it


@pytest.mark.slow
def test_analysis_parts_of_an_interrupted_run_are_reused(tmp_path, strickhof_stacks, monkeypatch):
    """Threads split the analysis into parts; parts left by a run that died before combining
    them are not computed again, and the outputs equal a serial run's."""
    from vercye_lai.analysis import tasks as run_mod

    serial = run_pipeline(strickhof_config(tmp_path, strickhof_stacks, "serial"))
    assert serial.ok
    cfg = strickhof_config(tmp_path, strickhof_stacks, "threads", "threads",
                           extra="zones_per_task = 2\ndates_per_task = 5")  # [executor] keys
    assert (cfg.zones_per_task, cfg.dates_per_task) == (2, 5)
    assert run_pipeline(cfg, only=["predict"]).ok
    calls = []
    real_part = run_mod.run_part

    def died(*a, **k):
        raise KeyboardInterrupt("killed before combining")  # noqa: EM101

    monkeypatch.setattr(run_mod, "run_part", lambda *a: calls.append(a) or real_part(*a))
    monkeypatch.setattr(run_mod, "finish", died)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, only=["analyze"])
    fields = tmp_path / "threads" / "analysis" / "strickhof" / "fields"
    parts = sorted(fields.glob(".analysis-part.*.npz"))
    assert len(parts) == len(calls) > 2
    monkeypatch.undo()
    monkeypatch.setattr(run_mod, "run_part", lambda *a: calls.append(a) or real_part(*a))
    n = len(calls)
    summary = run_pipeline(cfg, only=["analyze"])
    assert summary.ok and len(calls) == n  # every part reused
    assert not list(fields.glob(".*"))  # and removed once combined
    assert assert_same_outputs(tmp_path / "serial", tmp_path / "threads") > 6
