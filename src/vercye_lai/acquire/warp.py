"""What every local or remote acquisition source shares: source images warped onto a
:class:`~vercye_lai.grid.Grid`, and stacks written one output window at a time.

A window's values equal the whole grid's values there: :func:`warp_to_grid` reads each
source around the window with a resampling margin, and :func:`warp_options` makes GDAL's
resampling kernel and reprojection independent of the window it computes. So memory is
bounded by the window (:data:`vercye_lai.stack.WINDOW_SIZE` pixels a side), not by the
region.
"""

from __future__ import annotations

import collections
import logging
import os
import struct
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import Window

from vercye_lai.errors import DataIOError, InputError, gdal_reason
from vercye_lai.grid import Grid, utm_crs
from vercye_lai.io import is_whole
from vercye_lai.stack import S2_BANDS_20M, StackWriter

try:
    import resource  # POSIX: the open-file limit (ThreadImages)
except ImportError:  # pragma: no cover - Windows
    resource = None

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


def open_image(src: str | os.PathLike) -> rasterio.DatasetReader:
    """Open a source image (any GDAL path, ``/vsizip/`` included) for reading; a local JPEG 2000
    file is checked to be whole first (:func:`check_whole_jp2`).

    Raises
    ------
    DataIOError
        When GDAL cannot open it, or a JPEG 2000 file is cut short, naming the path.
    """
    if str(src).lower().endswith((".jp2", ".j2k")) and os.path.isfile(src):
        check_whole_jp2(src)
    try:
        return rasterio.open(src)
    except rasterio.errors.RasterioIOError as exc:
        raise DataIOError(f"cannot open image: {gdal_reason(exc)}", path=src) from exc


