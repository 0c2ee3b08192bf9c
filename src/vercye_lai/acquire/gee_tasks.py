"""Earth Engine export tasks: their record across reruns and the waiting for them.

:class:`ExportState` is the JSON state file of :func:`vercye_lai.acquire.gee.export_gee`:
one :class:`TaskRecord` per export, so that a rerun neither submits a running export
again nor re-exports a finished date; :func:`wait_for_tasks` polls the tasks with backoff.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from vercye_lai.errors import DataIOError, ServiceError
from vercye_lai.io import write_text_atomic

log = logging.getLogger(__name__)

# Earth Engine task states (ee.batch.Task.State)
UNSUBMITTED, READY, RUNNING, COMPLETED = "UNSUBMITTED", "READY", "RUNNING", "COMPLETED"
FAILED, CANCELLED, CANCEL_REQUESTED, UNKNOWN = "FAILED", "CANCELLED", "CANCEL_REQUESTED", "UNKNOWN"
ACTIVE_STATES = frozenset({UNSUBMITTED, READY, RUNNING, CANCEL_REQUESTED})
#: States after which a date is exported again on a rerun.
RETRY_STATES = frozenset({FAILED, CANCELLED, UNKNOWN})


@dataclasses.dataclass
class TaskRecord:
    """One submitted export, as kept in the state file.

    Attributes
    ----------
    name
        File-name prefix ``{region}_{res}m_{date}`` (the key of the record).
    date
        ISO date of the scenes.
    task_id
        Earth Engine task id (``None`` before submission).
    state
        Last known task state (``READY``, ``RUNNING``, ``COMPLETED``, ``FAILED``…).
    folder
        Drive folder of the export.
    updated
        UTC time of the last state change, ISO format.
    error
        Earth Engine's error message of a failed task.
    """

    name: str
    date: str
    task_id: str | None = None
    state: str = UNSUBMITTED
    folder: str = ""
    updated: str = ""
    error: str | None = None


class ExportState:
    """The JSON file recording which exports were submitted and how they ended.

    A rerun reads it so that it neither submits a second task for a date whose task is
    still ``READY``/``RUNNING`` nor re-exports a ``COMPLETED`` date. Every change is
    written atomically (temporary file + rename), so an interrupted run leaves either the
    old or the new file, never half of one.

    Parameters
    ----------
    path
        The state file (created on the first :meth:`save`).
    """

    VERSION = 1

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[str, TaskRecord] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            self.records = {k: TaskRecord(**v) for k, v in doc.get("tasks", {}).items()}
        except (ValueError, TypeError, AttributeError) as exc:
            raise DataIOError(
                f"cannot read the export state file ({exc}); fix or delete it", path=self.path
            ) from exc

    def save(self) -> None:
        """Write the file atomically."""
        doc = {
            "version": self.VERSION,
            "tasks": {k: dataclasses.asdict(v) for k, v in sorted(self.records.items())},
        }
        write_text_atomic(self.path, json.dumps(doc, indent=2) + "\n")

    def get(self, name: str) -> TaskRecord | None:
        return self.records.get(name)

    def update(self, name: str, **fields: Any) -> TaskRecord:
        """Create or change the record ``name`` and save the file."""
        rec = self.records.get(name) or TaskRecord(name=name, date=fields.get("date", ""))
        for key, value in fields.items():
            setattr(rec, key, value)
        rec.updated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.records[name] = rec
        self.save()
        return rec

    def active(self) -> list[TaskRecord]:
        """Records of submitted tasks that have not finished yet."""
        return [r for r in self.records.values() if r.task_id and r.state in ACTIVE_STATES]


def backoff_delays(
    initial: float = 10.0, factor: float = 1.5, maximum: float = 300.0
) -> Iterable[float]:
    """Endless polling delays (s): ``initial``, ×``factor`` each time, capped at ``maximum``."""
    delay = initial
    while True:
        yield delay
        delay = min(maximum, delay * factor)


def refresh_states(ee, state: ExportState) -> dict[str, str]:
    """Ask Earth Engine for the state of every unfinished task and record it.

    Returns
    -------
    dict
        name → state, for the tasks asked about.
    """
    active = state.active()
    if not active:
        return {}
    try:
        statuses = ee.data.getTaskStatus([r.task_id for r in active])
    except Exception as exc:
        raise ServiceError(f"cannot read Earth Engine task status: {exc}") from exc
    by_id = {s.get("id"): s for s in statuses}
    out = {}
    for rec in active:
        status = by_id.get(rec.task_id, {"state": UNKNOWN})
        new = status.get("state", UNKNOWN)
        out[rec.name] = new
        if new != rec.state:
            log.info("%s: %s -> %s", rec.name, rec.state, new)
            state.update(rec.name, state=new, error=status.get("error_message"))
    return out


def wait_for_tasks(
    ee,
    state: ExportState,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    timeout: float | None = None,
    delays: Iterable[float] | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> dict[str, str]:
    """Poll until every task of the state file has finished (or ``timeout`` seconds pass).

    Parameters
    ----------
    on_progress
        Called with ``(finished, total)`` after every poll.
    timeout
        Give up after this many seconds (``None``: wait as long as it takes).
    delays
        Seconds between polls (default :func:`backoff_delays`: 10 s growing to 5 min).
    sleep, clock
        ``time.sleep`` and ``time.monotonic`` unless given (tests inject their own).

    Returns
    -------
    dict
        name → final (or last known) state of every task polled.
    """
    sleep = sleep or time.sleep
    clock = clock or time.monotonic
    watched = {r.name for r in state.active()}
    total = len(watched)
    delays = iter(delays if delays is not None else backoff_delays())
    t0 = clock()
    while True:
        refresh_states(ee, state)
        pending = [r for r in state.active() if r.name in watched]
        if on_progress:
            on_progress(total - len(pending), total)
        if not pending:
            break
        delay = next(delays)
        if timeout is not None and clock() - t0 + delay > timeout:
            log.warning("%d task(s) still running after %.0f s", len(pending), clock() - t0)
            break
        sleep(delay)
    return {n: state.records[n].state for n in sorted(watched)}


def summarize_states(states: Mapping[str, str]) -> str:
    """``"3 COMPLETED, 1 FAILED"`` from name → state."""
    counts: dict[str, int] = {}
    for s in states.values():
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no tasks"
