"""The steps of a run (acquire, mosaic, predict, analyze, quicklook), each over every region.

Each ``step_*`` asks the step's own module what its units of work are and whether each is
up to date, submits what is due to the executor (split into parts where a unit is big:
:mod:`vercye_lai.run.jobs`) and records every unit in a :class:`~.summary.StepLog`;
:mod:`vercye_lai.run.runner` runs them in order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from vercye_lai.acquire.mosaic import build_vrt, find_parts
from vercye_lai.analysis import manifest, tasks
from vercye_lai.analysis.manifest import read_manifest
from vercye_lai.analysis.plan import plan_analysis
from vercye_lai.analysis.quicklook import quicklook, quicklook_path
from vercye_lai.errors import LaiError, NoDataFoundError, error_text
from vercye_lai.io import up_to_date
from vercye_lai.naming import SENSORS, find_observations, stack_name
from vercye_lai.predict import (
    assemble_parts,
    date_parts,
    finishing_dates,
    plan_predict,
    pipelined,
    predict_file,
    predict_windows_to_part,
    stopping,
)
from vercye_lai.predict.products import gdal_env
from vercye_lai.run.config import AnalysisConfig, RegionConfig, RunConfig
from vercye_lai.run.executor import Executor, SerialExecutor
from vercye_lai.run.jobs import PartsJob, Task, run_parts_jobs, token
from vercye_lai.run.summary import StepLog, StepSummary, UnitFn

# ==================================================================== helpers


def _stacks(cfg: RunConfig, region: RegionConfig) -> dict[tuple[dt.date, str], Path]:
    """Input stacks of a region in its date range, of every sensor (Sentinel-2 at the run's
    resolution, Landsat/HLS at theirs; a VRT mosaic wins over a single stack)."""
    return find_observations(cfg.source_dirs(region.name), region.name, cfg.resolution,
                             sensors=SENSORS, start=region.start, end=region.end)


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - t0


# ==================================================================== acquire & mosaic


def _acquire_region(cfg: RunConfig, region: RegionConfig, i: int = 0, client: Any = None,
                    workers: int = 1) -> dict:
    """The stacks of one region from the run's source ``i`` (its ``acquire``); a source that
    writes the products itself (``stac-direct``) writes them in the LAI folder, on ``client``."""
    src = cfg.sources[i]
    if src.source.products:
        return src.source.acquire(region, src.options, cfg.lai_dir(region.name), resolution=cfg.resolution,
                                  state_dir=cfg.state_dir(), predict=predict_options(cfg, workers=workers),
                                  client=client)
    return src.source.acquire(region, src.options, cfg.stacks_dir(region.name),
                              resolution=cfg.resolution, state_dir=cfg.state_dir())


def step_acquire(cfg: RunConfig, ex: Executor, *, dry_run: bool = False,
                 on_unit: UnitFn | None = None) -> StepSummary:
    """Acquire every region's stacks from every source (one task per region and source;
    nothing to do for ``local``)."""
    st = StepLog("acquire", on_unit)
    several = len(cfg.sources) > 1
    before = {p: _mtime_ns(p) for r in cfg.regions if cfg.stacks_dir(r.name).is_dir()
              for p in cfg.stacks_dir(r.name).iterdir()}

    def label(r: RegionConfig, kind: str) -> str:
        return f"{r.start}..{r.end}" + (f" ({kind})" if several else "")

    def report(r: RegionConfig, kind: str, fut: Any) -> None:
        try:
            out, secs = fut.result()
        except Exception as exc:  # noqa: BLE001 - reported in the summary
            st.add(r.name, label(r, kind), "failed", error_text(exc))
            return
        paths = list(out.values())
        # the sources skip existing stacks themselves: tell a rerun from new work
        new = [p for p in paths if before.get(p) != _mtime_ns(p)]
        status = "done" if new or not paths else "skipped"
        st.add(r.name, label(r, kind), status, f"{len(new)} of {len(paths)} date(s) written", secs, paths)

    futures = {}
    for i, src in enumerate(cfg.sources):
        if src.kind == "local":  # read where they are: only check that the folder exists
            for r in cfg.regions:
                folder = src.options.stacks_folder(r.name)
                if folder.is_dir():
                    st.add(r.name, str(folder), "skipped", "local stacks: nothing to acquire")
                else:
                    st.add(r.name, str(folder), "failed", f"{folder}: stacks folder does not exist")
            continue
        if dry_run:
            for r in cfg.regions:
                st.add(r.name, label(r, src.kind), "planned",
                       f"{src.kind}: stacks that exist are skipped by the source itself")
            continue
        if src.source.in_process:  # log-ins need this process
            for r in cfg.regions:
                report(r, src.kind, SerialExecutor().submit(_timed, _acquire_region, cfg, r, i,
                                                            getattr(ex, "client", None), ex.workers))
            continue
        for r in cfg.regions:
            fut = ex.submit(_timed, _acquire_region, cfg, r, i, key=f"acquire-{r.name}-{i}-{token()}")
            futures[fut] = (r, src.kind)
    for fut in ex.as_completed(futures) if futures else ():
        report(*futures[fut], fut)
    return st.finish()


def _mtime_ns(p: Path) -> int | None:
    try:
        return p.stat().st_mtime_ns
    except OSError:
        return None


_PART_NAME = re.compile(r"_\d{4}-\d{2}-\d{2}(?:_[A-Z0-9]+)?-\d+-\d+$")  # …_{date}[_{SENSOR}]-{row}-{col}: a part
LANDSAT_RESOLUTION = 30.0  # HLS and Landsat stacks (hls, landsat and gee sources)


def _multi_part_dates(cfg: RunConfig, region: RegionConfig) -> dict[tuple[dt.date, str], list[Path]]:
    """Dates (and sensors) whose stack is split into parts (``…_{date}[_{SENSOR}]-{n}-{m}.tif``):
    these need a VRT. Sentinel-2 at the run's resolution, Landsat/HLS at 30 m."""
    found: dict[tuple[dt.date, str], list[Path]] = {}
    error: NoDataFoundError | None = None
    for sensor in SENSORS:
        res = cfg.resolution if sensor == "S2" else LANDSAT_RESOLUTION
        for folder in cfg.source_dirs(region.name):
            try:
                for d, p in find_parts(folder, region.name, res, sensor=sensor).items():
                    have = found.setdefault((d, sensor), [])
                    have.extend(x for x in p if x not in have)
            except NoDataFoundError as exc:
                if sensor == "S2":
                    error = error or exc
    if not found and error is not None:
        try:  # only another sensor's stacks at another resolution: nothing to mosaic, nothing wrong
            _stacks(cfg, region)
        except NoDataFoundError:
            raise error from None
    return {k: p for k, p in found.items() if region.start <= k[0] <= region.end
            and (len(p) > 1 or _PART_NAME.search(p[0].stem))}


