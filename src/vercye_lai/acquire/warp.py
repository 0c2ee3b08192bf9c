"""What every local or remote acquisition source shares: source images warped onto a
:class:`~vercye_lai.grid.Grid`, and stacks written one output window at a time.

A window's values equal the whole grid's values there: :func:`warp_to_grid` reads each
source around the window with a resampling margin, and :func:`warp_options` makes GDAL's
resampling kernel and reprojection independent of the window it computes. So memory is
bounded by the window (:data:`vercye_lai.stack.WINDOW_SIZE` pixels a side), not by the
region.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import Window

from vercye_lai.acquire._images import (  # noqa: F401 - the source images, part of this module's API
    KEPT_COPIES,
    ImageCache,
    ThreadImages,
    check_whole_jp2,
    open_image,
)
from vercye_lai.errors import DataIOError, InputError, gdal_reason
from vercye_lai.grid import Grid, utm_crs
from vercye_lai.io import is_whole
from vercye_lai.stack import S2_BANDS_20M, StackWriter

log = logging.getLogger(__name__)


def geometry_to_crs(geom, crs):
    """A shapely geometry in EPSG:4326 reprojected to ``crs``."""
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape

    return shape(transform_geom("EPSG:4326", crs, mapping(geom)))



# ------------------------------------------------------------------ a region's output grid


def region_grid(tiles: Sequence[Any], geometry, resolution: float) -> tuple[Grid, object]:
    """The output grid of a region over some tiles, and the region in the grid's CRS.

    Parameters
    ----------
    tiles
        Tiles (or scenes) of one date: each with ``crs``, ``bounds`` (in its CRS), ``tile``
        (a name) and ``source`` (its file).
    geometry
        Region (shapely geometry, EPSG:4326).
    resolution
        Pixel size in metres.

    Raises
    ------
    InputError
        When the region intersects none of the tiles.
    """
    from shapely.geometry import box

    cover = []
    for t in tiles:
        g = geometry_to_crs(geometry, t.crs)
        cover.append(g.intersection(box(*t.bounds)).area / max(g.area, 1e-12))
    best = int(np.argmax(cover))
    if cover[best] <= 0:
        names = ", ".join(sorted({f"T{t.tile}" for t in tiles}))
        lon0, lat0, lon1, lat1 = geometry.bounds
        raise InputError(
            f"region (lon {lon0:.3f}…{lon1:.3f}, lat {lat0:.3f}…{lat1:.3f}) does not intersect "
            f"tile(s) {names}",
            path=tiles[best].source,
        )
    ref = tiles[best]
    geom = geometry_to_crs(geometry, ref.crs)
    footprints = [box(*t.bounds) if t.crs == ref.crs else _footprint_in(t, ref.crs) for t in tiles]
    from shapely import union_all

    bounds = geom.intersection(union_all(footprints)).bounds
    # anchored on the tile's upper-left corner, so the grid is the product's own grid
    grid = Grid.from_bounds(bounds, resolution, ref.crs, anchor=(ref.bounds[0], ref.bounds[3]))
    return grid, geom


def _footprint_in(tile: Any, crs):
    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping, shape

    return shape(transform_geom(tile.crs, crs, mapping(box(*tile.bounds)), densify_pts=20))


def target_grid(geometry, resolution: float, crs: str | CRS | None = None) -> Grid:
    """The grid covering ``geometry`` (EPSG:4326) at ``resolution`` m in ``crs``.

    ``crs`` defaults to the UTM zone of the region's centroid. The corners are snapped
    to multiples of the resolution, so every date of a region gets the same grid and the
    grid lines up with Sentinel-2 tiles of that UTM zone.
    """
    if crs is None:
        c = geometry.centroid
        crs = utm_crs(c.x, c.y)
    crs = CRS.from_user_input(crs)
    if not crs.is_projected or (crs.linear_units or "").lower() not in ("metre", "meter", "m"):
        # (EPSG:4326 at 60 "m" wrote one 60-degree pixel)
        raise InputError(f"--crs {crs.to_string()}: stacks need a projected CRS in metres (a UTM zone, e.g. "
                         "EPSG:32636; default: the region's)")
    projected = geometry_to_crs(geometry, crs)
    xmin, ymin, xmax, ymax = projected.bounds
    r = float(resolution)
    # not Grid.from_bounds: that one forgives 1e-6 px of float noise at the edges, which
    # would drop a row or column from grids that existing STAC stacks already have
    x0, y0 = np.floor(xmin / r) * r, np.ceil(ymax / r) * r
    width = int(np.ceil((xmax - x0) / r))
    height = int(np.ceil((y0 - ymin) / r))
    if width * height == 0:
        raise InputError("the region has no area")
    return Grid(crs, from_origin(x0, y0, r, r), (height, width))



def choose_resampling(src_res: float, dst_res: float, *, categorical: bool = False) -> Resampling:
    """``average`` when coarsening, ``nearest`` at the same resolution or for categories,
    ``bilinear`` when refining."""
    if src_res < dst_res:
        return Resampling.average
    if src_res == dst_res or categorical:
        return Resampling.nearest
    return Resampling.bilinear


#: Approximate-transformer tolerance (source pixels) when reprojecting: GDAL's default
#: (0.125) interpolates the coordinates over each processing chunk, so a pixel's value
#: would depend on the window it is computed in; this is exact in practice.
REPROJECT_TOLERANCE = 1e-9
#: the resamplings of the reflectances a source offers (``--resampling``; SCL is always nearest)
RESAMPLINGS = ("nearest", "bilinear", "cubic", "average")


def as_resampling(value: str | Resampling) -> Resampling:
    """A resampling given by name (``"bilinear"``) or as rasterio's enum, as rasterio's enum."""
    if isinstance(value, Resampling):
        return value
    if value not in RESAMPLINGS:
        raise InputError(f"resampling {value!r} is not allowed; allowed values: {', '.join(RESAMPLINGS)}")
    return Resampling[value]


def warp_options(src_transform: rasterio.Affine, src_crs, grid: Grid) -> dict[str, object]:
    """``WarpedVRT`` options that make a pixel's value independent of the window it is
    computed in.

    GDAL computes the resampling kernel's scale per processing chunk (destination size /
    source window size, rounded outward; below 0.95 the kernel is widened), so a kernel
    would differ between windows (and between regions of different extent) when
    coarsening, reprojecting or reading a small window. Fixing ``XSCALE``/``YSCALE`` to
    the nominal ratio of pixel sizes (at most 1: the kernel is never narrowed) and an
    exact transformer for reprojection remove that.
    """
    sx = abs(src_transform.a) / abs(grid.transform.a)
    sy = abs(src_transform.e) / abs(grid.transform.e)
    opts: dict[str, object] = {"XSCALE": repr(min(sx, 1.0)), "YSCALE": repr(min(sy, 1.0))}
    if CRS.from_user_input(src_crs) != grid.crs:
        opts["tolerance"] = REPROJECT_TOLERANCE
    return opts


def _reproject_exactly(
    data: np.ndarray,
    src_transform: rasterio.Affine,
    src_crs,
    grid: Grid,
    *,
    src_nodata: float | None,
    resampling: Resampling,
) -> np.ndarray:
    """Warp a float32 array onto ``grid`` in another CRS with :func:`warp_options` (an
    in-memory GeoTIFF seen through a ``WarpedVRT``: ``rasterio.warp.reproject`` always
    uses GDAL's approximate transformer); NaN where there is no (valid) data."""
    from rasterio.io import MemoryFile
    from rasterio.vrt import WarpedVRT

    height, width = data.shape
    with MemoryFile() as mem:
        with mem.open(
            driver="GTiff", width=width, height=height, count=1, dtype="float32",
            crs=src_crs, transform=src_transform, nodata=src_nodata,
        ) as tmp:
            tmp.write(data.astype(np.float32), 1)
        with mem.open() as tmp, WarpedVRT(
            tmp, crs=grid.crs, transform=grid.transform, width=grid.shape[1],
            height=grid.shape[0], resampling=resampling, nodata=np.nan,
            **warp_options(src_transform, src_crs, grid),
        ) as vrt:
            return vrt.read(1, out_dtype="float32")


def warp_to_grid(
    src: str | os.PathLike | rasterio.DatasetReader,
    grid: Grid,
    *,
    band: int = 1,
    resampling: Resampling,
    src_nodata: float | None = None,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Read ``band`` of ``src`` where it covers ``grid`` and warp it onto the grid.

    Only the window of the source that covers the grid (plus a 2-pixel margin for
    resampling) is read, so a sub-grid of a larger grid (a window of it) gets the same
    values as the whole grid does there (for a source in another CRS, thanks to
    :func:`warp_options`). ``prepare`` transforms the source pixels before
    warping (e.g. SCL → mask).

    Parameters
    ----------
    src
        A GDAL path (opened and closed here) or an open dataset (left open).

    Returns
    -------
    numpy.ndarray
        float32 of ``grid.shape``; NaN where the source has no (valid) data.
    """
    if not isinstance(src, rasterio.io.DatasetReaderBase):
        with open_image(src) as ds:
            return warp_to_grid(
                ds, grid, band=band, resampling=resampling, src_nodata=src_nodata, prepare=prepare
            )
    from rasterio.warp import reproject, transform_bounds
    from rasterio.windows import from_bounds

    out = np.full(grid.shape, np.nan, np.float32)
    ds = src
    bounds = (
        grid.bounds if ds.crs == grid.crs else transform_bounds(grid.crs, ds.crs, *grid.bounds)
    )
    win = from_bounds(*bounds, transform=ds.transform)
    c0, r0 = (
        int(np.floor(win.col_off)) - 2,
        int(np.floor(win.row_off)) - 2,
    )  # margin for resampling
    c1 = int(np.ceil(win.col_off + win.width)) + 2
    r1 = int(np.ceil(win.row_off + win.height)) + 2
    win = Window(c0, r0, c1 - c0, r1 - r0)
    try:
        win = win.intersection(Window(0, 0, ds.width, ds.height))
    except rasterio.errors.WindowError:
        return out  # the image does not reach the grid
    if win.width <= 0 or win.height <= 0:
        return out
    try:
        data = ds.read(band, window=win)
    except rasterio.errors.RasterioIOError as exc:
        raise DataIOError(f"cannot read band {band}: {gdal_reason(exc)}", path=ds.name) from exc
    if prepare is not None:
        data = prepare(data)
    if ds.crs != grid.crs:  # e.g. a tile of the neighbouring UTM zone
        return _reproject_exactly(
            data, ds.window_transform(win), ds.crs, grid, src_nodata=src_nodata,
            resampling=resampling,
        )
    reproject(
        data.astype(np.float32),
        out,
        src_transform=ds.window_transform(win),
        src_crs=ds.crs,
        src_nodata=src_nodata,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=np.nan,
        resampling=resampling,
    )
    return out



def write_windowed(
    dst: str | os.PathLike,
    grid: Grid,
    read: Callable[[Window], np.ndarray | Mapping[str, np.ndarray]],
    *,
    tags: Mapping[str, str],
    block: int | None = None,
    bands: Sequence[str] = S2_BANDS_20M,
) -> int:
    """Write a stack of ``bands`` (default :data:`~vercye_lai.stack.S2_BANDS_20M`) on
    ``grid`` window by window.

    Parameters
    ----------
    dst
        Output path (written atomically, see :class:`~vercye_lai.stack.StackWriter`).
    grid
        Output grid.
    read
        Physical values of one window (band name → 2-D array, or ``(bands, rows, cols)``).
    tags
        Dataset metadata.
    block
        Window side in pixels (default :data:`vercye_lai.stack.WINDOW_SIZE`); memory use
        is bounded by it, not by the grid.

    Returns
    -------
    int
        Number of pixels valid in every band.
    """
    height, width = grid.shape
    with StackWriter(
        dst, width=width, height=height, transform=grid.transform, crs=grid.crs, tags=tags, bands=bands
    ) as out:
        windows = out.windows(block)
        for i, window in enumerate(windows, start=1):
            out.write(window, read(window))
            log.debug("%s: window %d/%d written", Path(dst).name, i, len(windows))
    return out.valid_pixels



#: the tag of a stack that says what set its pixels (:func:`made_with`)
MADE_TAG = "VERCYE_STACK_MADE"


def made_with(*, geometry=None, **settings: Any) -> str:
    """What sets a stack's pixels, as text for its :data:`MADE_TAG`: the source's options that
    change them (mask classes, cloud buffer, scale, offset, view angles, ...), its input
    products or files, and the region (a digest of its geometry). A stack made otherwise is
    made again (:func:`keep_existing`): a changed cloud buffer or scale left the old stacks,
    and the run said "acquire skipped". A list or tuple is said as its items joined by commas."""
    parts = [f"{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in sorted(settings.items())]
    if geometry is not None:
        parts.append(f"region={hashlib.sha1(geometry.wkb).hexdigest()[:16]}")
    return "; ".join(parts)


def keep_existing(dst: str | os.PathLike, overwrite: bool, made: str | None = None) -> bool:
    """True when ``dst`` exists whole and is to be kept (resumable runs), logged at debug
    level; with ``made`` (:func:`made_with`), only when it was made so (one made otherwise,
    or by a version that did not say, is made again, said at info level)."""
    if overwrite or not is_whole(dst):  # a truncated copy is made again
        return False
    if made is not None:
        with rasterio.open(dst) as ds:
            was = ds.tags().get(MADE_TAG)
        if was != made:
            log.info("%s: made with other source options, inputs or region; made again", Path(dst).name)
            return False
    log.debug("%s exists, skipped", Path(dst).name)
    return True


def first_valid_window(layers: Iterable[Callable[[], Mapping[str, np.ndarray]]], bands: Sequence[str],
                       sub: Grid, region) -> dict[str, np.ndarray]:
    """One window of a date's mosaic: each source's layer (a call giving band → array on
    ``sub``) fills the pixels of ``region`` no earlier source filled with a value valid in
    every band; the rest stay NaN. Sources after the window is full are not read."""
    from rasterio.features import geometry_mask

    filled = geometry_mask([region], out_shape=sub.shape, transform=sub.transform)
    stack = {b: np.full(sub.shape, np.nan, np.float32) for b in bands}
    for make in layers:
        if filled.all():  # nothing left to fill, e.g. a window outside the region
            break
        layer = make()
        take = np.logical_and.reduce([np.isfinite(layer[b]) for b in bands]) & ~filled
        for b in bands:
            stack[b][take] = layer[b][take]
        filled |= take
    return stack
