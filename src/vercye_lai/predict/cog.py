"""A COG assembled from tiles compressed as its blocks come, not copied after the last one.

GDAL's COG driver has no block writes: a product was written to a scratch copy and copied
after its last block, every tile read back and compressed again: the serial tail of every
date (0.16 s of a 16 Mpx date's 0.92 s on 2 workers, measured). Here

- each 512-px tile is compressed by GDAL's own GTiff driver (a small in-memory file with the
  product's codec) on the worker threads as soon as its pixels are in (:class:`TileRows`),
  each overview level's tiles as its rows are computed (:mod:`.overviews`);
- the COG's header and directories (tags, georeferencing, codec, one directory per level)
  are GDAL's COG driver's, copied from an empty VRT of the same size, tags and overview
  levels, sparse, so nothing but the directories is written (:func:`cog_template`: made
  while the blocks are computed);
- after the last block only bytes are placed (:meth:`CogTiles.write`): the directories with
  each tile's offset and size filled in, then the tiles in the order of GDAL's COG layout
  (smallest overview first, row by row; each tile after its size as 4 bytes, its last 4 bytes
  repeated after it, as the layout's header declares).

The file is GDAL's own COG of the same values, byte for byte (the tests compare them, and
check the layout as GDAL's validator does). :func:`check_template` refuses a template other
than the one this module fills (its declared layout, its directories, its codec), and
:func:`assembles` tries one once per process and codec: where this GDAL's differs, products
are copied by GDAL as before.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import struct
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.io import MemoryFile
from rasterio.windows import Window

from vercye_lai.io import GTIFF_PROFILE
from vercye_lai.predict.overviews import OverviewBuilder, PartsMap, cog_overview_shapes

log = logging.getLogger(__name__)

__all__ = ["TILE", "CogTiles", "TileRows", "assembles", "cog_template", "directories", "encode_tiles", "tiles_across"]

#: a COG's tile side, px: the products' (their GeoTIFF profile's and the COG copy's)
TILE = GTIFF_PROFILE["blockxsize"]
_TILE_OFFSETS, _TILE_BYTE_COUNTS = 324, 325
#: the tags that say how tiles are encoded: the template's must be the tiles' own
_CODEC_TAGS = (258, 259, 277, 317, 339)  # BitsPerSample, Compression, SamplesPerPixel, Predictor, SampleFormat
_ARRAY_TYPES = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}
#: a transform for the in-memory files, not the identity (no NotGeoreferencedWarning)
_PLAIN = Affine(2.0, 0.0, 0.0, 0.0, -2.0, 0.0)


def tiles_across(n: int) -> int:
    """The tiles that cover ``n`` pixels (the last one partly)."""
    return -(-n // TILE)


class LayoutError(ValueError):
    """A TIFF this module cannot read its tiles' places from (see :func:`assembles`)."""


@dataclass(frozen=True)
class _Array:
    """One directory entry's values: their type, number and where they lie in the file."""

    type: int
    count: int
    at: int

    def read(self, buf) -> tuple[int, ...]:
        return struct.unpack_from(f"<{self.count}{_ARRAY_TYPES[self.type]}", buf, self.at)

    def write(self, buf: bytearray, values: Sequence[int]) -> None:
        struct.pack_into(f"<{self.count}{_ARRAY_TYPES[self.type]}", buf, self.at, *values)


@dataclass(frozen=True)
class Directory:
    """One image file directory (a level of a COG): where its tiles' offsets and sizes lie,
    and the raw values of its codec tags."""

    offsets: _Array
    sizes: _Array
    codec: tuple[tuple[int, bytes], ...]