PRODUCTS_BY_SOURCE = "products written by the source (stac-direct)"


def _products_by_source(cfg: RunConfig) -> bool:
    """Every source writes the LAI products itself (no stacks: no mosaic, no predict step)."""
    return all(src.source.products for src in cfg.sources)


def step_mosaic(cfg: RunConfig, ex: Executor, *, dry_run: bool = False, on_unit: UnitFn | None = None) -> StepSummary:
    """One VRT per date split into parts (in ``stacks/{region}``); single stacks need none."""
    st = StepLog("mosaic", on_unit)
    for r in cfg.regions:
        if _products_by_source(cfg):  # no stack is written: nothing to mosaic
            st.add(r.name, "-", "skipped", PRODUCTS_BY_SOURCE)
            continue
        try:
            dates = _multi_part_dates(cfg, r)
        except NoDataFoundError as exc:
            st.nothing_to_read(r.name, "-", error_text(exc), dry_run=dry_run)
            continue
        if not dates:
            st.add(r.name, "-", "skipped", "no date split into parts: no mosaic needed")
        for (d, sensor), parts in dates.items():
            res = cfg.resolution if sensor == "S2" else LANDSAT_RESOLUTION
            vrt = cfg.stacks_dir(r.name) / stack_name(r.name, res, d, ".vrt", sensor=sensor)
            label = d.isoformat() + ("" if sensor == "S2" else f" {sensor}")
            if up_to_date([vrt], parts):
                st.add(r.name, label, "skipped", "VRT up to date", outputs=[vrt])
            elif dry_run:
                st.add(r.name, label, "planned", f"VRT of {len(parts)} part(s)")
            else:
                try:  # a few lines of XML: no task needed
                    _, secs = _timed(build_vrt, parts, vrt, overwrite=True)
                    st.add(r.name, label, "done", f"{len(parts)} part(s)", secs, [vrt])
                except Exception as exc:  # noqa: BLE001
                    st.add(r.name, label, "failed", error_text(exc))
    return st.finish()


# ==================================================================== predict


def predict_options(cfg: RunConfig, *, workers: int = 1):
    """The run's :class:`~vercye_lai.predict.PredictOptions` with ``workers`` block threads
    (and, on Dask, the workers' GDAL cache)."""
    gdal = {"gdal_cache_mb": cfg.dask.gdal_cache_mb} if cfg.executor == "dask" else {}
    return dataclasses.replace(cfg.predict, workers=workers, overwrite=False, **gdal)


