"""Scenes of per-band GeoTIFFs (HLS granules, Landsat Collection 2 scenes) → input stacks.

A :class:`Scene` is one acquisition of one tile or path/row: a file per band, a quality
band whose bits mask clouds, shadows and snow, and either per-pixel angle bands or an
acquisition time (the sun computed per pixel, the view assumed nadir). The scenes of one
date are brought onto the region's grid as :mod:`vercye_lai.acquire.safe` does for
Sentinel-2 tiles (the grid of the scene covering most of the region, anchored on its
corner; first valid pixel wins), one window at a time, and written as a stack of the
network's bands (:data:`~vercye_lai.stack.L8_BANDS` for Landsat and HLS L30,
:data:`~vercye_lai.stack.S2_BANDS_20M` for HLS S30) named with the sensor token.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from vercye_lai.acquire import warp
from vercye_lai.acquire.angles import angle_cosines, cosines
from vercye_lai.acquire.bands import sun_angles
from vercye_lai.acquire.offset import Sample, check_offset, offset_tag, read_sample
from vercye_lai.acquire.platform import platform_tag
from vercye_lai.acquire.scl import cloud_buffer_setting, cloud_buffer_tag, masked_pixels
from vercye_lai.acquire.source import expand_patterns
from vercye_lai.acquire.stac_search import GDAL_REMOTE_ENV
from vercye_lai.errors import ConfigError, InputError
from vercye_lai.grid import Grid
from vercye_lai.naming import stack_name
from vercye_lai.options import Options as OptionsBase
from vercye_lai.options import setting
from vercye_lai.stack import ANGLE_BANDS

log = logging.getLogger(__name__)

ANGLE_FILES = ("SZA", "SAA", "VZA", "VAA")


@dataclass(frozen=True)
class SceneSourceOptions(OptionsBase):
    """What the ``hls`` and ``landsat`` sources share: the catalogue's cloud filter and the
    stacks' resolution in a run."""
    max_cloud: float | None = setting(
        None, min=0, max=100, help="With --catalog: skip items whose eo:cloud_cover is above this (percent).")
    cloud_buffer: int = cloud_buffer_setting()
    resolution: float = setting(
        30.0, min=1, cli=None, help="Pixel size (m) of the stacks in a run (HLS and Landsat are 30 m, whatever "
        "the run's resolution for Sentinel-2).")


@dataclass(frozen=True)
class Scene:
    """One acquisition as per-band files.

    Attributes
    ----------
    sensor
        File-name token: ``L30``, ``S30``, ``L8``, ``L9``.
    product
        Granule or scene id.
    tile
        Tile or path/row (messages).
    time
        Acquisition time (UTC).
    bands
        Network band name (``B3`` …, in the numbering of :attr:`inputs`) → file.
    inputs
        The stack's bands, in order (angle cosines first).
    scale, offset
        Reflectance = stored × scale + offset.
    fill
        Stored fill value of the reflectance files (used where a file declares none).
    quality, quality_bits, quality_fill
        The mask file, the bits of it that mask a pixel, and its fill value (masked).
    angles
        ``SZA, SAA, VZA, VAA`` → file (degrees × ``angle_scale``, ``angle_fill`` = none);
        empty: the sun is computed from :attr:`time`, the view is ``view`` (degrees).
    platform
        The satellite as STAC names it (``sentinel-2c``, ``landsat-9``), if known.
    cloud_bits
        The quality bits of clouds and their shadows (dilated by ``--cloud-buffer``).
    offset_note
        What the offset check found (:func:`checked_scene`), for the stack's tags.
    """
    sensor: str
    product: str
    tile: str
    time: dt.datetime
    bands: Mapping[str, str | Path]  # local paths or GDAL hrefs (STAC assets)
    inputs: tuple[str, ...]
    scale: float
    offset: float
    fill: float | None
    quality: str | Path | None
    quality_bits: tuple[int, ...]
    quality_fill: int | None
    angles: Mapping[str, str | Path] = field(default_factory=dict)
    angle_scale: float = 0.01
    angle_fill: float | None = 40000
    view: tuple[float, float] = (0.0, 0.0)
    notes: tuple[str, ...] = ()
    platform: str | None = None
    cloud_bits: tuple[int, ...] = ()
    offset_note: str = ""

    @property
    def date(self) -> dt.date:
        return self.time.date()

    @property
    def source(self) -> str | Path:
        return next(iter(self.bands.values()))

    @functools.cached_property
    def _meta(self) -> tuple:
        with rasterio.open(self.source) as ds:
            return ds.crs, tuple(ds.bounds), abs(ds.transform.a)

    @property
    def crs(self):
        return self._meta[0]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return self._meta[1]

    @property
    def resolution(self) -> float:
        return self._meta[2]


