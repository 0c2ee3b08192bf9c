"""Where the units of work of a run execute: in this process, in threads, or on Dask.

Every executor has the same small interface: :meth:`Executor.submit` returns a
:class:`concurrent.futures.Future`-like object and :meth:`Executor.as_completed` yields
them as they finish. The pipeline (:mod:`vercye_lai.run`) submits independent tasks and
submits follow-up tasks (e.g. assembling a date's prediction parts) as results arrive, so
no executor needs to know about dependencies, and there is no scheduler of our own: Dask's
scheduler places, retries and moves the tasks.

Dask (optional extra ``dask``) means a ``distributed.LocalCluster`` of worker processes by
default, an existing scheduler (``scheduler_address`` or ``scheduler_file``), or a
dask-jobqueue ``SLURMCluster``/``PBSCluster`` (extra ``jobqueue``) built from the
config's ``[dask]`` table. Inside every worker, GDAL, BLAS and numba use one thread and
GDAL's block cache has an explicit size: parallelism comes from the workers, and N
workers × M library threads would oversubscribe the cores.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vercye_lai.errors import ConfigError, LaiError, ServiceError, detached, require
from vercye_lai.options import Options, setting
from vercye_lai.system import default_workers

log = logging.getLogger(__name__)

EXECUTORS = ("serial", "threads", "dask")
CLUSTERS = ("local", "slurm", "pbs")

#: default GDAL block cache of one worker, MB (GDAL's own default is 5 % of the RAM, per process)
DEFAULT_GDAL_CACHE_MB = 256


def worker_env(gdal_cache_mb: int = DEFAULT_GDAL_CACHE_MB) -> dict[str, str]:
    """Environment of a worker process: one thread per library, an explicit GDAL cache."""
    return {
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMBA_NUM_THREADS": "1",
        "GDAL_NUM_THREADS": "1",
        "GDAL_CACHEMAX": str(int(gdal_cache_mb)),  # a bare number is MB for GDAL
    }


@dataclass(frozen=True)
class DaskSettings(Options):
    """The ``[dask]`` table of a run config (see :func:`vercye_lai.run.load_config`).

    ``cluster`` is ignored when ``scheduler_address`` or ``scheduler_file`` is given; the
    job settings (``cores`` … ``local_directory``) are dask-jobqueue's: one job =
    ``processes`` workers sharing ``cores``.
    """
    cluster: str = setting(
        "local", choices=CLUSTERS,
        help="local (a LocalCluster of processes), slurm or pbs (dask-jobqueue).")
    scheduler_address: str | None = setting(None, help="Connect to this running scheduler.")
    scheduler_file: str | None = setting(
        None, help="Connect to the scheduler this file describes (a path, relative to the config).")
    n_workers: int | None = setting(None, min=1, help="Local workers, or batch jobs for slurm/pbs.")
    threads_per_worker: int = setting(
        1, min=1, help="Threads of each worker (1 recommended: tasks are already CPU-bound numpy).")
    cores: int | None = setting(None, min=1, help="Cores of one batch job.")
    processes: int | None = setting(None, min=1, help="Worker processes of one batch job.")
    memory: str | None = setting(None, help="Memory of one batch job, e.g. 32GB.")
    walltime: str | None = setting(None, help="Wall time of one batch job, e.g. 02:00:00.")
    account: str | None = setting(None, help="Account the batch jobs are charged to.")
    queue: str | None = setting(None, help="Queue (partition) of the batch jobs.")
    job_prologue: tuple[str, ...] = setting(
        (), help="Shell lines run before each worker starts (module loads, venv activation).")
    job_extra: tuple[str, ...] = setting((), help="Extra scheduler directives of each job.")
    interface: str | None = setting(None, help="Network interface of the workers.")
    local_directory: str | None = setting(None, help="Scratch folder of each worker.")
    gdal_cache_mb: int = setting(DEFAULT_GDAL_CACHE_MB, min=1, help="GDAL_CACHEMAX of each worker.")
    retries: int = setting(
        3, min=0, help="How often a failed task (e.g. on a lost worker) is resubmitted.")


class Executor:
    """Runs tasks. Subclasses: :class:`SerialExecutor`, :class:`ThreadExecutor`, :class:`DaskExecutor`."""
    kind = "base"
    #: parallel slots, for sizing work (e.g. how many part tasks a date is split into)
    workers = 1

    def submit(self, fn: Callable[..., Any], /, *args: Any, key: str | None = None, **kwargs: Any):
        """Start ``fn(*args, **kwargs)``; return a future (``result()``, ``exception()``)."""
        raise NotImplementedError

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        """Yield ``futures`` as they finish."""
        return cf.as_completed(list(futures))

    def first_completed(self, futures: Iterable[Any]) -> set[Any]:
        """Block until at least one of ``futures`` is finished; return the finished ones."""
        return cf.wait(list(futures), return_when=cf.FIRST_COMPLETED).done

    def close(self) -> None:
        """Release threads, workers or the cluster."""
    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SerialExecutor(Executor):
    """Runs each task at once, in this process and thread (debugging, tiny runs)."""
    kind = "serial"

    def submit(self, fn, /, *args, key=None, **kwargs):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # reported through the future, like the other executors
            fut.set_exception(exc)
        return fut


class ThreadExecutor(Executor):
    """A thread pool in this process: the default on one machine (GDAL and numpy release the GIL)."""
    kind = "threads"

    def __init__(self, workers: int | None = None) -> None:

        self.workers = workers or default_workers()
        self._pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="run")

    def submit(self, fn, /, *args, key=None, **kwargs):
        return self._pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _NotOurTaskErrors(logging.Filter):
    """Drops a worker's "Compute Failed" report: a task's error reaches the run, which says it
    in one line (a read-only folder printed 28 tracebacks for 7 dates)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


