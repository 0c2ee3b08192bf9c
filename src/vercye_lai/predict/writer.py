"""One product's file: written block by block, atomically, as a tiled GeoTIFF or a COG.

An int16 or uint8 COG is assembled from its tiles, compressed as the blocks come
(:mod:`.cog`); others are copied from a scratch file (GDAL's COG driver has no block
writes). Either is held in memory within a process-wide budget (:class:`ScratchMemory`), a
scratch beyond it goes beside the product; the overviews are computed as the blocks come
(:mod:`.overviews`), and the blocks are written and the overviews computed on the product's
own lanes (:class:`BlockWriter`, :mod:`.lanes`).
:mod:`.products` opens one writer per product of a date.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio._err import CPLE_BaseError  # what a failed copy raises (not an OSError)
from rasterio.io import MemoryFile
from rasterio.windows import Window

from vercye_lai.grid import Grid
from vercye_lai.io import atomic_output, tmp_path_for
from vercye_lai.predict.cog import TILE, CogTiles, assembles, cog_template, tiles_across
from vercye_lai.predict.lanes import Lane, worker_threads
from vercye_lai.predict.overviews import (
    OverviewBuilder,
    RowSink,
    cog_overview_shapes,
    resampling_of,
    takes_own_overviews,
)
from vercye_lai.predict.phases import NO_PHASES, Phases

__all__ = ["SCRATCH_MEMORY", "BlockWriter", "ScratchMemory", "level_files", "product_writer"]


class ScratchMemory:
    """The process's budget of COG scratch copies held in memory (GDAL's ``/vsimem/``).

    A COG is made by copying a finished scratch file (GDAL's COG driver has no block
    writes). On disk that scratch doubles the bytes written (and, on a cluster's shared
    file system, the traffic); in memory it costs RAM, so each scratch reserves its raw size
    (rows × cols × bytes per value, more than it will take compressed) and goes to disk
    when the budget is spent. Thread-safe: dates in flight share one budget.
    """

    def __init__(self) -> None:
        self.used = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def reserve(self, nbytes: int, budget: int) -> Iterator[bool]:
        """Reserve ``nbytes`` of ``budget`` for the block; yield whether it fits."""
        with self._lock:
            fits = self.used + nbytes <= budget
            if fits:
                self.used += nbytes
        try:
            yield fits
        finally:
            if fits:
                with self._lock:
                    self.used -= nbytes


#: the budget shared by every product writer of this process (``scratch_memory_mb``)
SCRATCH_MEMORY = ScratchMemory()


class BlockWriter(contextlib.AbstractContextManager):
    """Writes a product's blocks (in their stored form: the block workers, or the graph
    that computes a chunk, encode them, :meth:`.Storage.encode`) with ``write(stored, window)``
    on a lane of its own, after ``first()`` if given; with an :class:`OverviewBuilder`, also
    hands them to it, on another, side by side (:mod:`.lanes`: the thread that collects the
    blocks only hands them out). Leaving the context waits for both lanes and raises what
    failed in them; leaving it on an exception drops what waits.
    """

    def __init__(self, write: Callable[[np.ndarray, Window], None], overviews: OverviewBuilder | None = None, *,
                 first: Callable[[], None] | None = None, phases: Phases = NO_PHASES) -> None:
        self._sink, self.overviews, self._phases = write, overviews, phases
        self._writes = Lane("write")
        self._levels = Lane("overviews") if overviews is not None else None
        if first is not None:
            self._writes.submit(first)

    def write(self, stored: np.ndarray, window: Window) -> None:
        # both lanes at once: after a date's last block, its COG waits for the slower, not the sum
        self._writes.submit(self._write, stored, window)
        if self._levels is not None:
            self._levels.submit(self._add_overviews, stored, window)

    def _write(self, stored: np.ndarray, window: Window) -> None:
        with self._phases("write"):
            self._sink(stored, window)

    def _add_overviews(self, stored: np.ndarray, window: Window) -> None:
        with self._phases("overviews"):
            self.overviews.add(stored, window)

    def __exit__(self, kind, exc, tb) -> None:
        failed = kind is not None
        try:
            self._writes.close(cancel=failed)
        except BaseException:  # the writes failed: the overviews are dropped, their lane ends
            if self._levels is not None:
                self._levels.close(cancel=True)
            raise
        if self._levels is not None:
            self._levels.close(cancel=failed)


def level_files(scratch: str | Path, shapes: list[tuple[int, int]], profile: dict, *, opened: contextlib.ExitStack,
                files: contextlib.ExitStack) -> RowSink:
    """Open the files where GDAL finds a scratch's overview levels — ``scratch.ovr``, whose
    own overviews are ``scratch.ovr.ovr``, and so on — and return the sink that writes their
    rows as they are computed (striped: rows come top to bottom, each strip written once).
    ``opened`` closes them, ``files`` removes them."""
    striped = {k: v for k, v in profile.items() if k not in ("tiled", "blockxsize", "blockysize")}
    levels, name = [], str(scratch)
    for height, width in shapes:
        name += ".ovr"
        files.callback(_delete_raster, name)
        levels.append(opened.enter_context(rasterio.open(name, "w", **dict(striped, height=height, width=width))))

    def write(level: int, row: int, rows: np.ndarray) -> None:
        levels[level].write(rows, 1, window=Window(0, row, rows.shape[1], rows.shape[0]))

    return write


def _delete_raster(path: str) -> None:
    with contextlib.suppress(CPLE_BaseError, rasterio.errors.RasterioIOError):
        rasterio.shutil.delete(path, driver="GTiff")


@contextlib.contextmanager
def product_writer(dst: Path, src: rasterio.DatasetReader, dtype: str, nodata: float, *, cog: bool, tags: dict,
                    description: str, unit: str = "", threads: int = 1, copy_threads: int | None = None,
                    scale: float = 1.0, max_error: float = 0.0, scratch_memory: int = 0, phases: Phases = NO_PHASES,
                    phase: str = "cog") -> Iterator[BlockWriter]:
    """Open a tiled GeoTIFF for block writes; on success it becomes ``dst`` (as a COG).
    ``scale``: declared (value = stored × scale); ``max_error`` > 0: LERC with that bound.

    An int16 or uint8 COG whose tiles fit in ``scratch_memory`` bytes (:class:`ScratchMemory`;
    it reserves their raw size and their overviews' third) is assembled from its tiles
    (:mod:`.cog`): they are compressed on the worker threads as the blocks come, its overviews
    computed beside them (:mod:`.overviews`, equal to GDAL's), and the file is written after
    the last block in one pass, nothing compressed then (GDAL's copy of a scratch after the
    last block was the serial tail of every date).

    Other COGs are copied from a scratch file after the last block (GDAL's COG driver has no
    block writes) on ``copy_threads`` (default ``threads``): a date's products are copied side
    by side, so each copy gets its share of the cores. The scratch is held in memory,
    uncompressed, within ``scratch_memory`` (raw tiles made a 16 Mpx date 3–6 % faster than
    ZSTD ones), else written beside ``dst`` as ZSTD level 1 without predictor (fewer bytes to
    write; the padding of edge tiles costs nothing: a 549² product's raw scratch was 3.5× its
    size). An int16 or uint8 scratch's overviews are computed as its blocks are written into
    files beside it, which the copy takes as they are. Plain GeoTIFFs (``cog=False``) compress
    their blocks on ``threads`` GDAL threads as they are written.
    """
    # LERC bounds the error itself; ZSTD gains from differencing neighbours, except on
    # flags (runs of equal bits: 10 % smaller and faster without, measured)
    # (the COG driver spells the predictors NO/YES, the GTiff driver 1/2/3)
    if dtype == "uint8":
        predictor = "NO" if cog else 1
    else:
        predictor = "YES" if cog else (3 if dtype == "float32" else 2)
    codec = ({"compress": "LERC_ZSTD", "max_z_error": max_error} if max_error
             else {"compress": "ZSTD", "predictor": predictor})
    own_overviews = cog and takes_own_overviews(dtype, src.height, src.width)
    # only a COG has a scratch copy to place (raw whole tiles); its own overview levels add a third
    raw = tiles_across(src.width) * tiles_across(src.height) * TILE * TILE * np.dtype(dtype).itemsize
    levels_raw = sum(h * w for h, w in cog_overview_shapes(src.height, src.width)) * np.dtype(dtype).itemsize
    reservation = (SCRATCH_MEMORY.reserve(raw + (levels_raw if own_overviews else 0), scratch_memory)
                   if cog else contextlib.nullcontext(False))
    copy_options = dict(level=1, blocksize=TILE, **codec, resampling=resampling_of(dtype), bigtiff="IF_SAFER")

    def describe(ds: rasterio.io.DatasetWriter) -> None:
        ds.set_band_description(1, description)
        if unit:
            ds.units = (unit,)
        if scale != 1.0:
            ds.scales, ds.offsets = (scale,), (0.0,)
        ds.update_tags(**tags)

    with atomic_output(dst) as final_tmp, reservation as in_memory:
        profile = Grid.of(src).profile(dtype=dtype, nodata=nodata, always_tiled=True)
        creation = {"compress": "ZSTD", "zstd_level": 1, "predictor": 1 if predictor == "NO" else 2}
        if (own_overviews and in_memory and not max_error
                and assembles(dtype, float(nodata), tuple(sorted(creation.items())), tuple(sorted(copy_options.items())))):
            with _assembled(final_tmp, profile, describe, creation, copy_options, workers=threads,
                            phases=phases, phase=phase) as writer:
                yield writer
        else:
            with _copied(dst, final_tmp, profile, describe, codec, copy_options, cog=cog, in_memory=in_memory,
                         own_overviews=own_overviews, threads=threads,
                         copy_threads=max(1, threads if copy_threads is None else copy_threads),
                         phases=phases, phase=phase) as writer:
                yield writer


@contextlib.contextmanager
def _copied(dst: Path, final_tmp: Path, profile: dict, describe: Callable[[rasterio.io.DatasetWriter], None],
            codec: dict, copy_options: dict, *, cog: bool, in_memory: bool, own_overviews: bool, threads: int,
            copy_threads: int, phases: Phases, phase: str) -> Iterator[BlockWriter]:
    """A GeoTIFF of ``profile`` written block by block into ``final_tmp``, or, for a COG, into
    a scratch (in memory or beside ``dst``) that GDAL copies into ``final_tmp`` after the last
    block (:func:`product_writer`)."""
    with contextlib.ExitStack() as scratch_files:
        if not cog:
            scratch = final_tmp
        elif in_memory:  # removed from memory when the block ends, whatever happened
            scratch = scratch_files.enter_context(MemoryFile(ext=".tif")).name
        else:
            scratch = tmp_path_for(dst)
            scratch_files.callback(lambda: scratch.unlink(missing_ok=True))
        # a plain GeoTIFF: the product's codec; a scratch in memory: raw; on disk: the profile's ZSTD
        profile = dict(profile, num_threads=str(max(1, threads)), **(codec if not cog else {}))
        if cog and in_memory:
            profile = {k: v for k, v in profile.items() if k not in ("compress", "zstd_level")}
        with contextlib.ExitStack() as level_writers:
            builder = None
            if own_overviews:
                # in memory raw (counted in the reservation, nothing to encode); on disk ZSTD
                height, width = profile["height"], profile["width"]
                sink = level_files(scratch, cog_overview_shapes(height, width), profile,
                                   opened=level_writers, files=scratch_files)
                builder = OverviewBuilder(height, width, int(profile["nodata"]), profile["dtype"], sink=sink)
            with rasterio.open(scratch, "w", **profile) as ds:
                describe(ds)
                with BlockWriter(functools.partial(_write_band, ds), builder, phases=phases) as writer:
                    yield writer
            if builder is not None:
                builder.finish()
        if cog:
            # GDAL_NUM_THREADS: the copy decodes the scratch (and computes float32 overviews) on them too;
            # the scratch's overview levels are found beside it by listing its folder, which a caller's
            # cloud setting (GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR) would prevent: a COG without overviews
            with phases(phase), rasterio.Env(GDAL_NUM_THREADS=copy_threads, GDAL_DISABLE_READDIR_ON_OPEN="FALSE"):
                try:
                    rasterio.shutil.copy(scratch, final_tmp, driver="COG", num_threads=str(copy_threads),
                                         overviews="FORCE_USE_EXISTING" if own_overviews else "AUTO", **copy_options)
                except CPLE_BaseError as exc:
                    # a compressed scratch cut short (a full disk) fails only here, when
                    # read back: an OS error, so atomic_output says what happened
                    raise rasterio.errors.RasterioIOError(str(exc)) from exc


def _write_band(ds: rasterio.io.DatasetWriter, stored: np.ndarray, window: Window) -> None:
    ds.write(stored, 1, window=window)


@contextlib.contextmanager
def _assembled(final_tmp: Path, profile: dict, describe: Callable[[rasterio.io.DatasetWriter], None],
               creation: dict, copy_options: dict, *, workers: int, phases: Phases,
               phase: str) -> Iterator[BlockWriter]:
    """A COG of ``profile`` assembled from its tiles (:class:`~.cog.CogTiles`) into
    ``final_tmp``: its directories (tags from ``describe``) come from GDAL
    (:func:`~.cog.cog_template`), made on the write lane before the first block."""
    pool = worker_threads("encode")  # (the blocks' threads stay theirs)

    def submit(fn: Callable[..., object], *args: object) -> Future:
        return pool.submit(_timed, phases, "write", fn, args)

    def map_parts(fn: Callable[[int, int], np.ndarray], parts: list[tuple[int, int]]) -> list[np.ndarray]:
        started = [pool.submit(_timed, phases, "overviews", fn, part) for part in parts[1:]]
        first = fn(*parts[0])  # (on the overviews' lane, timed there: it would only wait)
        return [first, *(f.result() for f in started)]

    tiles = CogTiles(profile["height"], profile["width"], profile["dtype"], profile["nodata"], creation,
                     submit=submit, at_once=max(2, workers), map_parts=map_parts)
    template: list[bytes] = []

    def make_template() -> None:
        with phases(phase):
            template.append(cog_template(profile, copy_options, describe))

    try:
        builder = tiles.overview_builder()
        with BlockWriter(tiles.add, builder, first=make_template, phases=phases) as writer:
            yield writer
        builder.finish()
        with phases(phase):
            tiles.write(template[0], final_tmp)
    except BaseException:
        tiles.cancel()
        raise


def _timed(phases: Phases, phase: str, fn: Callable[..., object], args: tuple) -> object:
    with phases(phase):
        return fn(*args)