def check_whole_jp2(path: str | os.PathLike) -> None:
    """Raise unless the JPEG 2000 file ``path`` holds its whole codestream: the ``jp2c`` box
    (or a bare ``.j2k`` codestream) must end with the codestream's end marker (EOC, ``FF D9``,
    which no other part of a codestream can hold).

    GDAL decodes a JP2 on threads of its own, whose errors it does not return: a band file cut
    short (a download that stopped) was read as garbage, without an error (stack-safe wrote a
    stack whose B4 held B3's pixels, exit 0). Reading on one thread would raise, but its
    decoding was 4.7x slower (a 60 m band, 2 cores, measured); this check reads a few bytes.

    Raises
    ------
    DataIOError
        The file is cut short, or is no JPEG 2000 file.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] == b"\xff\x4f\xff\x51":  # a bare codestream (SOC, SIZ)
            end = size
        elif head[4:8] == b"jP  ":
            end, at = None, 0
            while at + 8 <= size:  # the boxes, by their headers: LBox (0: to the end; 1: XLBox follows), TBox
                f.seek(at)
                header = f.read(16)
                length, kind = struct.unpack(">I4s", header[:8])
                if length == 1:
                    length = struct.unpack(">Q", header[8:16])[0]
                elif length == 0:
                    length = size - at
                if kind == b"jp2c":
                    end = at + length
                    break
                if length < 8:
                    break
                at += length
            if end is None:
                raise DataIOError("no JPEG 2000 codestream (jp2c box): cut short or not a JP2 file", path=path)
        else:
            raise DataIOError("not a JPEG 2000 file (no JP2 signature or codestream start)", path=path)
        if end > size:
            raise DataIOError(f"cut short: {size} of its {end} bytes (an incomplete download or copy?)", path=path)
        f.seek(end - 2)
        if f.read(2) != b"\xff\xd9":
            raise DataIOError("cut short: its JPEG 2000 codestream does not end with its end marker "
                              "(an incomplete download or copy?)", path=path)


class ImageCache:
    """Source images opened once and kept open while the windows of a stack are computed
    (so GDAL's block cache serves the pixels that two windows share). A context manager
    that closes them all on exit."""

    def __init__(self) -> None:
        self._open: dict[str, rasterio.DatasetReader] = {}

    def __call__(self, src: str | os.PathLike) -> rasterio.DatasetReader:
        key = str(src)
        if key not in self._open:
            self._open[key] = open_image(key)
        return self._open[key]

    def __enter__(self) -> ImageCache:
        return self

    def __exit__(self, *exc) -> None:
        for ds in self._open.values():
            ds.close()
        self._open.clear()


class ThreadImages:
    """:class:`ImageCache` for chunks computed on many threads (a dataset is read by one thread
    at a time): the images kept open per thread, at most ``keep`` per thread, the least
    recently used closed first. Leaving the context closes every thread's. Kept open on local
    threads, a JP2 asset is decoded once per thread rather than once per chunk: a 7.6 Mpx date
    of predict-stac 15.1 → 11.0 s on 2 workers (``bench_direct.py``).

    Sent to a Dask worker (pickled), it arrives as that process's copy of it
    (:func:`_worker_copy`), shared by every task of the date that runs there: each task
    unpickles its own arguments, and a copy per task opened every asset again for every chunk
    (counted on two worker processes, 16 chunks of 9 assets: 72 opens each)."""

    def __init__(self, keep: int = 40) -> None:
        self.keep = max(1, keep)
        self.token = uuid.uuid4().hex  # names its copies in worker processes
        self._local = threading.local()
        self._caches: list[collections.OrderedDict] = []
        self._lock = threading.Lock()

    @classmethod
    def for_threads(cls, threads: int, *, keep: int = 40) -> ThreadImages:
        """One for ``threads`` threads that keeps at most half the process's open-file limit
        open among them (64 threads × 40 would pass Linux's usual 1024), at least 9 per thread
        (one Sentinel-2 item's assets)."""
        soft = 1024
        if resource is not None:  # POSIX
            limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            soft = 1 << 20 if limit == resource.RLIM_INFINITY else limit
        return cls(max(9, min(keep, soft // 2 // max(1, threads))))

    def __call__(self, src: str | os.PathLike) -> rasterio.DatasetReader:
        cache = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = collections.OrderedDict()
            with self._lock:
                self._caches.append(cache)
        key = str(src)
        ds = cache.pop(key, None)
        if ds is None:
            ds = open_image(key)
            while len(cache) >= self.keep:
                cache.popitem(last=False)[1].close()
        cache[key] = ds  # the most recently used last
        return ds

    def __enter__(self) -> ThreadImages:
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            for cache in self._caches:
                for ds in cache.values():
                    ds.close()
                cache.clear()

    def __reduce__(self):
        return _worker_copy, (self.token, self.keep)


#: the copies of :class:`ThreadImages` in this process, by token, the most recent last
_COPIES: collections.OrderedDict[str, ThreadImages] = collections.OrderedDict()
_COPIES_LOCK = threading.Lock()
#: copies kept: the date a worker computes and the one before it (predict-stac runs dates in turn)
KEPT_COPIES = 2


def _worker_copy(token: str, keep: int) -> ThreadImages:
    """This process's copy of the :class:`ThreadImages` named ``token`` (made at its first
    task here). An older copy is forgotten: its images close when the last task holding it is
    collected, not under a thread still reading them. The kept copies' threads share half this
    process's open-file limit (:meth:`ThreadImages.for_threads`): the sender's bound was for its
    own threads, not this worker's."""
    with _COPIES_LOCK:
        images = _COPIES.pop(token, None)
        if images is None:
            images = ThreadImages.for_threads(KEPT_COPIES * _worker_threads(), keep=keep)
            images.token = token
        _COPIES[token] = images
        while len(_COPIES) > KEPT_COPIES:
            _COPIES.popitem(last=False)
    return images


def _worker_threads() -> int:
    """The threads of this Dask worker (its cores where this is none, or not a worker)."""
    try:
        from distributed import get_worker  # optional extra "dask": without it, no process is a worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return os.cpu_count() or 1


def _forget_copies() -> None:
    """In a forked child the copies' threads do not exist: start with none."""
    global _COPIES_LOCK
    _COPIES.clear()
    _COPIES_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_copies)


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
    and the run said "acquire skipped"."""
    import hashlib

    parts = [f"{k}={v}" for k, v in sorted(settings.items())]
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