def bits_set(q: np.ndarray, bits: Sequence[int], fill: int | None) -> np.ndarray:
    """True where any of ``bits`` is set in the quality values ``q`` (or ``q`` is ``fill``)."""
    q = q.astype(np.int64)
    mask = np.zeros(q.shape, bool)
    for b in bits:
        mask |= (q >> b) & 1 == 1
    if fill is not None:
        mask |= q == fill
    return mask


def checked_scene(scene: Scene, images: Callable[[str], Any] = str) -> Scene:
    """``scene`` with its offset checked against a coarse sample of its green, red and NIR
    files, its clear quality pixels as land (:func:`~vercye_lai.acquire.offset.check_offset`:
    an offset the data hold already is dropped); the note in :attr:`Scene.offset_note`."""
    nir = "B8A" if "B8A" in scene.bands else "B5"  # Sentinel-2 or Landsat numbering

    def sample(path, shape=None, nodata=scene.fill):
        return read_sample(images(str(path)), shape=shape, nodata=nodata)

    green = sample(scene.bands["B3"])
    land = np.isfinite(green)
    if scene.quality is not None:
        q = sample(scene.quality, green.shape, None)
        land &= np.isfinite(q) & ~bits_set(np.nan_to_num(q), scene.quality_bits, scene.quality_fill)
    checked = check_offset(scene.product, Sample(green, sample(scene.bands["B4"], green.shape),
                                                 sample(scene.bands[nir], green.shape), land),
                           scale=scene.scale, offset=scene.offset, what=f"{scene.sensor} scaling")
    return replace(scene, offset=checked.offset, offset_note=checked.note)


def scene_layer(scene: Scene, grid: Grid, resolution: float,
                images: Callable[[str], rasterio.DatasetReader] | None = None,
                cloud_buffer: int = 0) -> dict[str, np.ndarray]:
    """The stack bands of one scene on ``grid``: reflectances (NaN where nodata, masked by
    the quality bits, or within ``cloud_buffer`` pixels of a cloud or shadow bit) and angle
    cosines."""
    images = images or str
    out: dict[str, np.ndarray] = {}
    own = scene.resolution
    for band in scene.inputs:
        if band in ANGLE_BANDS:
            continue
        ds = images(str(scene.bands[band]))
        nodata = ds.nodata if isinstance(ds, rasterio.io.DatasetReaderBase) and ds.nodata is not None else scene.fill
        dn = warp.warp_to_grid(ds, grid, resampling=warp.choose_resampling(own, resolution), src_nodata=nodata)
        out[band] = dn * scene.scale + scene.offset
    if scene.quality is not None:
        how = warp.choose_resampling(own, resolution, categorical=True)
        clouds = [b for b in scene.cloud_bits if b in scene.quality_bits]
        masked = masked_pixels(  # NaN (no quality value), any masked part of the pixel, or near a cloud
            grid, lambda g, prepare: warp.warp_to_grid(images(str(scene.quality)), g, resampling=how, prepare=prepare),
            lambda q: bits_set(q, scene.quality_bits, scene.quality_fill), lambda q: bits_set(q, clouds, None),
            cloud_buffer)
        for band in out:
            out[band][masked] = np.nan
    if scene.angles:
        deg = {}
        for name in ANGLE_FILES:
            a = warp.warp_to_grid(images(str(scene.angles[name])), grid, resampling=warp.choose_resampling(own, resolution),
                             src_nodata=scene.angle_fill)
            deg[name] = a * scene.angle_scale
        out.update(cosines(deg["SZA"], deg["SAA"], deg["VZA"], deg["VAA"]))
    else:

        sun = sun_angles(scene.time, grid, view_zenith=scene.view[0], view_azimuth=scene.view[1])
        out.update(angle_cosines(sun, transform=grid.transform, crs=grid.crs, shape=grid.shape))
    return out