def step_predict(cfg: RunConfig, ex: Executor, *, dry_run: bool = False,
                 on_unit: UnitFn | None = None) -> StepSummary:
    """Predict every date of every region whose products are not up to date.

    Serial and threads: one date after another, its blocks on the executor's threads
    (memory bounded by the blocks of one date). Dask: each date split into part tasks of
    about ``predict.part_pixels`` pixels and one task assembling them.
    """
    st = StepLog("predict", on_unit)
    options = predict_options(cfg, workers=1 if ex.kind == "dask" else ex.workers)
    units: list[tuple[str, Any]] = []
    for r in cfg.regions:
        if _products_by_source(cfg):  # written by the acquire step
            st.add(r.name, "-", "skipped", PRODUCTS_BY_SOURCE)
            continue
        try:
            plan = plan_predict(_stacks(cfg, r), cfg.lai_dir(r.name), options=options)
        except NoDataFoundError as exc:
            st.nothing_to_read(r.name, "-", error_text(exc), dry_run=dry_run)
            continue
        except LaiError as exc:
            st.add(r.name, "-", "failed", error_text(exc))
            continue
        for u in plan:
            if u.up_to_date:
                st.add(r.name, u.label, "skipped",
                       "products complete and newer than the stack", outputs=list(u.outputs.values()))
            else:
                units.append((r.name, u))
    if dry_run:
        for region, u in units:
            st.add(region, u.label, "planned", u.src.name)
        return st.finish()

    def report(region: str, u: Any, res: Any) -> None:
        if res.status == "failed":
            st.add(region, u.label, "failed", res.error or "failed")
        else:
            st.add(region, u.label, res.status, f"{res.n_valid} valid px", res.seconds,
                   res.outputs)

    if ex.kind != "dask":
        # predict_file parallelises inside a date; dates' COG copies overlap the next date's
        # blocks, a bounded number of dates in flight (memory bounded by them: see pipelined)
        def job(u: Any, stop: threading.Event) -> Callable[[Callable[[], None]], Any]:
            return lambda blocks_done: predict_file(u.src, u.outputs, options=options, blocks_done=blocks_done,
                                                    stop=stop)

        # Ctrl-C, SIGTERM: the dates under way end at their next block; GDAL's block cache held at the
        # option's size for the dates that overlap (predict_dir says why)
        with stopping() as stop, gdal_env(options):
            for (region, u), fut in zip(units, pipelined((job(u, stop) for _, u in units), stop=stop,
                                                         finishing=finishing_dates(options.workers))):
                try:
                    report(region, u, fut.result())
                except Exception as exc:  # noqa: BLE001 - one bad date does not stop the others
                    st.add(region, u.label, "failed", error_text(exc))
                if st.summary.disk_full:  # ... but a full disk would fail them all
                    break
        return st.finish()

    jobs = []
    for region, u in units:
        failed = partial(st.add, region, u.label, "failed")
        try:
            date = date_parts(u, options)
        except Exception as exc:  # noqa: BLE001
            failed(error_text(exc))
            continue
        parts = [(p.path, Task(predict_windows_to_part, (u.src, p.path, list(p.windows)), {"options": options},
                               f"predict-{p.path.name.lstrip('.')}")) for p in date]
        finish = Task(assemble_parts, (u.src,), {"outputs": u.outputs, "options": options},
                      f"assemble-{u.src.stem}")
        jobs.append(PartsJob(parts, finish, partial(report, region, u), failed))
    run_parts_jobs(ex, jobs)
    return st.finish()


# ==================================================================== analyze & quicklook


def _analyses(cfg: RunConfig) -> Iterable[tuple[RegionConfig, AnalysisConfig]]:
    """Every (region, analysis) pair of the config."""
    for r in cfg.regions:
        for a in cfg.analyses:
            if a.regions is None or r.name in a.regions:
                yield r, a


