"""Safe raster I/O: atomic writes, clear open errors, the GeoTIFF creation options.

Every output of the pipeline is written to a hidden temporary file in the destination
folder and renamed onto its final name only when complete, so a final name never holds a
half-written file and a rerun can trust whatever it finds.

A temporary name says who writes it: ``.{final name}.{host}~{pid}~{random}.part``, and GDAL
may add to it (``.part.ovr.tmp``, ``.part.aux.xml``). Leftovers are removed by whoever
next writes there, but only when their writer is gone (that process no longer runs on
this host, or the file is a day old), so two runs on the same folders never delete each
other's live files.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from vercye_lai.errors import (
    NO_SPACE,
    DataIOError,
    DiskFullError,
    InputError,
    LaiError,
    gdal_reason,
)

log = logging.getLogger(__name__)

TMP_SUFFIX = ".part"


def check_utf8(path: str | Path) -> Path:
    """``path``, or an :class:`InputError` if it is not valid UTF-8.

    Linux file names are bytes; Python hands undecodable ones over as surrogates, which
    GDAL (UTF-8 paths) cannot take. One clear error for that path, not a traceback.
    """
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("path is not valid UTF-8 (GDAL needs UTF-8 file names): rename it",
                         path=path) from None
    return Path(path)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; final outputs get the usual permissions instead
_FILE_MODE = 0o666 & ~_current_umask()

#: Creation options for intermediate/float products: tiled, fast lossless compression.
GTIFF_PROFILE: dict = {
    "driver": "GTiff",
    "tiled": True,
    "blockxsize": 512,
    "blockysize": 512,
    "compress": "zstd",
    "zstd_level": 1,
    "interleave": "band",
    "bigtiff": "if_safer",
}


#: this host in temporary names (no ".", "~" or "/": the name stays parseable)
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
#: ``{host}~{pid}~`` of a temporary name, then the random part and ``.part``
_WRITER_RE = re.compile(r"\.(?P<host>[A-Za-z0-9-]+)~(?P<pid>\d+)~[^.~/]*\.part")
#: a temporary file untouched this long is stale whoever wrote it (PIDs are reused)
STALE_AFTER_S = 24 * 3600


def tmp_path_for(dst: str | Path) -> Path:
    """A unique hidden temporary path beside ``dst`` (same folder, so rename is atomic),
    naming this host and process as its writer."""
    dst = Path(dst)
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.{HOST}~{os.getpid()}~", suffix=TMP_SUFFIX,
                                dir=dst.parent)
    os.close(fd)
    return Path(name)


def writer_alive(tmp: Path) -> bool:
    """Whether the process that wrote temporary file ``tmp`` may still be writing it.

    A name without a writer (older versions) or a file untouched for
    :data:`STALE_AFTER_S` is stale; on this host the process must still exist; a writer on
    another host (a shared file system) is taken to be alive until then.
    """
    m = _WRITER_RE.search(tmp.name)
    try:
        age = time.time() - tmp.stat().st_mtime
    except OSError:
        return False  # gone already
    if m is None or age > STALE_AFTER_S:
        return False
    if m["host"] != HOST:
        return True
    pid = int(m["pid"])
    if pid == os.getpid():
        return True  # one of our threads
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def stale_files(folder: str | Path, prefix: str = "") -> list[Path]:
    """Temporary files in ``folder`` of outputs whose name starts with ``prefix``, with any
    suffix GDAL added, whose writer is gone (:func:`writer_alive`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.glob(f".{glob.escape(prefix)}*{TMP_SUFFIX}*")
    # a folder too (a Zarr cube, a STAC catalogue being written), if it is one of ours
    return sorted(p for p in found if (p.is_file() or (p.is_dir() and p.name.endswith(TMP_SUFFIX)))
                  and not writer_alive(p))


def files_under(root: str | Path, *suffixes: str) -> list[Path]:
    """The files under ``root`` whose names end with one of ``suffixes`` (all files without),
    sorted, outside hidden folders: another run's temporary ones (a catalogue or a cube being
    written, ``.{name}.….part``) are not read, and a folder that vanishes while it is walked
    is passed over (``Path.rglob`` raised FileNotFoundError when another run's catalogue moved
    in beside this one's: measured, 2 concurrent catalogue writers, 1-2 of 40 writes each)."""
    found = []
    # (os.walk passes over a folder it cannot list; linked folders are walked, as rglob did)
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder) / n for n in names if not suffixes or n.endswith(suffixes)]
    return sorted(found)


def remove_stale(folder: str | Path, prefix: str = "") -> int:
    """Remove :func:`stale_files`; return how many were removed."""
    n = 0
    for old in stale_files(folder, prefix):
        with contextlib.suppress(OSError):
            if old.is_dir():  # a Zarr cube or a STAC catalogue being written
                shutil.rmtree(old)
            else:
                old.unlink()
            n += 1
            log.debug("removed stale temporary file %s", old)
    return n


