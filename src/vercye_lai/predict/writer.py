"""One product's file: written block by block, atomically, as a tiled GeoTIFF or a COG.

A COG is copied from a scratch file (GDAL's COG driver has no block writes), held in memory
within a process-wide budget (:class:`ScratchMemory`) or beside the product; its overviews
are computed as the blocks come (:mod:`.overviews`); the blocks are written and the
overviews computed on the product's own lanes (:class:`BlockWriter`, :mod:`.lanes`).
:mod:`.products` opens one writer per product of a date.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio._err import CPLE_BaseError  # what a failed copy raises (not an OSError)
from rasterio.io import MemoryFile
from rasterio.windows import Window

from vercye_lai.grid import Grid
from vercye_lai.io import GTIFF_PROFILE, atomic_output, tmp_path_for
from vercye_lai.predict.lanes import Lane
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
    that computes a chunk, encode them, :meth:`.Storage.encode`) on a lane of its
    own; with an :class:`OverviewBuilder`, also hands them to it, on another, side by side
    (:mod:`.lanes`: the thread that collects the blocks only hands them out). Leaving the context waits for
    both lanes and raises what failed in them; leaving it on an exception drops what waits.
    """

    def __init__(self, ds: rasterio.io.DatasetWriter, overviews: OverviewBuilder | None = None, *,
                 phases: Phases = NO_PHASES) -> None:
        self.ds, self.overviews, self._phases = ds, overviews, phases
        self._writes = Lane("write")
        self._levels = Lane("overviews") if overviews is not None else None

    def write(self, stored: np.ndarray, window: Window) -> None:
        # both lanes at once: after a date's last block, its COG copy waits for the slower, not the sum
        self._writes.submit(self._write, stored, window)
        if self._levels is not None:
            self._levels.submit(self._add_overviews, stored, window)

    def _write(self, stored: np.ndarray, window: Window) -> None:
        with self._phases("write"):
            self.ds.write(stored, 1, window=window)

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

    The block writes compress on ``threads`` GDAL threads (the product's write lane only
    hands tiles over), the COG copy on ``copy_threads`` (default ``threads``): a date's products
    are copied side by side, so each copy gets its share of the cores. The COG's scratch
    copy is held in memory, uncompressed, while ``scratch_memory`` bytes allow
    (:class:`ScratchMemory`; it reserves the raw size of the whole tiles), else written
    beside ``dst`` as ZSTD level 1 without predictor (fewer bytes to write; the padding of
    edge tiles costs nothing: a 549² product's raw scratch was 3.5× its size). In memory,
    raw tiles made a 16 Mpx date 3–6 % faster than ZSTD ones (nothing to encode in the
    blocks' writer, nothing to decode in the copy, measured at 1 and 2 workers).
    An int16 or uint8 COG's overviews are computed as its blocks are written (:mod:`.overviews`,
    equal to GDAL's) into files beside the scratch (a third of its raw size, in memory with it
    or on disk) and the copy takes them as they are: GDAL would compute them after the last
    block, a serial tail of every date.
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
    tile = GTIFF_PROFILE["blockxsize"], GTIFF_PROFILE["blockysize"]
    raw = -(-src.width // tile[0]) * tile[0] * -(-src.height // tile[1]) * tile[1] * np.dtype(dtype).itemsize
    levels_raw = sum(h * w for h, w in cog_overview_shapes(src.height, src.width)) * np.dtype(dtype).itemsize
    reservation = (SCRATCH_MEMORY.reserve(raw + (levels_raw if own_overviews else 0), scratch_memory)
                   if cog else contextlib.nullcontext(False))
    with atomic_output(dst) as final_tmp, reservation as in_memory, contextlib.ExitStack() as scratch_files:
        if not cog:
            scratch = final_tmp
        elif in_memory:  # removed from memory when the block ends, whatever happened
            scratch = scratch_files.enter_context(MemoryFile(ext=".tif")).name
        else:
            scratch = tmp_path_for(dst)
            scratch_files.callback(lambda: scratch.unlink(missing_ok=True))
        profile = Grid.of(src).profile(
            dtype=dtype, nodata=nodata, always_tiled=True, num_threads=str(max(1, threads)),
            **(codec if not cog else {"compress": None, "zstd_level": None} if in_memory else {}),
        )
        with contextlib.ExitStack() as level_writers:
            builder = None
            if own_overviews:
                # in memory raw (counted in the reservation, nothing to encode); on disk ZSTD
                level_profile = ({k: v for k, v in profile.items() if k not in ("compress", "zstd_level")}
                                 if in_memory else profile)
                sink = level_files(scratch, cog_overview_shapes(src.height, src.width), level_profile,
                                   opened=level_writers, files=scratch_files)
                builder = OverviewBuilder(src.height, src.width, int(nodata), dtype, sink=sink)
            with rasterio.open(scratch, "w", **profile) as ds:
                ds.set_band_description(1, description)
                if unit:
                    ds.units = (unit,)
                if scale != 1.0:
                    ds.scales, ds.offsets = (scale,), (0.0,)
                ds.update_tags(**tags)
                with BlockWriter(ds, builder, phases=phases) as writer:
                    yield writer
            if builder is not None:
                builder.finish()
        if cog:
            copy_threads = max(1, threads if copy_threads is None else copy_threads)
            # GDAL_NUM_THREADS: the copy decodes the scratch (and computes float32 overviews) on them too;
            # the scratch's overview levels are found beside it by listing its folder, which a caller's
            # cloud setting (GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR) would prevent: a COG without overviews
            with phases(phase), rasterio.Env(GDAL_NUM_THREADS=copy_threads, GDAL_DISABLE_READDIR_ON_OPEN="FALSE"):
                try:
                    rasterio.shutil.copy(
                        scratch, final_tmp, driver="COG", level=1, blocksize=512, **codec,
                        overviews="FORCE_USE_EXISTING" if own_overviews else "AUTO",
                        resampling=resampling_of(dtype),
                        bigtiff="IF_SAFER", num_threads=str(copy_threads),
                    )
                except CPLE_BaseError as exc:
                    # a compressed scratch cut short (a full disk) fails only here, when
                    # read back: an OS error, so atomic_output says what happened
                    raise rasterio.errors.RasterioIOError(str(exc)) from exc
