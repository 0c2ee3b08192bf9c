"""What a run did: one :class:`UnitResult` per unit of work, grouped by step
(``run_summary.json``)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vercye_lai.errors import NO_SPACE
from vercye_lai.io import write_text_atomic

log = logging.getLogger(__name__)

SUMMARY_NAME = "run_summary.json"


@dataclass
class UnitResult:
    """One unit of work: a date's prediction, an analysis, a quicklook..."""

    step: str
    region: str
    item: str
    status: str  # done | skipped | failed | planned
    reason: str = ""
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)


@dataclass
class StepSummary:
    """All units of one step."""

    step: str
    units: list[UnitResult] = field(default_factory=list)
    #: units failed for want of inputs (:meth:`StepLog.nothing_to_read`): see :func:`not_run_after`
    missing: list[UnitResult] = field(default_factory=list, repr=False, compare=False)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(u.status == status for u in self.units)

    @property
    def disk_full(self) -> bool:
        """A unit failed on a full disk: the run stops (every later write would fail)."""
        return any(u.status == "failed" and NO_SPACE in u.reason for u in self.units)

    @property
    def status(self) -> str:
        for s in ("failed", "planned", "done"):
            if self.count(s):
                return s
        return "skipped"

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "status": self.status,
                **{s: self.count(s) for s in ("done", "skipped", "failed", "planned")},
                "seconds": round(self.seconds, 3), "units": [dataclasses.asdict(u) for u in self.units]}


@dataclass
class RunSummary:
    """What a run did, step by step (``run_summary.json``)."""

    output_root: Path
    executor: str
    dry_run: bool = False
    steps: list[StepSummary] = field(default_factory=list)
    started: str = ""
    seconds: float = 0.0
    config: str | None = None
    #: why the run stopped before its last step ("" when it did not)
    stopped: str = ""
    #: what of the catalogue and the report could not be written, and why
    unpublished: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.stopped and not self.unpublished and not any(s.count("failed") for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "output_root": str(self.output_root), "executor": self.executor,
                "dry_run": self.dry_run, "started": self.started, "seconds": round(self.seconds, 3),
                "ok": self.ok, "stopped": self.stopped, "unpublished": self.unpublished,
                "steps": [s.to_dict() for s in self.steps]}

    def write(self, path: str | Path | None = None) -> Path:
        """Write the summary as JSON, atomically (default: ``run_summary.json`` in the root)."""
        return write_text_atomic(path or self.output_root / SUMMARY_NAME,
                                 json.dumps(self.to_dict(), indent=2) + "\n")


UnitFn = Callable[[UnitResult], None]


#: what a step's units are, in its one-line count of skipped units
_UNITS = {"acquire": "regions", "mosaic": "dates", "predict": "dates", "analyze": "analyses", "quicklook": "PNGs"}


class StepLog:
    """Collects the units of one step and reports each as it is recorded."""

    def __init__(self, name: str, on_unit: UnitFn | None) -> None:
        self.summary = StepSummary(name)
        self.on_unit = on_unit
        self.t0 = time.perf_counter()

    def add(self, region: str, item: str, status: str, reason: str = "", seconds: float = 0.0,
            outputs: Sequence[Path | str] = ()) -> UnitResult:
        u = UnitResult(self.summary.step, region, item, status, reason, round(seconds, 3),
                       [str(p) for p in outputs])
        self.summary.units.append(u)
        if status == "failed":
            log.error("%s %s %s: %s", u.step, region, item, reason)
        else:  # a skipped unit is one line of the step's count (finish), a planned one a line of
            # the plan the command prints: neither is logged one by one but with -v
            log.log(logging.DEBUG if status in ("skipped", "planned") else logging.INFO, "%s %s %s: %s%s", u.step,
                    region, item, status, f" ({reason})" if reason else "")
        if self.on_unit:
            self.on_unit(u)
        return u

    def nothing_to_read(self, region: str, item: str, why: str, *, dry_run: bool) -> UnitResult:
        """A unit whose inputs are not there: planned after the earlier steps on a dry run;
        on a run, failed — or not run, when an earlier step failed for the region (see
        :func:`not_run_after`)."""
        if dry_run:
            return self.add(region, item, "planned", f"after the earlier steps (nothing to read yet: {why})")
        # logged by not_run_after, once it knows whether an earlier step is the cause
        u = UnitResult(self.summary.step, region, item, "failed", why)
        self.summary.units.append(u)
        self.summary.missing.append(u)
        if self.on_unit:
            self.on_unit(u)
        return u

    def finish(self) -> StepSummary:
        self.summary.seconds = time.perf_counter() - self.t0
        by_reason: dict[str, list[UnitResult]] = {}
        for u in self.summary.units:
            if u.status == "skipped":
                by_reason.setdefault(u.reason, []).append(u)
        for reason, units in by_reason.items():  # one line per kind of skip, not one per unit
            regions = ", ".join(sorted({u.region for u in units}))
            what = units[0].item if len(units) == 1 else f"{len(units)} {_UNITS.get(self.summary.step, 'units')}"
            log.info("%s %s: %s skipped%s", self.summary.step, regions, what, f" ({reason})" if reason else "")
        return self.summary


def not_run_after(earlier: Sequence[StepSummary], step: StepSummary) -> None:
    """A unit that found nothing to read because an earlier step failed for its region is
    not a failure of its own: ``skipped`` with ``not run: {step} failed`` (one log line);
    the others stay failed (logged as errors)."""
    failed: dict[str, str] = {}
    for s in earlier:
        for u in s.units:
            if u.status == "failed":
                failed.setdefault(u.region, s.step)
    for u in step.missing:
        if u.region in failed:
            u.status, u.reason = "skipped", f"not run: {failed[u.region]} failed"
            log.info("%s %s %s: %s", u.step, u.region, u.item, u.reason)
        else:
            log.error("%s %s %s: %s", u.step, u.region, u.item, u.reason)