@dataclass
class SceneMosaic:
    """The scenes of one date over a region's grid, one window at a time (as
    :class:`vercye_lai.acquire.safe.DateMosaic`)."""
    scenes: Sequence[Scene]
    grid: Grid
    region: object
    resolution: float
    images: Callable[[str], rasterio.DatasetReader] | None = None
    cloud_buffer: int = 0

    def read(self, window: Window) -> dict[str, np.ndarray]:
        sub = self.grid.window(window)
        layers = (lambda scene=scene: scene_layer(scene, sub, self.resolution, self.images, self.cloud_buffer)
                  for scene in self.scenes)
        return warp.first_valid_window(layers, self.scenes[0].inputs, sub, self.region)


def scenes_in_range(scenes: Sequence[Scene], start: dt.date | None, end: dt.date | None, *,
                    what: str = "the files") -> list[Scene]:
    """The scenes dated ``start`` to ``end`` (UTC dates; ``None``: open), so that local files
    out of the range are never stacked (``--start-date`` did nothing with files).

    Raises
    ------
    InputError
        No scene in the range, saying the dates there are.
    """
    kept = [s for s in scenes if (start is None or s.date >= start) and (end is None or s.date <= end)]
    if scenes and not kept:
        dates = sorted({s.date for s in scenes})
        raise InputError(f"no scene of {what} between {start or '…'} and {end or '…'}: they hold "
                         f"{dates[0]}" + (f" to {dates[-1]}" if len(dates) > 1 else ""))
    return kept


def group_scenes(scenes: Sequence[Scene]) -> dict[tuple[dt.date, str], list[Scene]]:
    """Scenes by (date, sensor), each group's scenes in tile order."""
    out: dict[tuple[dt.date, str], list[Scene]] = {}
    for s in sorted(scenes, key=lambda s: (s.date, s.sensor, s.tile, s.product)):
        out.setdefault((s.date, s.sensor), []).append(s)
    return out


def write_scene_stack(scenes: Sequence[Scene], geometry, dst: str | os.PathLike, resolution: float, *,
                      overwrite: bool = False, block: int | None = None, source: str,
                      cloud_buffer: int = 0) -> bool:
    """Write the stack of one date's scenes of one sensor (see the module docstring).

    Returns
    -------
    bool
        True when written, False when ``dst`` existed whole and was kept.
    """
    s0 = scenes[0]
    made = warp.made_with(geometry=geometry, resolution=resolution, quality_bits=s0.quality_bits,
                          cloud_buffer=cloud_buffer, products=sorted(s.product for s in scenes))
    if warp.keep_existing(dst, overwrite, made):
        return False
    with remote_env(scenes), warp.ImageCache() as images:
        grid, region = warp.region_grid(scenes, geometry, resolution)
        scenes = [checked_scene(s, images) for s in scenes]
    s0 = scenes[0]
    tags = {
        "SOURCE": f"vercye-lai {source}", "SENSOR": s0.sensor, warp.MADE_TAG: made,
        "PRODUCTS": ",".join(s.product for s in scenes),
        "SENSING_TIME": min(s.time for s in scenes).isoformat(),
        "QUALITY_MASK_BITS": ",".join(map(str, s0.quality_bits)),
        **cloud_buffer_tag(cloud_buffer),
        "ANGLES": ("per-pixel SZA/SAA/VZA/VAA bands" if s0.angles else
                   f"sun from the acquisition time, view zenith {s0.view[0]:g} azimuth {s0.view[1]:g} deg (assumed)"),
        **({"NOTES": "; ".join(s0.notes)} if s0.notes else {}),
        **platform_tag(s.platform for s in scenes),
        **offset_tag(s.offset_note for s in scenes),
    }
    with remote_env(scenes), warp.ImageCache() as images:
        mosaic = SceneMosaic(scenes, grid, region, resolution, images, cloud_buffer)
        n_valid = warp.write_windowed(dst, grid, mosaic.read, tags=tags, block=block, bands=s0.inputs)
    if n_valid == 0:
        log.warning("%s: no valid pixel in the region (clouds or no data)", Path(dst).name)
    log.info("%s: %d scene(s), %d valid pixels", Path(dst).name, len(scenes), n_valid)
    return True


