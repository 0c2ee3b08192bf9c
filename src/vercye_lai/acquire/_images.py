"""Source images kept open for the reads of a stack: :class:`ImageCache` on one thread,
:class:`ThreadImages` for chunks read on many threads and on Dask workers (a worker process's
tasks share one copy), and :func:`open_image` with its check that a local JPEG 2000 file is
whole (:func:`check_whole_jp2`). Part of :mod:`vercye_lai.acquire.warp`, which exports them.
"""

from __future__ import annotations

import collections
import os
import struct
import threading
import uuid

import rasterio

from vercye_lai.errors import DataIOError, gdal_reason

try:
    import resource  # POSIX: the open-file limit (ThreadImages)
except ImportError:  # pragma: no cover - Windows
    resource = None


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