def directories(buf) -> tuple[bool, list[Directory]]:
    """(BigTIFF?, each directory in file order) of a little-endian tiled TIFF in ``buf``.

    Raises
    ------
    LayoutError
        Not a little-endian TIFF, or a directory without tile offsets and sizes in an
        array type this module writes.
    """
    if bytes(buf[:2]) != b"II":
        raise LayoutError("not a little-endian TIFF")
    version = struct.unpack_from("<H", buf, 2)[0]
    if version not in (42, 43):
        raise LayoutError(f"TIFF version {version}")
    big = version == 43
    count_fmt, entry_size, value_fmt, inline = ("<Q", 20, "<Q", 8) if big else ("<H", 12, "<I", 4)
    next_ifd = struct.unpack_from("<Q" if big else "<I", buf, 8 if big else 4)[0]
    found: list[Directory] = []
    while next_ifd:
        n = struct.unpack_from(count_fmt, buf, next_ifd)[0]
        first = next_ifd + (8 if big else 2)
        arrays, codec = {}, []
        for k in range(n):
            at = first + k * entry_size
            tag, kind = struct.unpack_from("<HH", buf, at)
            count = struct.unpack_from("<Q" if big else "<I", buf, at + 4)[0]
            size = _TYPE_SIZES.get(kind, 1) * count
            value_at = at + (12 if big else 8)
            where = value_at if size <= inline else struct.unpack_from(value_fmt, buf, value_at)[0]
            if tag in (_TILE_OFFSETS, _TILE_BYTE_COUNTS):
                if kind not in _ARRAY_TYPES:
                    raise LayoutError(f"tile {'offsets' if tag == _TILE_OFFSETS else 'sizes'} of type {kind}")
                arrays[tag] = _Array(kind, count, where)
            elif tag in _CODEC_TAGS:
                codec.append((tag, bytes(buf[where:where + size])))
        if set(arrays) != {_TILE_OFFSETS, _TILE_BYTE_COUNTS}:
            raise LayoutError("a directory without tile offsets and sizes (not tiled)")
        found.append(Directory(arrays[_TILE_OFFSETS], arrays[_TILE_BYTE_COUNTS], tuple(sorted(codec))))
        next_ifd = struct.unpack_from(value_fmt, buf, first + n * entry_size)[0]
    return big, found


def encode_tiles(values: np.ndarray, creation: dict) -> tuple[list[memoryview], Directory]:
    """The tiles of ``values`` (2-D), row by row, compressed as GDAL's GTiff driver does with
    ``creation`` (codec options; 512-px tiles, edge tiles padded as GDAL pads them), and the
    directory of the file they were written in (its codec tags)."""
    height, width = values.shape
    with MemoryFile(ext=".tif") as mf:
        with mf.open(driver="GTiff", width=width, height=height, count=1, dtype=values.dtype.name, tiled=True,
                     blockxsize=TILE, blockysize=TILE, transform=_PLAIN, **creation) as ds:
            ds.write(values, 1)
        data = memoryview(mf.read())  # the tiles are views of it (no copies)
    ifd = directories(data)[1][0]
    return [data[o:o + n] for o, n in zip(ifd.offsets.read(data), ifd.sizes.read(data), strict=True)], ifd