def _single_thread_worker_setup(gdal_cache_mb: int) -> None:
    """Worker start-up: set the thread and cache limits in the worker's own process."""
    logging.getLogger("distributed.worker").addFilter(_NotOurTaskErrors())
    os.environ.update(worker_env(gdal_cache_mb))
    try:  # libraries already loaded in the worker ignore the environment; tell them directly
        import numba

        numba.set_num_threads(1)
    except Exception:  # noqa: BLE001 - numba absent or already limited
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # noqa: BLE001
        pass


def _worker_plugin(gdal_cache_mb: int):
    distributed = require("distributed", "dask")

    class SingleThreadLibraries(distributed.WorkerPlugin):
        """Applies :func:`worker_env` in every worker, also on clusters we did not start."""
        name = "vercye-lai-single-thread"

        def __init__(self, cache_mb: int) -> None:
            self.cache_mb = cache_mb

        def setup(self, worker) -> None:
            _single_thread_worker_setup(self.cache_mb)

    return SingleThreadLibraries(gdal_cache_mb)


def jobqueue_kwargs(settings: DaskSettings) -> dict[str, Any]:
    """Keyword arguments of ``SLURMCluster``/``PBSCluster`` from the ``[dask]`` table.

    The worker environment of :func:`worker_env` is exported in the job script, before
    the user's own ``job_prologue`` lines (module loads, conda activation).
    """
    if not settings.cores or not settings.memory:
        raise ConfigError(
            f"dask.cores and dask.memory are required for dask.cluster = {settings.cluster!r}"
        )
    exports = [f"export {k}={v}" for k, v in worker_env(settings.gdal_cache_mb).items()]
    if os.environ.get("DASK_LOGGING__DISTRIBUTED") == "warning":  # the CLI's quiet console (no -v):
        exports.append("unset DASK_LOGGING__DISTRIBUTED")  # a batch worker's own log keeps its INFO lines
    kw: dict[str, Any] = {
        "cores": settings.cores,
        "memory": settings.memory,
        "processes": settings.processes or settings.cores,  # one thread per worker process
        "job_script_prologue": exports + list(settings.job_prologue),
    }
    optional = {
        "walltime": settings.walltime, "account": settings.account, "queue": settings.queue,
        "interface": settings.interface, "local_directory": settings.local_directory,
    }
    kw.update({k: v for k, v in optional.items() if v is not None})
    if settings.job_extra:
        kw["job_extra_directives"] = list(settings.job_extra)
    return kw


