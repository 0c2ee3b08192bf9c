"""Work split into parts, then finished: the scheduling that predict and analysis share.

A job is a list of part tasks, each writing one hidden file (atomically), and one
finishing task that combines those files into the products. :func:`run_parts_jobs` runs
them on any :class:`~vercye_lai.executor.Executor`: a part whose file exists was written
before an interruption and is not run again, and a job's finishing task is submitted as
soon as its last part returns, from this process, so executors need only ``submit``
(Dask's scheduler then places and retries the tasks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import error_text
from .executor import Executor


def token() -> str:
    """A fresh suffix for task keys (Dask would reuse the result of a key seen before)."""
    return f"{time.monotonic_ns():x}"


def window_groups(windows: Sequence[Any], part_pixels: int) -> list[list[Any]]:
    """Consecutive windows grouped into tasks of about ``part_pixels`` pixels."""
    groups: list[list[Any]] = [[]]
    n = 0
    for w in windows:
        if groups[-1] and n + w.width * w.height > part_pixels:
            groups.append([])
            n = 0
        groups[-1].append(w)
        n += w.width * w.height
    return groups


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

    ``done(result)`` and ``failed(reason)`` report the job's outcome.
    """

    parts: list[tuple[Path, Task]]
    finish: Task
    done: Callable[[Any], None]
    failed: Callable[[str], None]


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
            pending[job.finish.submit(ex)] = ("finish", i)
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
                pending[jobs[i].finish.submit(ex)] = ("finish", i)
