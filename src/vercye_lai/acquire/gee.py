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
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from vercye_lai.acquire import gdrive
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
from vercye_lai.acquire.scl import DEFAULT_SCL_MASK, scl_mask_setting
from vercye_lai.acquire.source import Source
from vercye_lai.errors import ConfigError, InputError, NoDataFoundError, ServiceError, require
from vercye_lai.grid import utm_crs
from vercye_lai.naming import date_range, stack_name
from vercye_lai.options import Options as OptionsBase
from vercye_lai.options import setting
from vercye_lai.stack import L8_BANDS, S2_BANDS_20M, STACK_NODATA

log = logging.getLogger(__name__)

DEFAULT_COLLECTION = "COPERNICUS/S2_SR_HARMONIZED"
CLOUD_SCORE_PLUS = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
#: Reflectance bands of the stack, as Earth Engine names them (S2_SR band names).
EE_REFLECTANCE_BANDS: tuple[str, ...] = ("B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12")
#: Image properties holding the mean angles (degrees) of a Sentinel-2 granule.
VIEW_ZENITH_PROPERTY = "MEAN_INCIDENCE_ZENITH_ANGLE_B8A"
VIEW_AZIMUTH_PROPERTY = "MEAN_INCIDENCE_AZIMUTH_ANGLE_B8A"
SUN_ZENITH_PROPERTY = "MEAN_SOLAR_ZENITH_ANGLE"
SUN_AZIMUTH_PROPERTY = "MEAN_SOLAR_AZIMUTH_ANGLE"
SCALE_FACTOR = 10000  # stored integer = round(value * SCALE_FACTOR)
MAX_PIXELS = 10**13
STATE_FILE = ".vercye-gee-tasks.json"


_DEG = math.pi / 180.0


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


def task_description(name: str) -> str:
    """A task description Earth Engine accepts (≤ 100 characters of ``[A-Za-z0-9.,:;_ -]``)."""
    return re.sub(r"[^A-Za-z0-9.,:;_ \-]", "_", name)[:100]


def scene_dates(
    timestamps_ms: Iterable[float | int], start: dt.date, end: dt.date
) -> list[dt.date]:
    """The distinct UTC dates of scene timestamps that fall in ``[start, end]``.

    Parameters
    ----------
    timestamps_ms
        ``system:time_start`` values (milliseconds since 1970-01-01 UTC).
    start, end
        Inclusive date range.
    """
    wanted = set(date_range(start, end))
    dates = {dt.datetime.fromtimestamp(float(t) / 1000.0, tz=dt.UTC).date() for t in timestamps_ms}
    return sorted(dates & wanted)


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


# --------------------------------------------------------------------------- Earth Engine


def import_ee():
    """The ``ee`` module, or a :class:`DependencyError` naming the ``gee`` extra."""
    return require("ee", "gee")


def initialize(ee, project: str | None = None) -> None:
    """``ee.Initialize`` with a clear error when the credentials are missing.

    On a headless server authenticate once with
    ``earthengine authenticate --auth_mode=notebook`` (prints a URL to open elsewhere and
    asks for the code), or point ``GOOGLE_APPLICATION_CREDENTIALS`` at a service account.
    """
    try:
        ee.Initialize(project=project)
    except Exception as exc:  # ee raises EEException, google.auth errors, or plain Exception
        raise ServiceError(
            f"cannot initialise Earth Engine ({exc}); authenticate first with "
            "`earthengine authenticate --auth_mode=notebook` and pass --project"
        ) from exc


def ee_geometry(ee, geometry):
    """A shapely geometry in EPSG:4326 (lon/lat degrees) as an ``ee.Geometry``."""
    from shapely.geometry import mapping

    return ee.Geometry(mapping(geometry), None, False)


def filtered_collection(
    ee,
    *,
    collection: str,
    geometry,
    start: dt.date,
    end: dt.date,
    max_cloud: float | None = None,
    cloud_property: str = "CLOUDY_PIXEL_PERCENTAGE",
):
    """Scenes of ``collection`` over ``geometry`` from ``start`` to ``end`` (inclusive).

    ``max_cloud`` (percent) filters on the scene's ``cloud_property``.
    """
    coll = (
        ee.ImageCollection(collection)
        .filterBounds(geometry)
        .filterDate(start.isoformat(), (end + dt.timedelta(days=1)).isoformat())
    )
    if max_cloud is not None:
        coll = coll.filter(ee.Filter.lte(cloud_property, max_cloud))
    return coll


def available_dates(ee, coll, start: dt.date, end: dt.date) -> list[dt.date]:
    """Distinct dates with scenes in an (already filtered) collection (one server call)."""
    try:
        stamps = coll.aggregate_array("system:time_start").getInfo()
    except Exception as exc:
        raise ServiceError(f"Earth Engine refused the scene query: {exc}") from exc
    return scene_dates(stamps or [], start, end)


def _cos_of(ee, degrees, band: str):
    """A constant image band ``cos(degrees)``; ``degrees`` is an ``ee.Number``."""
    return ee.Image.constant(degrees.multiply(_DEG)).cos().rename(band).toFloat()