class DaskExecutor(Executor):
    """Tasks on a Dask cluster: local processes, an existing scheduler, or SLURM/PBS jobs.

    Parameters
    ----------
    settings
        The ``[dask]`` table.
    client
        An existing ``distributed.Client`` to use (it is not closed).
    """
    kind = "dask"

    def __init__(self, settings: DaskSettings | None = None, *, client: Any = None) -> None:
        distributed = require("distributed", "dask")
        self.settings = s = settings or DaskSettings()
        self._cluster = None
        self._own_client = client is None
        if client is None:
            if s.scheduler_address or s.scheduler_file:
                address = s.scheduler_address or scheduler_file_address(s.scheduler_file)
                try:
                    client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
                except (OSError, TimeoutError) as exc:
                    raise ServiceError(f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT} s: "
                                       f"{exc}") from exc
            else:
                self._cluster = make_cluster(s)
                client = distributed.Client(self._cluster)
        self.client = client
        client.register_plugin(_worker_plugin(s.gdal_cache_mb), name="vercye-lai-single-thread")
        # the tasks' log records (a date's warnings) reach the run's log and console, with time and
        # level, as on threads (a worker printed them bare, and run.log had none)
        client.forward_logging("vercye_lai", level=logging.INFO)
        nthreads = client.nthreads()
        self.workers = max(1, sum(nthreads.values()) or (s.n_workers or 1))
        log.info("Dask: %d worker(s), dashboard %s", len(nthreads), getattr(client, "dashboard_link", "?"))

    def submit(self, fn, /, *args, key=None, **kwargs):
        # pure=False: a task is an action on files, never deduplicated by Dask;
        # retries: a task lost with its worker, or failing once, runs again elsewhere
        return self.client.submit(_detaching, fn, *args, key=key, pure=False, retries=self.settings.retries,
                                  **kwargs)

    def as_completed(self, futures):
        distributed = require("distributed", "dask")
        return distributed.as_completed(list(futures))

    def first_completed(self, futures):
        distributed = require("distributed", "dask")
        return distributed.wait(list(futures), return_when="FIRST_COMPLETED").done

    def close(self) -> None:
        if self._own_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def _detaching(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a task; its error reaches the client as it is (:func:`~vercye_lai.errors.detached`)."""
    try:
        return fn(*args, **kwargs)
    except (LaiError, OSError) as exc:
        raise detached(exc) from None


def make_cluster(settings: DaskSettings):
    """Start the cluster of ``settings.cluster`` (``local``, ``slurm``, ``pbs``)."""
    if settings.cluster == "local":
        distributed = require("distributed", "dask")

        return distributed.LocalCluster(
            n_workers=settings.n_workers or default_workers(),
            threads_per_worker=settings.threads_per_worker,
            processes=True,
            # env of the worker processes, set before numpy/GDAL load there
            env=worker_env(settings.gdal_cache_mb),
            local_directory=settings.local_directory,
        )
    if settings.cluster not in ("slurm", "pbs"):
        raise ConfigError(f"dask.cluster: {settings.cluster!r} is not one of {', '.join(CLUSTERS)}")
    jobqueue = require("dask_jobqueue", "jobqueue")
    cls = jobqueue.SLURMCluster if settings.cluster == "slurm" else jobqueue.PBSCluster
    cluster = cls(**jobqueue_kwargs(settings))
    try:
        check_submission(settings.cluster, cluster.job_script())
    except BaseException:
        cluster.close()
        raise
    cluster.scale(jobs=settings.n_workers or 1)
    return cluster


#: seconds to wait for a scheduler, or for the batch system to answer a test submission
CONNECT_TIMEOUT = 60


def scheduler_file_address(path: str) -> str:
    """The address a Dask scheduler file gives (``distributed.Client`` waits for a missing
    file forever, and fails on a bad one with a bare AssertionError).

    Raises
    ------
    ConfigError
        Naming the file: missing, unreadable, or without an address.
    """
    try:
        address = json.loads(Path(path).read_text(encoding="utf-8")).get("address")
    except OSError as exc:
        raise ConfigError(f"dask.scheduler_file: {path}: {exc.strerror} (start the scheduler with "
                          "--scheduler-file first)") from None
    except (ValueError, AttributeError):
        address = None
    if not isinstance(address, str) or not address:
        raise ConfigError(f"dask.scheduler_file: {path}: not a Dask scheduler file (JSON with an 'address')")
    return address


def check_submission(kind: str, script: str) -> None:
    """Ask the batch system whether it would take the workers' job (``sbatch --test-only``;
    PBS: whether its server answers, ``qstat -B``) before submitting: dask-jobqueue submits in the
    background, so a controller that is down or a wrong partition or account left the run
    waiting for workers that never came, with tracebacks in the log.

    Raises
    ------
    ServiceError
        The batch system refused the job or did not answer within :data:`CONNECT_TIMEOUT` s.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script)
    try:
        cmd = ["sbatch", "--test-only", f.name] if kind == "slurm" else ["qstat", "-B"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=CONNECT_TIMEOUT)
        except FileNotFoundError:
            raise ServiceError(f"dask.cluster = {kind}: {cmd[0]} not found (not on a {kind.upper()} login node?)") from None
        except subprocess.TimeoutExpired:
            raise ServiceError(f"dask.cluster = {kind}: {' '.join(cmd[:2])} got no answer within {CONNECT_TIMEOUT} s "
                               "(is the controller up?)") from None
        said = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
        # sbatch --test-only says "Job ... to start at ..." on stderr and exits 0 when it would run
        if r.returncode:
            raise ServiceError(f"dask.cluster = {kind}: {' '.join(cmd[:2])} refused the workers' job: "
                               f"{said[-1] if said else f'exit {r.returncode}'}")
    finally:
        os.unlink(f.name)


def make_executor(kind: str = "threads", *, workers: int | None = None,
                  dask: DaskSettings | Mapping[str, Any] | None = None) -> Executor:
    """The executor named ``kind`` (``serial``, ``threads``, ``dask``).

    Raises
    ------
    ConfigError
        For an unknown kind.
    DependencyError
        ``dask`` without the ``dask`` extra installed (or slurm/pbs without ``jobqueue``).
    """
    if kind == "serial":
        return SerialExecutor()
    if kind == "threads":
        return ThreadExecutor(workers)
    if kind == "dask":
        settings = dask if isinstance(dask, DaskSettings) else DaskSettings(**(dask or {}))
        if workers and settings.n_workers is None:
            settings = dataclasses.replace(settings, n_workers=workers)
        return DaskExecutor(settings)
    raise ConfigError(f"executor.kind: {kind!r} is not one of {', '.join(EXECUTORS)}")
