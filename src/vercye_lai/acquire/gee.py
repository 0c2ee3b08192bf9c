"""Per-date 11-band stacks exported from Google Earth Engine to Google Drive.

The module has two halves:

* pure, offline parts — date planning, export names, the Drive folder, the JSON state
  file of submitted tasks, the export plan and the polling loop's bookkeeping;
* the Earth Engine calls — the per-date image (filter, cloud mask, angle bands, mosaic,
  scaling) and the export task — which take the ``ee`` module as their first argument so
  that tests can pass a recording double instead of the real ``earthengine-api``.

Storage form of the exported GeoTIFFs
-------------------------------------
Every band is an ``int16`` = round(value × 10000): reflectance factors (the harmonized
L2A DNs, whose BOA offset Earth Engine has already removed) and the cosines of the angles;
``-32768`` is nodata (declared in the file). Earth Engine cannot write a GDAL scale/offset
into the GeoTIFF, so the files carry **no declared scale**: the stack reader treats an
integer stack without a declared scale as ×1e-4 (as the reference implementation's exports
are). Band descriptions are not written either; the band order is :data:`vercye_lai.stack.S2_BANDS_20M`.
Earth Engine splits large exports into ``{name}-0000000000-0000000000.tif`` parts, which
``vercye-lai mosaic`` joins into one VRT per date.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from vercye_lai.acquire import gdrive
from vercye_lai.acquire.gee_images import (  # noqa: F401 - the Earth Engine side, part of this module's API
    DEFAULT_COLLECTION,
    EE_SENSORS,
    SENSOR_CHOICES,
    CloudMask,
    available_dates,
    date_image,
    ee_geometry,
    export_task,
    filtered_collection,
    import_ee,
    initialize,
    scene_dates,
    task_description,
)
from vercye_lai.acquire.gee_tasks import (  # noqa: F401 - the task bookkeeping, part of this module's API
    ACTIVE_STATES,
    COMPLETED,
    FAILED,
    READY,
    RETRY_STATES,
    RUNNING,
    ExportState,
    TaskRecord,
    backoff_delays,
    refresh_states,
    summarize_states,
    wait_for_tasks,
)
from vercye_lai.acquire.scl import cloud_buffer_setting, scl_mask_setting
from vercye_lai.acquire.source import Source
from vercye_lai.errors import ConfigError, InputError, NoDataFoundError, ServiceError
from vercye_lai.grid import utm_crs
from vercye_lai.naming import date_range, stack_name
from vercye_lai.options import Options as OptionsBase
from vercye_lai.options import setting

log = logging.getLogger(__name__)

STATE_FILE = ".vercye-gee-tasks.json"


# --------------------------------------------------------------------------- pure parts


def export_name(region: str, resolution: float, date: dt.date, sensor: str | None = None) -> str:
    """Drive file-name prefix of one export: ``{region}_{res}m_{date}[_{SENSOR}]`` (no extension)."""
    return stack_name(region, resolution, date, ext="", sensor=sensor)


def drive_folder(region: str, name: str | None = None) -> str:
    """Drive folder of a region's exports: ``{region}/``, or ``{name}/`` when given.

    Earth Engine takes a single folder *name*, not a path: it writes into the folder of
    that name wherever it is in the Drive (creating it at the root when missing), and a
    ``/`` inside the name is kept literally. So ``name`` may not contain ``/``.
    """
    name = (name or region).strip("/")
    if not name or "/" in name:
        raise InputError(f"a Drive folder is one folder name, without '/', got {name!r}")
    return f"{name}/"


@dataclasses.dataclass(frozen=True)
class PlannedExport:
    """What a run will do for one date.

    Attributes
    ----------
    date
        Scene date.
    name
        File-name prefix ``{region}_{res}m_{date}``.
    folder
        Drive folder.
    action
        ``"export"`` (submit a task), ``"skip"`` (finished or still running).
    reason
        Why, in words: ``"new"``, ``"COMPLETED"``, ``"RUNNING (task …)"``,
        ``"retry after FAILED"``.
    """
    date: dt.date
    name: str
    folder: str
    action: str
    reason: str


def plan_exports(
    dates: Sequence[dt.date],
    *,
    region: str,
    resolution: float,
    folder: str,
    state: ExportState | None = None,
    overwrite: bool = False,
    sensor: str | None = None,
) -> list[PlannedExport]:
    """Decide, for each date, whether to submit an export or skip it (``sensor``: the
    token of the export names, ``None`` for Sentinel-2).

    Parameters
    ----------
    dates
        Dates that have scenes over the region.
    region, resolution
        Region name and pixel size (m) of the export names.
    folder
        Drive folder.
    state
        The state file of earlier runs (statuses refreshed by the caller).
    overwrite
        Export ``COMPLETED`` dates again (running tasks are still never duplicated).
    """
    plan = []
    for date in dates:
        name = export_name(region, resolution, date, sensor)
        rec = state.get(name) if state else None
        if rec is None or not rec.task_id:
            action, reason = "export", "new"
        elif rec.state in ACTIVE_STATES:
            action, reason = "skip", f"{rec.state} (task {rec.task_id})"
        elif rec.state == COMPLETED and not overwrite:
            action, reason = "skip", COMPLETED
        elif rec.state == COMPLETED:
            action, reason = "export", "overwrite COMPLETED"
        else:
            action, reason = "export", f"retry after {rec.state}"
        plan.append(PlannedExport(date, name, folder, action, reason))
    return plan


def format_plan(plan: Sequence[PlannedExport]) -> str:
    """The plan as a table, one line per date (what ``--dry-run`` prints)."""
    if not plan:
        return "nothing to do\n"
    width = max(len(p.name) for p in plan)
    lines = [f"{'date':<10}  {'action':<6}  {'name':<{width}}  folder  reason"]
    lines += [
        f"{p.date.isoformat():<10}  {p.action:<6}  {p.name:<{width}}  {p.folder}  {p.reason}"
        for p in plan
    ]
    n = sum(p.action == "export" for p in plan)
    lines.append(f"{n} export(s) to submit, {len(plan) - n} skipped")
    return "\n".join(lines) + "\n"


# --- the options of the ``gee`` source and of ``vercye-lai export-gee`` ----------------------

CLOUD_MASKS = ("scl", "cloudscore", "none")


@dataclasses.dataclass(frozen=True)
class Options(OptionsBase):
    """The ``gee`` source: exports from Earth Engine to Drive, downloaded in the run."""
    project: str | None = setting(None, help="Google Cloud project registered for Earth Engine.")
    sensor: str = setting(
        "s2", choices=SENSOR_CHOICES,
        help="s2 (--collection), or l30/s30 (NASA/HLS/HLS{L,S}30/v002: Fmask, angle bands), "
             "l8/l9 (LANDSAT/LC0{8,9}/C02/T1_L2: QA_PIXEL, sun from the scene, nadir view), exported "
             "at 30 m as {region}_30m_{date}_{SENSOR}.")
    collection: str = setting(DEFAULT_COLLECTION, help="Earth Engine Sentinel-2 L2A collection.")
    cloud_mask: str = setting(
        "scl", choices=CLOUD_MASKS,
        help="Mask clouds with the SCL classes of --scl-mask, or with Cloud Score+ "
        "(cs ≥ --cs-threshold).")
    scl_mask: tuple[int, ...] = scl_mask_setting()
    cloud_buffer: int = cloud_buffer_setting()
    cs_threshold: float = setting(
        0.6, min=0, max=1, help="Cloud Score+ 'cs' value at or above which a pixel is kept.")
    max_cloud: float | None = setting(
        None, min=0, max=100,
        help="Skip scenes whose CLOUDY_PIXEL_PERCENTAGE is above this (percent).")
    folder: str | None = setting(
        None, cli="--drive-folder", default_help="the region name",
        help="Drive folder name for the exports (one name, no '/').")
    crs: str | None = setting(
        None, default_help="UTM zone of the region", help="Export CRS, e.g. EPSG:32636.")
    timeout: float | None = setting(
        None, min=0, help="Stop waiting for the exports after this many seconds.")
    drive_folder_id: str | None = setting(
        None, cli=None, help="Drive folder id to download the exports from in the run.")
    client_secret: Path | None = setting(
        None, cli=None, exists=True, help="OAuth client secret (Desktop app) for Drive.")
    token: Path | None = setting(None, cli=None, help="OAuth token file for Drive.")

    @property
    def mask(self) -> CloudMask:
        return CloudMask(self.cloud_mask, self.scl_mask, cs_threshold=self.cs_threshold, buffer=self.cloud_buffer)

    def export_resolution(self, resolution: float) -> float:
        """The pixel size (m) of the exports: ``resolution`` for Sentinel-2, 30 m for Landsat
        and HLS (their own; the one place this rule lives)."""
        return resolution if self.sensor == "s2" else 30.0


def export_gee(
    *,
    region: str,
    geometry,
    start: dt.date,
    end: dt.date,
    resolution: float,
    state_file: str | Path,
    options: Options | None = None,
    dry_run: bool = False,
    overwrite: bool = False,
    on_submit: Callable[[PlannedExport], None] | None = None,
) -> list[PlannedExport]:
    """Submit one Drive export per date with scenes over a region (``options.sensor``: ``s2``,
    or a Landsat/HLS collection of :data:`EE_SENSORS`, exported as ``…_{SENSOR}`` at 30 m).

    Parameters
    ----------
    region
        Region name (export names ``{region}_{res}m_{date}``, Drive folder ``{region}/``).
    geometry
        Region geometry, shapely, EPSG:4326 (lon/lat degrees).
    start, end
        Inclusive date range (UTC dates).
    resolution
        Pixel size of a Sentinel-2 export (m); Landsat and HLS are exported at 30 m
        (:meth:`Options.export_resolution`).
    state_file
        JSON record of submitted tasks (see :class:`ExportState`).
    options
        The ``gee`` options (:class:`Options`: project, sensor, collection, cloud mask,
        scene cloud filter, Drive folder — default: the region name —, CRS — default: the
        UTM zone of the region's centroid); default ``Options()``.
    dry_run
        Query the dates and print nothing; return the plan without submitting.
    overwrite
        Export dates already ``COMPLETED`` again.
    on_submit
        Called after each submitted task (progress display).

    Returns
    -------
    list of PlannedExport
        The plan, one entry per date with scenes.

    Raises
    ------
    NoDataFoundError
        When no scene of the collection covers the region in the date range.
    """
    options = options or Options()
    project, sensor, collection = options.project, options.sensor, options.collection
    mask, max_cloud, folder, crs = options.mask, options.max_cloud, options.folder, options.crs
    resolution = options.export_resolution(resolution)
    ee = import_ee()
    initialize(ee, project)
    date_range(start, end)  # validates the order before any server call
    state = ExportState(state_file)
    region_ee = ee_geometry(ee, geometry)
    if sensor != "s2" and sensor not in EE_SENSORS:
        raise ConfigError(f"sensor: {sensor!r} is not allowed; allowed values: {', '.join(SENSOR_CHOICES)}")
    profile = EE_SENSORS.get(sensor)
    if profile is not None:
        collection = profile.collection
    coll = filtered_collection(
        ee, collection=collection, geometry=region_ee, start=start, end=end, max_cloud=max_cloud,
        cloud_property=profile.cloud_property if profile else "CLOUDY_PIXEL_PERCENTAGE",
    )
    dates = available_dates(ee, coll, start, end)
    if not dates:
        cloud = f" with at most {max_cloud}% clouds" if max_cloud is not None else ""
        raise NoDataFoundError(
            f"no {collection} scene{cloud} over region {region!r} between {start} and {end}"
        )
    if state.active():
        refresh_states(ee, state)
    folder = drive_folder(region, folder)
    plan = plan_exports(
        dates,
        region=region,
        resolution=resolution,
        folder=folder,
        state=state,
        overwrite=overwrite,
        sensor=profile.token if profile else None,
    )
    if dry_run:
        return plan
    if crs is None:
        c = geometry.centroid
        crs = utm_crs(c.x, c.y)
    for item in plan:
        if item.action != "export":
            continue
        image = date_image(
            ee,
            collection=collection,
            geometry=region_ee,
            date=item.date,
            max_cloud=max_cloud,
            mask=mask,
            sensor=profile,
        )
        task = export_task(
            ee,
            image,
            name=item.name,
            folder=item.folder,
            region=region_ee,
            scale=resolution,
            crs=crs,
        )
        try:
            task.start()
        except Exception as exc:
            raise ServiceError(f"Earth Engine refused the export {item.name}: {exc}") from exc
        state.update(
            item.name,
            date=item.date.isoformat(),
            task_id=task.id,
            state=READY,
            folder=item.folder,
            error=None,
        )
        log.info("submitted %s (task %s) to Drive folder %s", item.name, task.id, item.folder)
        if on_submit:
            on_submit(item)
    return plan


def acquire(region, options: Options, out_dir: Path, *, resolution: float,
            state_dir: Path) -> dict[dt.date, Path]:
    """Submit the exports of ``region``'s dates, wait for them and download them from Drive
    into ``out_dir`` (without ``drive_folder_id``: submit only, and say so)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    s2 = options.sensor == "s2"
    state_file = state_dir / (f"gee_{region.name}.json" if s2 else f"gee_{region.name}_{options.sensor}.json")
    resolution = options.export_resolution(resolution)
    export_gee(region=region.name, geometry=region.shape(), start=region.start, end=region.end,
               resolution=resolution, state_file=state_file, options=options)
    if not options.drive_folder_id:
        log.warning("%s: exports submitted; set source.drive_folder_id to download them in the "
                    "run", region.name)
        return {}
    wait_for_tasks(import_ee(), ExportState(state_file), timeout=options.timeout)
    service = gdrive.build_service(gdrive.load_credentials(options.client_secret, options.token))
    gdrive.download_folder(service, options.drive_folder_id, out_dir,
                           pattern=f"{region.name}_{resolution:g}m_*.tif")
    return {}


SOURCE = Source("gee", Options, acquire, in_process=True, sensors=lambda o: frozenset({o.sensor.upper()}))  # Earth Engine and Drive log-ins happen in this process
