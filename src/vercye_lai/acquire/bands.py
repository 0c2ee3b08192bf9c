"""Band stacks written by other tools (EOdal, SNAP exports, …) → input stacks.

Input: one multi-band reflectance GeoTIFF whose bands are named in their descriptions
(``B02, B03, …, B8A, B11, B12[, SCL]``, any order, any extra bands), an acquisition time
(given, or the datatake start time in a Sentinel-2 product name in the file name,
``S2A_MSIL2A_20220305T102921_…``) and the place (the file's georeferencing).

What such files lack is angle data, so:

- the sun zenith and azimuth come from :func:`~vercye_lai.acquire.angles.solar_position`
  (NOAA equations), computed on a grid of points about 5 km apart (at least the corners)
  and interpolated bilinearly like the Sentinel-2 metadata grids. The datatake start time
  in a product name is up to a few minutes before the tile's own sensing time: about
  0.05° of sun zenith and 0.5° of sun azimuth in mid-latitudes;
- the view geometry is assumed: ``view_zenith`` (default 0°, nadir: cosVZA = 1) and
  ``view_azimuth`` (default 0°), stated in the log and in the output's tags.

Reflectance = stored value × ``scale`` + ``offset``; by default the file's own declared
scale/offset when it has one, else 1 for float data and 1e-4 for integer data, checked
against the data (:mod:`vercye_lai.acquire.offset`: an offset applied already is dropped, a
missing one warned about; ``--offset`` skips the check). Nodata
pixels (the file's nodata value, NaN, reflectances outside −1…5, which are undeclared fill
values such as EOdal's 1e20) and SCL classes in ``scl_classes`` (when an SCL band exists;
SCL values that are no class count as invalid) become nodata. Resampling to another
resolution follows :mod:`vercye_lai.acquire.safe` (average when coarsening, bilinear when
refining).

What a file declares (band names, scaling, the offset-check sample) is read in
:mod:`vercye_lai.acquire._band_meta`, its date and the one file kept per date in
:mod:`vercye_lai.acquire._band_dates`; both are re-exported here.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from vercye_lai.acquire import scl as masks
from vercye_lai.acquire._band_dates import (  # noqa: F401 - file dates, part of this module's API
    acquisition_time,
    file_valid_share,
    newest_per_date,
    product_times,
)
from vercye_lai.acquire._band_meta import (  # noqa: F401 - file metadata, part of this module's API
    _MAX_REFLECTANCE,
    band_indexes,
    file_sample,
    reflectance_scaling,
)
from vercye_lai.acquire.angles import (
    STACK_VIEW_BANDS as REFLECTANCE_BANDS,  # B3 … B12 in stack order
)
from vercye_lai.acquire.angles import TileAngles, angle_cosines, solar_position
from vercye_lai.acquire.offset import check_offset, check_reflectance_scale, expected_offset, offset_tag
from vercye_lai.acquire.platform import baseline_of, platform_tag, s2_platform
from vercye_lai.acquire.scl import DEFAULT_SCL_MASK, scl_mask_setting
from vercye_lai.acquire.source import Source, expand_patterns
from vercye_lai.acquire.warp import (
    MADE_TAG,
    ImageCache,
    choose_resampling,
    geometry_to_crs,
    keep_existing,
    made_with,
    warp_to_grid,
    write_windowed,
)
from vercye_lai.errors import InputError
from vercye_lai.grid import Grid
from vercye_lai.io import open_raster
from vercye_lai.naming import stack_name
from vercye_lai.options import Options as OptionsBase
from vercye_lai.options import setting

log = logging.getLogger(__name__)

_SUN_STEP = 5000.0  # m between solar-position points, as in the Sentinel-2 angle grids


def sun_angles(
    when: dt.datetime, grid: Grid, *, view_zenith: float = 0.0, view_azimuth: float = 0.0
) -> TileAngles:
    """Solar position on a coarse grid of points over ``grid`` (corners included), with a
    constant view geometry, as :class:`TileAngles` for :func:`angle_cosines`."""
    from rasterio.warp import transform as warp_transform

    height, width = grid.shape
    t = grid.transform
    ext_x, ext_y = (width - 1) * t.a, (height - 1) * -t.e  # between the outer pixel centres
    nx, ny = (
        max(2, int(np.ceil(ext_x / _SUN_STEP)) + 1),
        max(2, int(np.ceil(ext_y / _SUN_STEP)) + 1),
    )
    sx, sy = max(ext_x / (nx - 1), 1e-3), max(ext_y / (ny - 1), 1e-3)
    x0, y0 = t.c + t.a / 2, t.f + t.e / 2  # centre of the first pixel
    xs, ys = np.meshgrid(x0 + sx * np.arange(nx), y0 - sy * np.arange(ny))
    lon, lat = warp_transform(grid.crs, "EPSG:4326", xs.ravel(), ys.ravel())
    zen, az = solar_position(when, np.reshape(lon, xs.shape), np.reshape(lat, xs.shape))
    # pixel centres of the coarse grid sit on the points
    coarse = rasterio.Affine(sx, 0, x0 - sx / 2, 0, -sy, y0 + sy / 2)
    return TileAngles(
        grid.crs,
        coarse,
        zen,
        az,
        np.full(zen.shape, float(view_zenith)),
        np.full(zen.shape, float(view_azimuth)),
    )


@dataclass
class BandStack:
    """The input stack of one reflectance GeoTIFF, computed one output window at a time.

    Made by :func:`plan_band_stack`, which reads only the file's metadata; :meth:`read`
    reads the source pixels around one window of :attr:`grid` (with a resampling margin,
    see :func:`~vercye_lai.acquire.warp.warp_to_grid`), so a window's values equal the
    whole grid's values there.

    Attributes
    ----------
    src
        The GeoTIFF.
    grid
        Output grid (the file's CRS, in metres).
    tags
        Metadata tags of the output.
    """
    src: Path
    grid: Grid
    tags: dict[str, str]
    index: dict[str, int] = field(repr=False)
    scale: float
    offset: float
    nodata: float | None
    src_res: float
    region: object = field(repr=False)
    angles: TileAngles = field(repr=False)
    scl_classes: tuple[int, ...]
    cloud_buffer: int = 0
    #: Band values outside −1…5 made nodata so far (undeclared fill values).
    n_fill: int = 0

    def read(
        self, window: Window, *, images: Callable[[str], rasterio.DatasetReader] | None = None
    ) -> dict[str, np.ndarray]:
        """Band name → float32 array of ``window``'s shape (NaN = nodata).

        ``images`` opens the source (e.g. an :class:`~vercye_lai.acquire.warp.ImageCache`
        that keeps it open across windows); default: opened per band.
        """
        sub = self.grid.window(window)
        src = images(str(self.src)) if images is not None else str(self.src)
        res = float(sub.transform.a)
        out: dict[str, np.ndarray] = {}
        for band in REFLECTANCE_BANDS:
            v = warp_to_grid(
                src,
                sub,
                band=self.index[band],
                resampling=choose_resampling(self.src_res, res),
                src_nodata=self.nodata,
            )
            out[band] = v * self.scale + self.offset
            # undeclared fill values (EOdal writes 1e20 in some files) are no reflectance
            implausible = (out[band] < -1) | (out[band] > _MAX_REFLECTANCE)
            self.n_fill += int(implausible.sum())
            out[band][implausible] = np.nan
        classes = self.scl_classes
        if "SCL" in self.index and classes:
            how = choose_resampling(self.src_res, res, categorical=True)
            masked = masks.scl_masked(
                sub, lambda g, prepare: warp_to_grid(src, g, band=self.index["SCL"], resampling=how, prepare=prepare),
                classes, self.cloud_buffer)
            for band in REFLECTANCE_BANDS:
                out[band][masked] = np.nan
        if self.region is not None:
            from rasterio.features import geometry_mask

            outside = geometry_mask([self.region], out_shape=sub.shape, transform=sub.transform)
            for band in REFLECTANCE_BANDS:
                out[band][outside] = np.nan
        out.update(
            angle_cosines(self.angles, transform=sub.transform, crs=sub.crs, shape=sub.shape)
        )
        return out

    def log_fill_values(self) -> None:
        """Warn about the band values made nodata as undeclared fill values, if any."""
        if self.n_fill:
            log.warning(
                "%s: %d band values outside -1…%g treated as nodata (undeclared fill value?)",
                self.src.name,
                self.n_fill,
                _MAX_REFLECTANCE,
            )


def plan_band_stack(
    src: str | os.PathLike,
    *,
    when: dt.datetime | None = None,
    resolution: float | None = None,
    geometry=None,
    band_names: Sequence[str] | None = None,
    scale: float | None = None,
    offset: float | None = None,
    view_zenith: float = 0.0,
    view_azimuth: float = 0.0,
    scl_classes: Iterable[int] = DEFAULT_SCL_MASK,
    cloud_buffer: int = 0,
) -> BandStack:
    """The output grid, sun angles and tags of a reflectance GeoTIFF's stack, from its
    metadata only; :meth:`BandStack.read` computes the stack window by window.

    Parameters
    ----------
    src
        Multi-band GeoTIFF with named bands (see :func:`band_indexes`).
    when
        Acquisition time (default: from the file name, see :func:`acquisition_time`).
    resolution
        Output pixel size in metres (default: the file's own grid, unchanged).
    geometry
        Optional region (shapely, EPSG:4326): the output is clipped to it.
    band_names
        Band names in file order, when the file has no descriptions.
    scale, offset
        Reflectance = stored × scale + offset (default: see :func:`reflectance_scaling`).
    view_zenith, view_azimuth
        Assumed view geometry, degrees.
    scl_classes
        SCL classes masked when the file has an SCL band.
    cloud_buffer
        Pixels of the output grid masked around SCL clouds and shadows
        (:func:`~vercye_lai.acquire.scl.masked_pixels`).

    Returns
    -------
    BandStack
    """
    when = acquisition_time(src, when)
    name = Path(src).name
    with open_raster(src) as ds:
        index = band_indexes(ds, band_names)
        a, b, how = reflectance_scaling(ds, index, scale=scale, offset=offset)
        platform = s2_platform(ds.tags().get("SPACECRAFT_NAME"), name)
        check = None
        sample = file_sample(ds, index)
        check_reflectance_scale(sample, a, b, how, path=src)
        if how != "given":  # an offset the user gives is not second-guessed
            check = check_offset(name, sample, scale=a, offset=b, what=how,
                                 expected=expected_offset(baseline_of(name)), add_missing=False)
            b = check.offset
        src_res = abs(ds.transform.a)
        nodata = ds.nodata
        crs, transform, bounds = ds.crs, ds.transform, ds.bounds
        native = Grid.of(ds)
    if crs.is_geographic:
        raise InputError(
            "raster is in geographic coordinates; stacks need a projected CRS in metres "
            "(e.g. its UTM zone)",
            path=src,
        )
    if transform.b or transform.d or abs(transform.a) != abs(transform.e):
        raise InputError("only north-up rasters with square pixels are supported", path=src)
    res = float(resolution or src_res)
    region = None
    if geometry is not None:
        from shapely.geometry import box

        region = geometry_to_crs(geometry, crs)
        if not region.intersects(box(*bounds)):
            raise InputError("region does not intersect the raster", path=src)
        bounds = region.intersection(box(*bounds)).bounds
    grid = (
        native
        if region is None and res == src_res
        else Grid.from_bounds(bounds, res, crs, anchor=(transform.c, transform.f))
    )
    classes = tuple(scl_classes)
    if "SCL" not in index and classes:
        log.info("%s: no SCL band, no cloud masking", Path(src).name)
    # the coarse sun-angle grid covers the whole output grid: computed once, not per window
    angles = sun_angles(when, grid, view_zenith=view_zenith, view_azimuth=view_azimuth)
    tags = {
        "SOURCE": f"vercye-lai stack-bands {Path(src).name}",
        "ACQUISITION_TIME": when.isoformat(),
        "REFLECTANCE_SCALING": f"x{a:g}{b:+g} ({how}{', offset checked' if check else ''})",
        **offset_tag([check.note] if check else []),
        **platform_tag([platform]),
        "ANGLES": f"sun: NOAA solar position at {when.isoformat()}; view: assumed "
        f"zenith {view_zenith:g} deg, azimuth {view_azimuth:g} deg",
        "SCL_MASK": masks.scl_mask_text(classes) if "SCL" in index else "no SCL band",
        **(masks.cloud_buffer_tag(cloud_buffer) if "SCL" in index else {}),
    }
    log.debug("%s: reflectance %s; %s", Path(src).name, tags["REFLECTANCE_SCALING"], tags["ANGLES"])
    return BandStack(
        Path(src), grid, tags, index, a, b, nodata, src_res, region, angles, classes, cloud_buffer
    )


def stack_from_bands(
    src: str | os.PathLike, **kw: Any
) -> tuple[dict[str, np.ndarray], Grid, dict[str, str]]:
    """The 11 stack bands of a reflectance GeoTIFF, the whole grid in memory (see
    :func:`write_band_stack` for large files); keywords as :func:`plan_band_stack`.

    Returns
    -------
    bands, grid, tags
        Band name → float32 array (NaN = nodata), the output grid, and metadata tags.
    """
    plan = plan_band_stack(src, **kw)
    data = plan.read(plan.grid.full_window)
    plan.log_fill_values()
    return data, plan.grid, plan.tags


def write_band_stack(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    overwrite: bool = False,
    block: int | None = None,
    **kw,
) -> bool:
    """Write the stack of ``src`` (see :func:`stack_from_bands` for the keywords) to ``dst``
    unless it exists (or ``overwrite``), one output window at a time (``block`` pixels a
    side, default :data:`vercye_lai.stack.WINDOW_SIZE`): memory is bounded by the window,
    not the file; True when written."""
    made = made_with(source=Path(src).name, **kw)
    if keep_existing(dst, overwrite, made):
        return False
    plan = plan_band_stack(src, **kw)
    with ImageCache() as images:
        write_windowed(
            dst, plan.grid, partial(plan.read, images=images), tags={**plan.tags, MADE_TAG: made}, block=block
        )
    plan.log_fill_values()
    return True


# --- the ``bands`` source of ``vercye-lai run`` and ``stack-bands`` (see :mod:`vercye_lai.acquire`)



@dataclass(frozen=True)
class Options(OptionsBase):
    """The ``bands`` source: reflectance GeoTIFFs of named bands written by other tools."""
    files: tuple[Path, ...] = setting(
        (), cli=None, help="Reflectance GeoTIFFs of named bands, or glob patterns of them.")
    band_names: str | None = setting(
        None, help="Band names in file order, comma-separated, for files without band "
        "descriptions.")
    scale: float | None = setting(
        None, default_help="the file's declared scale, else 1 for float data, 1e-4 for integers",
        help="Reflectance = value × scale + offset.")
    offset: float | None = setting(None, default_help="0", help="See --scale.")
    view_zenith: float = setting(
        0.0, min=0, max=90,
        help="Assumed view zenith, degrees (0 = nadir, cosVZA = 1); such files carry no view "
        "angles.")
    view_azimuth: float = setting(0.0, help="Assumed view azimuth, degrees.")
    scl_mask: tuple[int, ...] = scl_mask_setting()
    cloud_buffer: int = masks.cloud_buffer_setting()


def acquire(region, options: Options, out_dir: Path, *, resolution: float | None,
            state_dir: Path | None = None, when: dt.datetime | None = None,
            overwrite: bool = False,
            on_date: Callable[[dt.date, bool], None] | None = None) -> dict[dt.date, Path]:
    """One stack per date of the files (the newest of a date), clipped to the region when it
    has a geometry, at ``resolution`` m (``None``: each file's own); existing stacks are kept.

    ``when`` is the acquisition time of a single file without one in its name; ``on_date``
    is called with each date and whether its stack was written.
    """
    files = expand_patterns(options.files)
    geometry = region.shape() if region.has_geometry else None
    names = [b.strip() for b in options.band_names.split(",")] if options.band_names else None
    out = {}
    for date, src in newest_per_date(files, when).items():
        if not (region.start <= date <= region.end):
            continue
        res = resolution
        if res is None:
            with open_raster(src) as ds:
                res = abs(ds.transform.a)
        dst = Path(out_dir) / stack_name(region.name, res, date)
        written = write_band_stack(
            src, dst, overwrite=overwrite, when=when, resolution=res, geometry=geometry,
            band_names=names, scale=options.scale, offset=options.offset,
            view_zenith=options.view_zenith, view_azimuth=options.view_azimuth,
            scl_classes=options.scl_mask, cloud_buffer=options.cloud_buffer)
        out[date] = dst
        if on_date:
            on_date(date, written)
    return out


SOURCE = Source("bands", Options, acquire, needs_geometry=False)  # clipped to the region only when it has a geometry