def angle_bands(ee, image):
    """``cosVZA, cosSZA, cosRAA`` of one scene from its mean-angle properties (degrees).

    The view angles are those of band B8A; ``cosRAA = cos(sun azimuth − view azimuth)``.
    The bands are constant over the scene (Earth Engine keeps only the granule means).
    """
    vza = image.getNumber(VIEW_ZENITH_PROPERTY)
    sza = image.getNumber(SUN_ZENITH_PROPERTY)
    raa = image.getNumber(SUN_AZIMUTH_PROPERTY).subtract(image.getNumber(VIEW_AZIMUTH_PROPERTY))
    return ee.Image.cat(
        _cos_of(ee, vza, "cosVZA"), _cos_of(ee, sza, "cosSZA"), _cos_of(ee, raa, "cosRAA")
    )


@dataclasses.dataclass(frozen=True)
class CloudMask:
    """How clouds, shadows and snow are masked in Earth Engine.

    Attributes
    ----------
    method
        ``"scl"`` masks the SCL ``scl_classes``; ``"cloudscore"`` keeps pixels whose
        Cloud Score+ ``cs_band`` is ≥ ``cs_threshold``; ``"none"`` masks nothing.
    scl_classes
        SCL classes masked by ``"scl"``.
    cs_band, cs_threshold
        Cloud Score+ band (``cs`` or ``cs_cdf``) and the lowest score kept (0–1).
    """
    method: str = "scl"
    scl_classes: tuple[int, ...] = DEFAULT_SCL_MASK
    cs_band: str = "cs"
    cs_threshold: float = 0.6

    def __post_init__(self) -> None:
        if self.method not in ("scl", "cloudscore", "none"):
            raise ConfigError(
                f"cloud mask must be 'scl', 'cloudscore' or 'none', got {self.method!r}"
            )


def scene_stack(ee, image, *, mask: CloudMask = CloudMask()):
    """The 11 bands of one scene as physical values (cosines, reflectance factors), masked.

    Parameters
    ----------
    ee
        The ``ee`` module.
    image
        One ``COPERNICUS/S2_SR_HARMONIZED`` scene (with the Cloud Score+ band linked
        when ``mask.method == "cloudscore"``).
    mask
        Cloud masking.
    """
    refl = image.select(list(EE_REFLECTANCE_BANDS)).toFloat().divide(SCALE_FACTOR)
    # the angle bands are constant images: restrict them to where the scene has data
    valid = refl.mask().reduce(ee.Reducer.min())
    if mask.method == "scl":
        classes = [int(c) for c in mask.scl_classes]
        valid = valid.And(image.select("SCL").remap(classes, [0] * len(classes), 1))
    elif mask.method == "cloudscore":
        valid = valid.And(image.select(mask.cs_band).gte(mask.cs_threshold))
    return angle_bands(ee, image).addBands(refl).updateMask(valid)


@dataclasses.dataclass(frozen=True)
class EeSensor:
    """How one Landsat or HLS collection becomes the input stack in Earth Engine.

    Attributes
    ----------
    token
        The sensor token of the export names (``L30``, ``L8`` …).
    collection
        Earth Engine collection id.
    bands
        Its reflectance bands, in the stack's order (:attr:`inputs` without the cosines).
    inputs
        The stack's bands (:data:`~vercye_lai.stack.L8_BANDS` or ``S2_BANDS_20M``).
    scale, offset
        Reflectance = stored × scale + offset (Earth Engine's HLS bands are already
        reflectance; Landsat C2 L2 keeps the DN).
    quality, quality_bits
        The quality band and the bits of it that mask a pixel.
    angles
        ``"bands"``: per-pixel ``SZA, SAA, VZA, VAA`` bands (degrees); ``"sun"``: the
        scene's ``SUN_ELEVATION``/``SUN_AZIMUTH`` properties and a nadir view.
    cloud_property
        The scene property ``max_cloud`` filters on.
    """
    token: str
    collection: str
    bands: tuple[str, ...]
    inputs: tuple[str, ...]
    scale: float
    offset: float
    quality: str
    quality_bits: tuple[int, ...]
    angles: str
    cloud_property: str


_L8_SR = ("SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7")
EE_SENSORS: dict[str, EeSensor] = {
    "l30": EeSensor("L30", "NASA/HLS/HLSL30/v002", ("B3", "B4", "B5", "B6", "B7"), L8_BANDS, 1.0, 0.0,
                    "Fmask", (0, 1, 2, 3, 4), "bands", "CLOUD_COVERAGE"),
    "s30": EeSensor("S30", "NASA/HLS/HLSS30/v002", ("B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12"),
                    S2_BANDS_20M, 1.0, 0.0, "Fmask", (0, 1, 2, 3, 4), "bands", "CLOUD_COVERAGE"),
    "l8": EeSensor("L8", "LANDSAT/LC08/C02/T1_L2", _L8_SR, L8_BANDS, 2.75e-5, -0.2, "QA_PIXEL",
                   (0, 1, 2, 3, 4, 5), "sun", "CLOUD_COVER"),
    "l9": EeSensor("L9", "LANDSAT/LC09/C02/T1_L2", _L8_SR, L8_BANDS, 2.75e-5, -0.2, "QA_PIXEL",
                   (0, 1, 2, 3, 4, 5), "sun", "CLOUD_COVER"),
}
SENSOR_CHOICES = ("s2", *EE_SENSORS)