def stale_tmp_files(dst: str | Path) -> list[Path]:
    """Temporary files of ``dst`` left by an interrupted run (see :func:`stale_files`)."""
    dst = Path(dst)
    return stale_files(dst.parent, f"{dst.name}.")


#: free space below which a write error without an errno is taken for a full disk: GDAL
#: reports ENOSPC only as "TIFFAppendToStrip: Write error" (libtiff prints the cause)
_NEARLY_FULL = 16 * 1024 * 1024


def _errno_of(exc: BaseException) -> int | None:
    """The errno of ``exc`` or of the OS error that caused it (GDAL wraps them)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno:
            return exc.errno
        exc = exc.__cause__ or exc.__context__
    return None


def write_error(exc: OSError, dst: str | Path) -> OSError:
    """The error to report for an OS or GDAL error while writing ``dst``: a full disk, a
    permission or a read-only file system as a one-line :class:`DataIOError` naming the
    folder; anything else as it is (it may be a read error of an input)."""
    dst = Path(dst)
    code = _errno_of(exc)
    if code is None:
        with contextlib.suppress(OSError):
            if shutil.disk_usage(dst.parent).free < _NEARLY_FULL:
                code = errno.ENOSPC
    if code in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"{NO_SPACE} (writing {dst.name})", path=dst.parent)
    if code in (errno.EACCES, errno.EPERM):
        return DataIOError(f"permission denied: cannot write {dst.name} here", path=dst.parent)
    if code == errno.EROFS:
        return DataIOError(f"read-only file system: cannot write {dst.name} here", path=dst.parent)
    return exc


@contextlib.contextmanager
def atomic_output(dst: str | Path, *, clean_stale: bool = True, whole_raster: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto ``dst`` only if the block succeeds.

    The temporary file lives in ``dst``'s folder (hidden, ``.{name}.*.part``) so the
    final ``os.replace`` is atomic. On any exception, including ``KeyboardInterrupt``, the
    temporary file is removed and ``dst`` is left untouched. Leftovers of a killed run
    are removed first when ``clean_stale`` is true. A GeoTIFF must read whole before it is
    renamed (``whole_raster``; a download checked by its own md5 need not).

    Raises
    ------
    DataIOError
        For an OS or GDAL error while writing (:func:`write_error`): permission denied,
        read-only file system; :class:`~vercye_lai.errors.DiskFullError` for a full disk.
    """
    dst = check_utf8(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if clean_stale:
            remove_stale(dst.parent, f"{dst.name}.")
        tmp = tmp_path_for(dst)
    except OSError as exc:
        error = write_error(exc, dst)
        if error is exc:
            raise
        raise error from exc
    try:
        yield tmp
        if whole_raster and dst.suffix.lower() in (".tif", ".tiff") and tmp.exists():
            # GDAL writes a GeoTIFF's last bytes when it is closed, and a failure there (a full
            # disk) raises nothing through rasterio: an empty file was renamed into place, exit 0
            reason = incomplete_reason(tmp, suffix=dst.suffix)
            if reason is not None:
                full = write_error(OSError(), dst)  # (no errno: a full disk is judged from the free space)
                raise full if isinstance(full, LaiError) else DataIOError(f"not written whole: it {reason}", path=dst)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, dst)
    except BaseException as exc:
        # judge a full disk before the cleanup frees the space
        error = write_error(exc, dst) if isinstance(exc, OSError) and not isinstance(exc, LaiError) else None
        if isinstance(exc, RuntimeError) and "NetCDF:" in str(exc):  # netCDF4's own (a full disk: "HDF error")
            error = write_error(OSError(), dst)
            if not isinstance(error, LaiError):
                error = DataIOError(f"cannot write it: {exc}", path=dst)
        with contextlib.suppress(OSError):
            tmp.unlink()
        # GDAL may leave sidecars (.aux.xml, .ovr) beside the temporary file
        for side in tmp.parent.glob(tmp.name + ".*"):
            with contextlib.suppress(OSError):
                side.unlink()
        if error is not None and error is not exc:
            raise error from exc
        raise


def write_text_atomic(dst: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_output(dst) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dst)


def open_raster(path: str | Path, *, georeferenced: bool = True) -> rasterio.DatasetReader:
    """Open a raster for reading, turning GDAL errors into a :class:`DataIOError`.

    Parameters
    ----------
    path
        File to open.
    georeferenced
        Require a CRS and a non-identity geotransform.
    """
    path = check_utf8(path)
    if not path.exists():
        raise DataIOError("file does not exist", path=path)
    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise DataIOError(f"cannot open raster (corrupt or not a raster?): {gdal_reason(exc)}", path=path) from exc
    if georeferenced and (ds.crs is None or ds.transform == rasterio.Affine.identity()):
        ds.close()
        # a file cut short loses its georeferencing tags first: say that, not "no CRS"
        damaged = incomplete_reason(path) if path.suffix.lower() in (".tif", ".tiff") else None
        if damaged is not None:
            raise DataIOError(f"raster is truncated or damaged ({damaged}; {path.stat().st_size:,} bytes)", path=path)
        raise DataIOError("raster is not georeferenced (no CRS or no geotransform)", path=path)
    if ds.driver == "VRT":
        # GDAL opens a mosaic whose part is gone and fails only at the first read
        missing = [os.path.normpath(f) for f in ds.files[1:] if "/vsi" not in f and not Path(f).exists()]
        if missing:
            ds.close()
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataIOError(f"source file of the VRT is missing: {missing[0]}{more}", path=path)
    return ds