def stack_scenes(scenes: Sequence[Scene], geometry, region: str, resolution: float, out_dir: str | os.PathLike,
                 *, overwrite: bool = False, source: str, cloud_buffer: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> dict[tuple[dt.date, str], Path]:
    """Write one stack per date and sensor: ``{region}_{res}m_{date}_{SENSOR}.tif``
    (``cloud_buffer``: pixels masked around clouds and shadows, see :func:`scene_layer`).

    Raises
    ------
    InputError
        No scene, or a region that meets none of a date's scenes (that date only: logged).
    """
    if not scenes:
        raise InputError("no scene to stack")
    out_dir = Path(out_dir)
    written: dict[tuple[dt.date, str], Path] = {}
    groups = group_scenes(scenes)
    for i, ((date, sensor), group) in enumerate(groups.items(), start=1):
        if progress is not None:
            progress(i - 1, len(groups))
        dst = out_dir / stack_name(region, resolution, date, sensor=sensor)
        try:
            write_scene_stack(group, geometry, dst, resolution, overwrite=overwrite, source=source,
                              cloud_buffer=cloud_buffer)
        except InputError as exc:
            log.warning("%s %s: %s", date, sensor, exc)
            continue
        written[(date, sensor)] = dst
    if progress is not None:
        progress(len(groups), len(groups))
    if not written:
        raise InputError(f"the region meets none of the {len(scenes)} scene(s) "
                         f"({', '.join(sorted({s.product for s in scenes})[:3])}…)")
    return written


# --------------------------------------------------------------------------- STAC items


def asset_href(item: Any, keys: Sequence[str]) -> str | None:
    """The href of the first of ``keys`` that ``item`` has (``None``: none), absolute: a
    relative one is the item's location's, not the working directory's (a catalogue moved
    elsewhere failed, or read a file that happened to lie at that path from here)."""
    for k in keys:
        if k in item.assets:
            return item.assets[k].get_absolute_href() or item.assets[k].href
    return None


def earthdata_env() -> dict[str, str]:
    """GDAL settings to read NASA Earthdata assets (LP DAAC): the ``EARTHDATA_TOKEN``
    environment variable as a bearer header, else ``~/.netrc`` (``machine
    urs.earthdata.nasa.gov``). The token is never logged."""
    env = {"GDAL_HTTP_NETRC": "YES", "GDAL_HTTP_COOKIEFILE": os.path.expanduser("~/.vercye-lai-cookies"),
           "GDAL_HTTP_COOKIEJAR": os.path.expanduser("~/.vercye-lai-cookies")}
    token = os.environ.get("EARTHDATA_TOKEN")
    if token:
        env["GDAL_HTTP_HEADERS"] = f"Authorization: Bearer {token}"
    return env


def remote_env(scenes: Sequence[Scene]) -> rasterio.Env:
    """The GDAL environment to read the scenes' files (remote ones: retries, no listing,
    Earthdata credentials for NASA hosts)."""
    hrefs = [str(h) for s in scenes for h in s.bands.values()]
    if not any(h.startswith(("http://", "https://", "/vsi", "s3://")) for h in hrefs):
        return rasterio.Env()
    env = dict(GDAL_REMOTE_ENV)
    if any("earthdata.nasa.gov" in h or "lpdaac" in h for h in hrefs):
        env.update(earthdata_env())
    return rasterio.Env(**env)


def acquire_scenes(region, options: Any, out_dir: Path, *, local: Callable[[list[str]], list[Scene]],
                   catalogue: Callable[..., list[Scene]], source: str) -> dict[tuple[dt.date, str], Path]:
    """The ``acquire`` of a scene source (``hls``, ``landsat``): the scenes of the files
    (``local(paths)``) or of the catalogue (``catalogue(catalog, geometry=, start=, end=,
    max_cloud=)``), stacked at ``options.resolution``; ``(date, sensor) → path`` in range."""
    if options.catalog:
        scenes = catalogue(options.catalog, geometry=region.shape(), start=region.start, end=region.end,
                           max_cloud=options.max_cloud)
    elif options.paths:
        scenes = scenes_in_range(local(expand_patterns(options.paths)), region.start, region.end)
    else:
        raise ConfigError("source: give paths (local files) or catalog (STAC)")
    out = stack_scenes(scenes, region.shape(), region.name, options.resolution, out_dir, source=source,
                       cloud_buffer=options.cloud_buffer)
    return {k: v for k, v in out.items() if region.start <= k[0] <= region.end}