def _analysis_job(cfg: RunConfig, ex: Executor, r: RegionConfig, a: AnalysisConfig,
                  files: Mapping[dt.date, Path], fp: Mapping[str, Any], st: StepLog) -> PartsJob:
    """One analysis as part tasks over (chunk of zones, chunk of dates) and a finishing task
    (:mod:`vercye_lai.analysis.tasks`: the same files as one ``analyze`` call)."""
    outdir = cfg.analysis_dir(r.name, a)
    plan = plan_analysis(cfg.lai_dir(r.name), outdir, r.name, a.geometry, resolution=cfg.resolution,
                         start=r.start, end=r.end, options=a.options, files=files)
    parts = tasks.split(plan, fp, zones_per_task=cfg.zones_per_task,
                           dates_per_task=cfg.dates_per_task, workers=ex.workers)
    part_tasks = [(p.path, Task(tasks.run_part, (plan, p), key=f"analyze-{r.name}-{a.name}"))
                  for p in parts]
    finish = Task(tasks.finish, (plan,), {"fp": fp},
                  key=f"analyze-finish-{r.name}-{a.name}")
    t0 = time.perf_counter()

    def done(m: dict[str, Any]) -> None:
        skipped = m.get("skipped") or {}
        note = f", {len(skipped)} zone(s) skipped ({next(iter(skipped.values()))})" if skipped else ""
        st.add(r.name, a.name, "done", f"{len(m['zones'])} zone(s), {m['n_files']} file(s), "
               f"{len(parts)} part(s){note}", time.perf_counter() - t0,
               manifest.manifest_outputs(outdir, m))

    return PartsJob(part_tasks, finish, done, partial(st.add, r.name, a.name, "failed"))


def step_analyze(cfg: RunConfig, ex: Executor, *, dry_run: bool = False,
                 on_unit: UnitFn | None = None) -> StepSummary:
    """Every analysis of every region, each split into parts over chunks of zones and dates
    (the outputs do not depend on the split); skipped when up to date
    (:func:`vercye_lai.analysis.manifest.up_to_date`)."""
    st = StepLog("analyze", on_unit)
    jobs = []
    for r, a in _analyses(cfg):
        outdir = cfg.analysis_dir(r.name, a)
        try:
            files = manifest.lai_files(cfg.lai_dir(r.name), r.name, resolution=cfg.resolution,
                                       start=r.start, end=r.end, options=a.options)
            fp = manifest.fingerprint(files, a.geometry, start=r.start, end=r.end,
                                      options=a.options)
        except NoDataFoundError as exc:
            st.nothing_to_read(r.name, a.name, error_text(exc), dry_run=dry_run)
            continue
        except (LaiError, OSError) as exc:
            st.add(r.name, a.name, "failed", error_text(exc))
            continue
        outputs = manifest.up_to_date(outdir, fp)
        if outputs is not None:
            st.add(r.name, a.name, "skipped", "outputs up to date", outputs=outputs)
        elif dry_run:
            st.add(r.name, a.name, "planned", f"{len(fp['inputs'])} LAI file(s)")
        else:
            try:
                jobs.append(_analysis_job(cfg, ex, r, a, files, fp, st))
            except Exception as exc:  # noqa: BLE001 - e.g. a geometry that meets no raster
                st.add(r.name, a.name, "failed", error_text(exc))
    run_parts_jobs(ex, jobs)
    return st.finish()


_PYPLOT_LOCK = threading.Lock()  # pyplot keeps global state: one figure at a time per process


def _quicklook_task(csv: Path, max_tif: Path, geometry: Path | None, layer: str | None = None) -> Path:
    with _PYPLOT_LOCK:
        return quicklook(csv, max_tif, geometry_path=geometry, layer=layer)


def step_quicklook(cfg: RunConfig, ex: Executor, *, dry_run: bool = False,
                   on_unit: UnitFn | None = None) -> StepSummary:
    """A PNG per analysed zone with a max-LAI map; skipped when newer than its CSV and map."""
    st = StepLog("quicklook", on_unit)
    futures = {}
    for r, a in _analyses(cfg):
        if a.quicklook:
            outdir = cfg.analysis_dir(r.name, a)
            manifest = read_manifest(outdir)
            if manifest is None:
                st.nothing_to_read(r.name, a.name, "no analysis output yet", dry_run=dry_run)
                continue
            geometry = a.geometry if a.options.mode != "raster" else None
            for z in manifest["zones"]:
                item = f"{a.name}/{z['name']}"
                if not z["max_tif"]:
                    st.add(r.name, item, "skipped", "no max-LAI map")
                    continue
                csv, tif = outdir / z["csv"], outdir / z["max_tif"]
                png = quicklook_path(csv)
                if up_to_date([png], [csv, tif]):
                    st.add(r.name, item, "skipped", "PNG up to date", outputs=[png])
                elif dry_run:
                    st.add(r.name, item, "planned", png.name)
                else:
                    futures[ex.submit(_timed, _quicklook_task, csv, tif, geometry, a.options.layer,
                                      key=f"quicklook-{png.stem}-{token()}")] = (r, item)
    for fut in ex.as_completed(futures):
        r, item = futures[fut]
        try:
            png, secs = fut.result()
            st.add(r.name, item, "done", "", secs, [png])
        except Exception as exc:  # noqa: BLE001
            st.add(r.name, item, "failed", error_text(exc))
    return st.finish()