def sensor_scene_stack(ee, image, sensor: EeSensor):
    """The stack bands of one Landsat or HLS scene: cosines and reflectance factors, with
    the quality bits of ``sensor`` masked (one ``bitwiseAnd`` of them all)."""
    refl = (image.select(list(sensor.bands)).toFloat().multiply(sensor.scale).add(sensor.offset)
            .rename(list(sensor.inputs[3:])))
    bits = sum(1 << b for b in sensor.quality_bits)
    valid = refl.mask().reduce(ee.Reducer.min()).And(image.select(sensor.quality).bitwiseAnd(bits).eq(0))
    if sensor.angles == "bands":
        def cos_band(expr, name):
            return expr.multiply(_DEG).cos().rename(name).toFloat()

        angles = ee.Image.cat(
            cos_band(image.select("VZA"), "cosVZA"), cos_band(image.select("SZA"), "cosSZA"),
            cos_band(image.select("SAA").subtract(image.select("VAA")), "cosRAA"))
    else:  # the scene-centre sun, a nadir view (Landsat's view zenith is at most 7.5 degrees)
        sza = ee.Number(90).subtract(image.getNumber("SUN_ELEVATION"))
        angles = ee.Image.cat(_cos_of(ee, ee.Number(0), "cosVZA"), _cos_of(ee, sza, "cosSZA"),
                              _cos_of(ee, image.getNumber("SUN_AZIMUTH"), "cosRAA"))
    return angles.addBands(refl).updateMask(valid)


def date_image(
    ee,
    *,
    collection: str,
    geometry,
    date: dt.date,
    max_cloud: float | None = None,
    mask: CloudMask = CloudMask(),
    sensor: EeSensor | None = None,
):
    """The export image of one date: masked scenes mosaicked, the stack's bands, int16 × 10000
    (Sentinel-2 L2A; with ``sensor``, one of :data:`EE_SENSORS`).

    Parameters
    ----------
    ee
        The ``ee`` module.
    collection
        Earth Engine collection id (an S2 L2A harmonized collection).
    geometry
        The region as an ``ee.Geometry``; the image is clipped to it.
    date
        UTC date of the scenes.
    max_cloud
        See :func:`filtered_collection`.
    mask
        Cloud masking (:class:`CloudMask`).

    Returns
    -------
    ee.Image
        Bands :data:`~vercye_lai.stack.S2_BANDS_20M`, ``int16`` = round(value × 10000),
        masked pixels unmasked to ``-32768`` inside the region.
    """
    cloud = sensor.cloud_property if sensor else "CLOUDY_PIXEL_PERCENTAGE"
    coll = filtered_collection(
        ee, collection=sensor.collection if sensor else collection, geometry=geometry, start=date, end=date,
        max_cloud=max_cloud, cloud_property=cloud,
    )
    if mask.method == "cloudscore" and sensor is None:
        coll = coll.linkCollection(ee.ImageCollection(CLOUD_SCORE_PLUS), [mask.cs_band])
    # mosaic() puts the last image on top: the least cloudy scene wins where they overlap
    coll = coll.sort(cloud, False)
    if sensor is None:
        stacks = coll.map(lambda img: scene_stack(ee, img, mask=mask))
    else:
        stacks = coll.map(lambda img: sensor_scene_stack(ee, img, sensor))
    # the day's scenes (adjacent tiles, overlapping orbits) become one image
    mosaic = stacks.mosaic().select(list(sensor.inputs if sensor else S2_BANDS_20M))
    scaled = mosaic.multiply(SCALE_FACTOR).round().toInt16()
    return scaled.unmask(STACK_NODATA, False).clip(geometry)


def export_task(
    ee,
    image,
    *,
    name: str,
    folder: str,
    region,
    scale: float,
    crs: str,
    max_pixels: int = MAX_PIXELS,
):
    """An (unstarted) ``Export.image.toDrive`` task writing ``{folder}/{name}*.tif``."""
    return ee.batch.Export.image.toDrive(
        image=image,
        description=task_description(name),
        folder=folder.strip("/"),
        fileNamePrefix=name,
        region=region,
        scale=scale,
        crs=crs,
        maxPixels=max_pixels,
        fileFormat="GeoTIFF",
        formatOptions={"noData": STACK_NODATA},
    )


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
        return CloudMask(self.cloud_mask, self.scl_mask, cs_threshold=self.cs_threshold)

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


SOURCE = Source(
    kind="gee",
    options=Options,
    acquire=acquire,
    in_process=True,  # Earth Engine and Drive log-ins happen in this process
    needs_geometry=True,
)