class TileRows:
    """Gathers a level's pixels, in windows of any shape and order, into its 512-px tiles and
    compresses each run of tiles once all its pixels are in (:func:`encode_tiles`). A window
    made of whole tiles is compressed as it is; others are copied into the rows of tiles they
    touch, held until those tiles are complete.

    ``submit`` (``submit(fn, *args) -> Future``) runs the compressions elsewhere (on threads:
    a product's one lane would pace the blocks on many cores), as many in flight as
    ``in_flight`` allows (further :meth:`add` calls wait: the blocks they hold bound the
    memory); without it they run in :meth:`add`. Not thread-safe: one caller adds.
    """

    def __init__(self, height: int, width: int, dtype: str, nodata: float, creation: dict, *,
                 submit: Callable[..., Future] | None = None, in_flight: threading.Semaphore | None = None) -> None:
        self.height, self.width, self.dtype, self.nodata, self.creation = height, width, np.dtype(dtype), nodata, creation
        self.rows, self.cols = tiles_across(height), tiles_across(width)
        self.tiles: list[list[memoryview | None]] = [[None] * self.cols for _ in range(self.rows)]
        self.directory: Directory | None = None  # of the first tiles compressed (their codec)
        self._submit, self._in_flight = submit, in_flight or threading.BoundedSemaphore(2)
        self._encodings: list[Future] = []
        self._bands: dict[int, np.ndarray] = {}  # a row of tiles being filled
        self._filled = np.zeros((self.rows, self.cols), np.int64)  # pixels in, per tile
        self._taken = np.zeros((self.rows, self.cols), bool)  # handed to a compression

    def _tile_size(self, ty: int, tx: int) -> int:
        return (min(TILE, self.height - ty * TILE)) * (min(TILE, self.width - tx * TILE))

    def add(self, values: np.ndarray, window: Window) -> None:
        """Take the pixels of ``window`` (integer offsets and sizes, inside the level)."""
        r0, c0, h, w = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
        whole = (r0 % TILE == 0 and c0 % TILE == 0 and (h % TILE == 0 or r0 + h == self.height)
                 and (w % TILE == 0 or c0 + w == self.width))
        if whole and not self._taken[r0 // TILE:tiles_across(r0 + h), c0 // TILE:tiles_across(c0 + w)].any():
            self._encode(values, r0 // TILE, c0 // TILE)
            return
        for ty in range(r0 // TILE, (r0 + h - 1) // TILE + 1):
            top, bottom = max(r0, ty * TILE), min(r0 + h, (ty + 1) * TILE)
            band = self._bands.get(ty)
            if band is None:
                band = self._bands[ty] = np.full((min(TILE, self.height - ty * TILE), self.width), self.nodata,
                                                 self.dtype)
            band[top - ty * TILE:bottom - ty * TILE, c0:c0 + w] = values[top - r0:bottom - r0]
            txs = range(c0 // TILE, (c0 + w - 1) // TILE + 1)
            for tx in txs:
                self._filled[ty, tx] += (bottom - top) * (min(c0 + w, (tx + 1) * TILE) - max(c0, tx * TILE))
            done = [tx for tx in txs if not self._taken[ty, tx] and self._filled[ty, tx] >= self._tile_size(ty, tx)]
            for run in _runs(done):  # each run of complete tiles in one file
                self._encode(band[:, run[0] * TILE:min(self.width, (run[-1] + 1) * TILE)], ty, run[0])
            if self._taken[ty].all():
                del self._bands[ty]  # (a compression still running holds its part)

    def _encode(self, values: np.ndarray, ty: int, tx: int) -> None:
        self._taken[ty:ty + tiles_across(values.shape[0]), tx:tx + tiles_across(values.shape[1])] = True
        if self._submit is None:
            self._place(values, ty, tx)
            return
        self._in_flight.acquire()
        try:
            done = self._submit(self._place, values, ty, tx)
        except BaseException:
            self._in_flight.release()
            raise
        # (the callback holds the semaphore, not this object: no cycle keeps a date's tiles alive)
        done.add_done_callback(functools.partial(_release, self._in_flight))
        self._encodings.append(done)

    def _place(self, values: np.ndarray, ty: int, tx: int) -> None:
        tiles, ifd = encode_tiles(values, self.creation)
        if self.directory is None:
            self.directory = ifd
        across = tiles_across(values.shape[1])
        for k, data in enumerate(tiles):
            self.tiles[ty + k // across][tx + k % across] = data

    def finish(self) -> list[memoryview]:
        """Every tile, row by row, once its compression is done; raises what a compression
        raised, or ``ValueError`` if any pixel never came."""
        encodings, self._encodings = self._encodings, []
        wait(encodings)
        for done in encodings:
            done.result()
        missing = sum(t is None for row in self.tiles for t in row)
        if missing:
            raise ValueError(f"{missing} of {self.rows * self.cols} tiles incomplete (blocks missing)")
        return [t for row in self.tiles for t in row]

    def cancel(self) -> None:
        """Drop the compressions not started; wait for those running."""
        encodings, self._encodings = self._encodings, []
        for done in encodings:
            done.cancel()
        wait(encodings)
        self.tiles = []


def _release(semaphore: threading.Semaphore, _done: Future) -> None:
    semaphore.release()


def _runs(columns: list[int]) -> list[list[int]]:
    """Consecutive runs of sorted integers."""
    runs: list[list[int]] = []
    for c in columns:
        if runs and c == runs[-1][-1] + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


def cog_template(profile: dict, copy_options: dict, describe: Callable[[rasterio.io.DatasetWriter], None] | None = None,
                 ) -> bytes:
    """The header and directories of the COG GDAL's COG driver makes with ``copy_options`` of a
    raster of ``profile`` (size, dtype, nodata, CRS, transform) whose tags ``describe`` sets,
    with the overview levels of :func:`~.overviews.cog_overview_shapes`: copied, sparse, from an
    empty VRT of that raster (no source: GDAL reads nothing; an empty GeoTIFF took 3x longer,
    30 ms for 4000², read and found empty block by block), so no tile is written."""
    raster = {k: profile[k] for k in ("width", "height", "dtype", "nodata")}
    with contextlib.ExitStack() as files:
        levels = []
        for height, width in cog_overview_shapes(profile["height"], profile["width"]):
            level = files.enter_context(MemoryFile(ext=".vrt"))
            with rasterio.open(level.name, "w", driver="VRT", count=1, transform=_PLAIN,  # (only its pixels are read)
                               **dict(raster, height=height, width=width)):
                levels.append(level.name)
        empty = files.enter_context(MemoryFile(ext=".vrt"))
        with rasterio.open(empty.name, "w", driver="VRT", count=1, crs=profile.get("crs"),
                           transform=profile.get("transform"), **raster) as ds:
            if describe is not None:
                describe(ds)
        # its overviews: the empty levels (GDAL writes a VRT's overviews only as XML elements)
        vrt = ET.fromstring(empty.read())
        band = vrt.find("VRTRasterBand")
        for name in levels:
            overview = ET.SubElement(band, "Overview")
            ET.SubElement(overview, "SourceFilename").text = name
            ET.SubElement(overview, "SourceBand").text = "1"
        header = files.enter_context(MemoryFile(ET.tostring(vrt), ext=".vrt"))
        made = files.enter_context(MemoryFile(ext=".tif"))
        rasterio.shutil.copy(header.name, made.name, driver="COG", sparse_ok=True, overviews="FORCE_USE_EXISTING",
                             **copy_options)
        return made.read()


class CogTiles:
    """The tiles of one COG and of its overview levels, gathered as they are computed
    (:meth:`add` the blocks, :meth:`overview_builder` computes the levels from them), and the
    file they make (:meth:`write`). ``creation``: the GTiff driver's codec options; ``submit``:
    where the tiles are compressed (:class:`TileRows`), at most ``at_once`` at a time (all
    levels together); ``map_parts``: where a wide level's rows are computed in ``at_once``
    parts side by side (:class:`~.overviews.OverviewBuilder`).
    """

    def __init__(self, height: int, width: int, dtype: str, nodata: float, creation: dict, *,
                 submit: Callable[..., Future] | None = None, at_once: int = 2,
                 map_parts: PartsMap | None = None) -> None:
        shapes = [(height, width), *cog_overview_shapes(height, width)]
        self.dtype, self.nodata, self._map_parts, self._at_once = dtype, nodata, map_parts, at_once
        in_flight = threading.BoundedSemaphore(max(1, at_once))
        self.levels = [TileRows(h, w, dtype, nodata, creation, submit=submit, in_flight=in_flight)
                       for h, w in shapes]

    def add(self, values: np.ndarray, window: Window) -> None:
        """A block of the full-resolution raster."""
        self.levels[0].add(values, window)

    def sink(self, level: int, row: int, rows: np.ndarray) -> None:
        """Rows of overview ``level`` (0: the largest), as :class:`OverviewBuilder` computes them."""
        self.levels[level + 1].add(rows, Window(0, row, rows.shape[1], rows.shape[0]))

    def overview_builder(self) -> OverviewBuilder:
        """The builder of the overview levels, which hands their rows to :meth:`sink`."""
        return OverviewBuilder(self.levels[0].height, self.levels[0].width, int(self.nodata), self.dtype,
                               sink=self.sink, map_parts=self._map_parts, parts=self._at_once)

    def cancel(self) -> None:
        """Drop the compressions not started, wait for those running (a failed date)."""
        for level in self.levels:
            level.cancel()

    def assemble(self, template: bytes) -> list[bytes | memoryview]:
        """The COG's bytes, in pieces: ``template``'s directories (:func:`cog_template`) with
        each tile's place filled in, then the tiles, smallest level first.

        Raises
        ------
        LayoutError
            The template is not one this module knows (:func:`check_template`), or the
            file would outgrow its offsets (a classic TIFF past 4 GiB).
        ValueError
            A tile never came.
        """
        tiles = [level.finish() for level in self.levels]
        made = self.levels[0].directory
        big, dirs = check_template(template, [len(t) for t in tiles], made.codec if made else None)
        head = bytearray(template)
        at, pieces = len(head), [head]
        for ifd, level in reversed(list(zip(dirs, tiles, strict=True))):  # smallest level first
            offsets, sizes = [], []
            for data in level:
                # the layout's leader (the tile's size) and trailer (its last 4 bytes)
                pieces += [struct.pack("<I", len(data)), data, data[-4:]]
                offsets.append(at + 4)
                sizes.append(len(data))
                at += len(data) + 8
            if not big and at >= 2**32:
                raise LayoutError("more than 4 GiB of tiles in a classic TIFF")
            ifd.offsets.write(head, offsets)
            ifd.sizes.write(head, sizes)
        return pieces

    def write(self, template: bytes, dst: str | Path) -> None:
        """Write the COG (:meth:`assemble`) to ``dst``."""
        pieces = self.assemble(template)
        for level in self.levels:  # written: no longer held (a date's tiles are its product's size)
            level.tiles = []
        with open(dst, "wb") as f:
            f.writelines(pieces)


#: GDAL's COG layout, as its header declares it (``GDAL_STRUCTURAL_METADATA``): the one placed here
_LAYOUT = {"LAYOUT": "IFDS_BEFORE_DATA", "BLOCK_ORDER": "ROW_MAJOR", "BLOCK_LEADER": "SIZE_AS_UINT4",
           "BLOCK_TRAILER": "LAST_4_BYTES_REPEATED", "KNOWN_INCOMPATIBLE_EDITION": "NO"}


def check_template(template: bytes, tiles: Sequence[int], codec: tuple | None) -> tuple[bool, list[Directory]]:
    """(BigTIFF?, directories) of a template (:func:`cog_template`) checked to be what
    :meth:`CogTiles.assemble` fills in: GDAL's COG layout declared in its header
    (:data:`_LAYOUT`), one directory per level with ``tiles`` tiles each, none written
    (sparse), and the ``codec`` tags of the tiles' own files (when given).

    Raises
    ------
    LayoutError
        Naming what differs.
    """
    big, dirs = directories(template)
    start = 16 if big else 8
    head = template[start:start + 200].split(b"\n")
    if not head[0].startswith(b"GDAL_STRUCTURAL_METADATA_SIZE="):
        raise LayoutError("no GDAL structural metadata (not a COG layout)")
    declared = dict(line.decode("ascii", "replace").partition("=")[::2] for line in head[1:] if b"=" in line)
    differs = {k: declared.get(k) for k, v in _LAYOUT.items() if declared.get(k) != v}
    if differs:
        raise LayoutError(f"its layout says {differs}")
    if [d.offsets.count for d in dirs] != list(tiles) or [d.sizes.count for d in dirs] != list(tiles):
        raise LayoutError(f"its directories hold {[d.offsets.count for d in dirs]} tiles, not {list(tiles)}")
    if any(any(d.offsets.read(template)) or any(d.sizes.read(template)) for d in dirs):
        raise LayoutError("tiles written in it (not sparse)")
    if codec is not None and any(d.codec != codec for d in dirs):
        raise LayoutError("its codec tags are not the tiles' own")
    return big, dirs


@functools.lru_cache(maxsize=None)
def assembles(dtype: str, nodata: float, creation: tuple, copy_options: tuple) -> bool:
    """Whether COGs of ``dtype`` with these codec options (``creation``: the GTiff driver's,
    ``copy_options``: the COG driver's, each as sorted items) can be assembled from their
    tiles (:class:`CogTiles`) with this GDAL: once per process and codec (5-20 ms), the
    template of a small raster with an overview level and edge tiles must pass
    :func:`check_template` against the codec of tiles compressed with ``creation``. If not
    (another GDAL's layout or options), the log says why and products are copied by GDAL.
    The tests check more: an assembled COG is GDAL's own, byte for byte."""
    height, width = 530, 520
    profile = {"width": width, "height": height, "dtype": dtype, "nodata": nodata, "transform": _PLAIN}
    try:
        template = cog_template(profile, dict(copy_options))
        codec = encode_tiles(np.full((height, width), nodata, dtype), dict(creation))[1].codec
        shapes = [(height, width), *cog_overview_shapes(height, width)]
        check_template(template, [tiles_across(h) * tiles_across(w) for h, w in shapes], codec)
    except Exception as exc:  # noqa: BLE001 - a probe: whatever this GDAL does otherwise, GDAL copies instead
        log.info("COGs of %s are copied by GDAL, not assembled from their tiles: %s", dtype, exc)
        return False
    return True