def band_scaling(ds: rasterio.DatasetReader, band: int = 1) -> tuple[float, float]:
    """The declared ``(scale, offset)`` of a band: value = stored × scale + offset (GDAL's
    metadata; ``predict --dtype int16`` products declare theirs)."""
    scale = ds.scales[band - 1] if ds.scales else None
    offset = ds.offsets[band - 1] if ds.offsets else None
    return (1.0 if scale is None else float(scale)), (0.0 if offset is None else float(offset))


def apply_scaling(ds: rasterio.DatasetReader, values: np.ndarray, band: int = 1) -> np.ndarray:
    """``values`` (float, NaN = nodata) of ``band`` with its declared scale and offset applied."""
    scale, offset = band_scaling(ds, band)
    if (scale, offset) == (1.0, 0.0):
        return values
    return values * values.dtype.type(scale) + values.dtype.type(offset)


def read_values(ds: rasterio.DatasetReader, band: int = 1, **read: Any) -> np.ndarray:
    """Band ``band`` as float32 values: NaN where nodata (or NaN), its declared scale and
    offset applied (every reader of products uses this: int16 products read as float32)."""
    data = ds.read(band, masked=True, **read)
    return apply_scaling(ds, data.astype(np.float32).filled(np.nan), band)


def nodata_mask(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """True where ``data`` equals ``nodata`` or is NaN (any band, for 3-D input)."""
    bad = np.zeros(data.shape[-2:], dtype=bool)
    floating = np.issubdtype(data.dtype, np.floating)
    for band in data.reshape(-1, *data.shape[-2:]):
        if floating:
            bad |= np.isnan(band)
        if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
            bad |= band == nodata
    return bad


def incomplete_reason(path: str | Path, *, suffix: str | None = None) -> str | None:
    """Why an existing output cannot be trusted as whole, or ``None`` when it can.

    A file finished by this tool is whole (it was renamed into place complete), but one
    truncated outside it (a half-copied sync) must not be skipped by a rerun: a raster
    must open and its last block of every band must read (the end of the file, cheap
    whatever its size); a CSV must end its last line and keep its header's column count;
    a JSON or VRT must parse. ``suffix``: the kind of file, where its name does not say it (a
    temporary file).
    """
    path = Path(path)
    try:
        if not path.is_file():
            return "does not exist"
        if path.stat().st_size == 0:
            return "is empty"
        suffix = (suffix or path.suffix).lower()
        if suffix in (".tif", ".tiff"):
            with rasterio.open(path) as ds:
                for band in range(1, ds.count + 1):
                    bh, bw = ds.block_shapes[band - 1]
                    row, col = (ds.height - 1) // bh * bh, (ds.width - 1) // bw * bw
                    ds.read(band, window=rasterio.windows.Window(col, row, ds.width - col, ds.height - row))
        elif suffix == ".csv":
            text = path.read_text(encoding="utf-8")
            lines = text.splitlines()
            if not text.endswith("\n") or {line.count(",") for line in lines} != {lines[0].count(",")}:
                return "is cut short (last line unfinished or rows of another width)"
        elif suffix == ".json":
            import json

            json.loads(path.read_text(encoding="utf-8"))
        elif suffix == ".vrt":
            import xml.etree.ElementTree as ET

            ET.parse(path)
    except (OSError, ValueError, rasterio.errors.RasterioError) as exc:
        return f"cannot be read whole ({gdal_reason(exc)})"
    except Exception as exc:  # noqa: BLE001 - ET.ParseError and the like: not whole either
        return f"cannot be read whole ({exc})"
    return None


def is_whole(path: str | Path) -> bool:
    """:func:`incomplete_reason` is ``None``; a file that exists but is not whole is logged."""
    reason = incomplete_reason(path)
    if reason and reason != "does not exist":
        log.warning("%s: existing file %s; it is made again", path, reason)
    return reason is None


def up_to_date(outputs: Sequence[Path], inputs: Iterable[Path]) -> bool:
    """Every output exists whole (:func:`is_whole`) and none is older than any input (a
    rerun need not redo it)."""
    if not outputs or not all(is_whole(p) for p in outputs):
        return False
    newest = max((p.stat().st_mtime for p in inputs), default=0.0)
    return min(p.stat().st_mtime for p in outputs) >= newest
