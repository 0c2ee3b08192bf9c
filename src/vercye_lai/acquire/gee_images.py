"""The Earth Engine side of the ``gee`` source: the per-date image (filter, cloud mask,
angle bands, mosaic, scaling) and the export task.

Every function takes the ``ee`` module as its first argument, so that tests pass a recording
double instead of the real ``earthengine-api`` (extra ``gee``, imported by :func:`import_ee`).
Storage form of the exports: see :mod:`vercye_lai.acquire.gee`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Iterable

from vercye_lai.acquire.scl import CLOUD_CLASSES, DEFAULT_SCL_MASK
from vercye_lai.errors import ConfigError, ServiceError, require
from vercye_lai.naming import date_range
from vercye_lai.stack import L8_BANDS, S2_BANDS_20M, STACK_NODATA

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
    buffer
        Pixels (of the export's grid) masked around clouds and shadows: SCL 3, 8, 9, 10
        among ``scl_classes``, or Cloud Score+ below the threshold, grown server-side with
        ``focal_max`` (see :func:`buffered`).
    """
    method: str = "scl"
    scl_classes: tuple[int, ...] = DEFAULT_SCL_MASK
    cs_band: str = "cs"
    cs_threshold: float = 0.6
    buffer: int = 0

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
        clouds = [c for c in CLOUD_CLASSES if c in classes]
        if clouds:
            valid = buffered(valid, image.select("SCL").remap(clouds, [1] * len(clouds), 0), mask.buffer)
    elif mask.method == "cloudscore":
        score = image.select(mask.cs_band)
        valid = buffered(valid.And(score.gte(mask.cs_threshold)), score.lt(mask.cs_threshold), mask.buffer)
    return angle_bands(ee, image).addBands(refl).updateMask(valid)


def buffered(valid, cloud, px: int):
    """``valid`` without the pixels within ``px`` pixels of ``cloud`` (1 = cloud or shadow):
    the cloud image grown server-side by ``focal_max`` over a square of side 2·px + 1, as
    :func:`vercye_lai.acquire.scl.dilate` does for the local sources; ``px`` 0: unchanged."""
    if px <= 0:
        return valid
    return valid.And(cloud.focal_max(px, "square", "pixels").Not())


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
    cloud_bits
        The bits of clouds and their shadows, grown by the cloud buffer.
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
    cloud_bits: tuple[int, ...] = ()


_L8_SR = ("SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7")
EE_SENSORS: dict[str, EeSensor] = {
    "l30": EeSensor("L30", "NASA/HLS/HLSL30/v002", ("B3", "B4", "B5", "B6", "B7"), L8_BANDS, 1.0, 0.0,
                    "Fmask", (0, 1, 2, 3, 4), "bands", "CLOUD_COVERAGE", (0, 1, 2, 3)),
    "s30": EeSensor("S30", "NASA/HLS/HLSS30/v002", ("B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12"),
                    S2_BANDS_20M, 1.0, 0.0, "Fmask", (0, 1, 2, 3, 4), "bands", "CLOUD_COVERAGE", (0, 1, 2, 3)),
    "l8": EeSensor("L8", "LANDSAT/LC08/C02/T1_L2", _L8_SR, L8_BANDS, 2.75e-5, -0.2, "QA_PIXEL",
                   (0, 1, 2, 3, 4, 5), "sun", "CLOUD_COVER", (1, 2, 3, 4)),
    "l9": EeSensor("L9", "LANDSAT/LC09/C02/T1_L2", _L8_SR, L8_BANDS, 2.75e-5, -0.2, "QA_PIXEL",
                   (0, 1, 2, 3, 4, 5), "sun", "CLOUD_COVER", (1, 2, 3, 4)),
}
SENSOR_CHOICES = ("s2", *EE_SENSORS)


def sensor_scene_stack(ee, image, sensor: EeSensor, buffer: int = 0):
    """The stack bands of one Landsat or HLS scene: cosines and reflectance factors, with
    the quality bits of ``sensor`` masked (one ``bitwiseAnd`` of them all), and ``buffer``
    pixels around its cloud and shadow bits (:func:`buffered`)."""
    refl = (image.select(list(sensor.bands)).toFloat().multiply(sensor.scale).add(sensor.offset)
            .rename(list(sensor.inputs[3:])))
    bits = sum(1 << b for b in sensor.quality_bits)
    valid = refl.mask().reduce(ee.Reducer.min()).And(image.select(sensor.quality).bitwiseAnd(bits).eq(0))
    clouds = sum(1 << b for b in sensor.cloud_bits if b in sensor.quality_bits)
    if clouds:
        valid = buffered(valid, image.select(sensor.quality).bitwiseAnd(clouds).neq(0), buffer)
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
        stacks = coll.map(lambda img: sensor_scene_stack(ee, img, sensor, mask.buffer))
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
