"""Work split into parts, then finished: the scheduling that predict and analysis share.

A job is a list of part tasks, each writing one hidden file (atomically), and one
finishing task that combines those files into the products. :func:`run_parts_jobs` runs
them on any :class:`~vercye_lai.run.executor.Executor`: a part whose file exists was written
before an interruption (or by a concurrent run) and is not run again, and a job's
finishing task is submitted as soon as its last part returns, from this process, so
executors need only ``submit`` (Dask's scheduler then places and retries the tasks).

A finishing task removes the parts once the products are written, so a second run of the
same job may find a part it counted on gone. The finishing task therefore first *holds*
every part by a hard link of its own (:func:`hold_parts`), making again any part already
removed, and reads the held files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vercye_lai.errors import DataIOError, error_text
from vercye_lai.io import tmp_path_for
from vercye_lai.run.executor import Executor


def token() -> str:
    """A fresh suffix for task keys (Dask would reuse the result of a key seen before)."""
    return f"{time.monotonic_ns():x}"


@dataclass
class Task:
    """A function call to submit: ``fn(*args, **kwargs)``, named ``key`` on Dask."""

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    key: str = "task"

    def submit(self, ex: Executor) -> Any:
        return ex.submit(self.fn, *self.args, key=f"{self.key}-{token()}", **self.kwargs)


@dataclass
class PartsJob:
    """Part tasks that each write one hidden file, then one task that combines them.

    The finishing task is called with the (held) part files as ``parts=``.
    ``done(result)`` and ``failed(reason)`` report the job's outcome.
    """

    parts: list[tuple[Path, Task]]
    finish: Task
    done: Callable[[Any], None]
    failed: Callable[[str], None]


def _hold(path: Path, task: Task, *, tries: int = 3) -> Path:
    """A hard link of this process's own to part file ``path``; the part is made again
    (``task``) if it is gone — removed by a concurrent run that finished first."""
    for _ in range(tries):
        held = tmp_path_for(path)  # a writer-named temporary: stale ones are removed as such
        held.unlink()
        try:
            os.link(path, held)
            return held
        except FileNotFoundError:
            task.fn(*task.args, **task.kwargs)
        except OSError:  # a file system without hard links
            try:
                shutil.copyfile(path, held)
                return held
            except FileNotFoundError:
                held.unlink(missing_ok=True)
                task.fn(*task.args, **task.kwargs)
    raise DataIOError(f"{path}: part file removed {tries} times while finishing (concurrent runs?)")


@contextlib.contextmanager
def hold_parts(parts: Sequence[tuple[Path, Task]]) -> Iterator[list[Path]]:
    """Hold every part file (:func:`_hold`) for the duration of the block; yield the held paths."""
    held: list[Path] = []
    try:
        for path, task in parts:
            held.append(_hold(Path(path), task))
        yield held
    finally:
        for h in held:
            h.unlink(missing_ok=True)


def finish_job(finish: Task, parts: Sequence[tuple[Path, Task]]) -> Any:
    """Run a job's finishing task on its held part files (a task: runs anywhere)."""
    with hold_parts(parts) as held:
        return finish.fn(*finish.args, parts=held, **finish.kwargs)


def run_parts_jobs(ex: Executor, jobs: Sequence[PartsJob]) -> None:
    """Run the jobs' parts on ``ex`` and each job's finishing task once its parts are done.

    A failed part fails its job only; the other jobs go on.
    """
    pending: dict[Any, tuple[str, int]] = {}
    waiting: dict[int, set[Any]] = {}
    failed: set[int] = set()
    for i, job in enumerate(jobs):
        waiting[i] = set()
        for path, task in job.parts:
            if not path.exists():
                fut = task.submit(ex)
                pending[fut] = ("part", i)
                waiting[i].add(fut)
        if not waiting[i]:
            pending[_submit_finish(ex, job)] = ("finish", i)
    while pending:
        for fut in ex.first_completed(list(pending)):
            what, i = pending.pop(fut)
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - reported, the other jobs go on
                if i not in failed:
                    failed.add(i)
                    jobs[i].failed(error_text(exc))
                continue
            if what == "finish":
                jobs[i].done(res)
                continue
            waiting[i].discard(fut)
            if not waiting[i] and i not in failed:
                pending[_submit_finish(ex, jobs[i])] = ("finish", i)


def _submit_finish(ex: Executor, job: PartsJob) -> Any:
    return Task(finish_job, (job.finish, job.parts), key=job.finish.key).submit(ex)
