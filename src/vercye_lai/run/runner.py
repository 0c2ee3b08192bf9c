"""The runner: every region through acquire → mosaic → predict → analyze → quicklook.

It only orchestrates. Each step's own module says what its units of work are and whether
each is up to date (:func:`vercye_lai.predict.plan_predict`,
:func:`vercye_lai.analysis.manifest.up_to_date`); the steps (:mod:`._steps`) ask, submit
what is due to the executor (split into parts where a unit is big: :mod:`vercye_lai.run.jobs`)
and the runner records every step in the :class:`~.summary.RunSummary`.

Layout of the output root::

    stacks/{region}/      acquired stacks and VRT mosaics   {region}_{res}m_{date}.{tif,vrt}
    lai/{region}/         products                          {region}_{res}m_{date}_LAI.tif
    analysis/{region}/{analysis}/   _STATS.csv, _MAX.tif, _QUICKLOOK.png, MANIFEST.json
    state/                Earth Engine export state
    run_summary.json      what the last run did

Every output is written atomically (hidden temporary file, then rename), so a run killed
at any moment and started again redoes only what is missing and ends with the same files
as an uninterrupted run.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from vercye_lai.analysis.fields import check_polygon_file
from vercye_lai.analysis.timeseries import adjustment_calibration
from vercye_lai.errors import NO_SPACE, ConfigError, InputError
from vercye_lai.io import open_raster
from vercye_lai.predict.products import check_model
from vercye_lai.run._steps import (  # noqa: F401 - _stacks, predict_options: part of this module's API
    _stacks,
    predict_options,
    step_acquire,
    step_analyze,
    step_mosaic,
    step_predict,
    step_quicklook,
)
from vercye_lai.run.config import STEPS, RunConfig
from vercye_lai.run.executor import Executor, SerialExecutor, make_executor
from vercye_lai.run.publish import publish
from vercye_lai.run.summary import RunSummary, StepSummary, UnitFn, not_run_after

log = logging.getLogger(__name__)

LOG_NAME = "run.log"


def _mark_downstream(earlier: Sequence[StepSummary], step: StepSummary) -> None:
    """Dry run: a unit up to date now is due anyway when an earlier step will redo its region."""
    due = {u.region: s.step for s in earlier for u in s.units if u.status == "planned"}
    for u in step.units:
        if u.status == "skipped" and u.region in due and step.step in ("analyze", "quicklook"):
            u.status, u.reason = "planned", f"after {due[u.region]}: its inputs will change"


_STEP_FUNCS: dict[str, Callable[..., StepSummary]] = {
    "acquire": step_acquire, "mosaic": step_mosaic, "predict": step_predict,
    "analyze": step_analyze, "quicklook": step_quicklook,
}


# ==================================================================== the run


def _check_before_steps(cfg: RunConfig, steps: Sequence[str]) -> None:
    """What the steps to run will load, loaded now: a model, variable, error network or
    calibration that cannot be, an analysis' calibration file, fields that are points or a
    crop mask that is no raster stop the run here, not after hours of acquisition and
    prediction."""
    if "predict" in steps or ("acquire" in steps and any(src.source.products for src in cfg.sources)):
        try:
            check_model(cfg.predict)
        except InputError as exc:
            if exc.path is not None:  # it names its own file (a coefficient or calibration file)
                raise
            raise ConfigError(f"[predict] {exc.message}", path=cfg.path) from exc
    if "analyze" in steps:  # these name their own files
        for analysis in cfg.analyses:
            if analysis.options.adjustment_file is not None:
                adjustment_calibration(analysis.options.adjustment_file)
            if analysis.options.mode != "raster":
                check_polygon_file(analysis.geometry, layer=analysis.options.layer)
            else:  # a crop mask: a georeferenced raster (its metadata)
                open_raster(analysis.geometry).close()


def _stopped(how: str, name: str, steps: Sequence[str]) -> str:
    """Why the run stopped in step ``name``, and the steps it did not run (logged as an error)."""
    rest = steps[steps.index(name) + 1:] if name in steps else []
    text = f"{how} in step {name}" + (f"; not run: {', '.join(rest)}" if rest else "")
    log.error("%s", text)
    return text


def run_pipeline(
    cfg: RunConfig,
    *,
    only: Iterable[str] | None = None,
    dry_run: bool = False,
    executor: Executor | None = None,
    on_step: Callable[[str], None] | None = None,
    on_unit: UnitFn | None = None,
    write_summary: bool = True,
) -> RunSummary:
    """Run the steps of ``cfg`` in order; return (and write) the summary.

    Parameters
    ----------
    cfg
        A config from :func:`load_config`.
    only
        Steps to run (default: all of :data:`STEPS`, in that order).
    dry_run
        Plan only: list every unit that would run (``planned``) or be skipped.
    executor
        Use this executor (it is not closed); default: one made from the config.
    on_step, on_unit
        Called when a step starts and after every unit (progress display).
    write_summary
        Write ``run_summary.json`` in the output root (not on a dry run).

    Notes
    -----
    A unit that fails is recorded with its reason and the others go on; a step never
    stops the run, except on a full disk (``summary.stopped`` says where). ``summary.ok``
    is false when anything failed.
    """
    steps = list(only) if only else list(STEPS)
    for s in steps:
        if s not in STEPS:
            raise ConfigError(f"--only: {s!r} is not allowed; allowed values: {', '.join(STEPS)}")
    steps = [s for s in STEPS if s in steps]
    _check_before_steps(cfg, steps)
    summary = RunSummary(cfg.output_root, executor.kind if executor else cfg.executor, dry_run,
                         started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                         config=str(cfg.path) if cfg.path else None)
    t0 = time.perf_counter()
    own = executor is None and not dry_run
    # a dry run submits nothing: no threads or cluster to start
    ex = executor or (make_executor(cfg.executor, workers=cfg.workers, dask=cfg.dask) if own else SerialExecutor())
    name = steps[0] if steps else ""
    try:
        for name in steps:
            if on_step:
                on_step(name)
            log.info("step %s", name)
            step = _STEP_FUNCS[name](cfg, ex, dry_run=dry_run, on_unit=on_unit)
            if dry_run:
                _mark_downstream(summary.steps, step)
            else:
                not_run_after(summary.steps, step)
            summary.steps.append(step)
            if step.disk_full:
                summary.stopped = _stopped(f"{NO_SPACE}: stopped", name, steps)
                break
    except BaseException as exc:  # Ctrl-C, SIGTERM, an error: the summary must not say the run was ok
        how = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed ({type(exc).__name__})"
        summary.stopped = _stopped(how, name, steps)
        raise
    finally:
        if own:
            ex.close()
        summary.seconds = time.perf_counter() - t0
        if write_summary and not dry_run:
            cfg.output_root.mkdir(parents=True, exist_ok=True)
            summary.write()
    if write_summary and not dry_run and not summary.stopped:
        _, summary.unpublished = publish(cfg.output_root)
        if summary.unpublished:  # the run is not ok: its summary says why (the report read it before)
            summary.write()
    return summary
