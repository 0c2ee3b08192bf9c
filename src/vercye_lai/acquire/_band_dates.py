"""The dates of band files: the acquisition time in a Sentinel-2 product name, and the one
file kept per date.

Held apart from :mod:`vercye_lai.acquire.bands` (which re-exports every public name here)
because it works on file names and coarse samples only, before any stack is planned: which
file stands for a date is a question of its own (reprocessings, several Sentinel-2 units).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vercye_lai.acquire._band_meta import band_indexes
from vercye_lai.acquire.offset import read_sample
from vercye_lai.acquire.platform import baseline_of, date_order_key
from vercye_lai.acquire.scl import DEFAULT_SCL_MASK, scl_invalid
from vercye_lai.errors import BandError, InputError
from vercye_lai.io import open_raster

log = logging.getLogger(__name__)

# any Sentinel-2 unit (S2A, S2B, S2C …): its letter, the datatake start, the processing time
_PRODUCT_RE = re.compile(
    r"S2([A-Z])_MSI(?:L2A|L1C)_(\d{8}T\d{6})(?:_N\d{4}_R\d{3}_T\w{5}_(\d{8}T\d{6}))?"
)


def product_times(path: str | os.PathLike) -> tuple[dt.datetime, dt.datetime | None] | None:
    """Datatake start time and processing time (UTC) from a Sentinel-2 product name in a
    file name, or None when the name holds none."""
    m = _PRODUCT_RE.search(Path(path).name)
    if not m:
        return None

    def parse(s):
        return dt.datetime.strptime(s, "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)

    return parse(m[2]), parse(m[3]) if m[3] else None


def acquisition_time(path: str | os.PathLike, when: dt.datetime | None = None) -> dt.datetime:
    """The acquisition time of a file: ``when`` if given (naive = UTC), else parsed from a
    Sentinel-2 product name in the file name.

    Raises
    ------
    InputError
        When neither is available.
    """
    times = product_times(path)
    if when is not None:
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        if times is not None and abs(when - times[0]) > dt.timedelta(hours=1):  # taken, but not without a word
            log.warning("%s: --time %s is not the acquisition its name holds (%s); the stack is dated %s",
                        Path(path).name, when.isoformat(), times[0].isoformat(), when.date())
        return when
    if times is None:
        raise InputError(
            "no acquisition time: the file name holds no Sentinel-2 product name "
            "(S2A_MSIL2A_YYYYMMDDTHHMMSS_…, any unit letter); give the time (--time)",
            path=path,
        )
    return times[0]


def _acquisition(path: Path) -> str:
    """The unit and datatake start in a product name (its reprocessings share them), else the name."""
    m = _PRODUCT_RE.search(path.name)
    return f"S2{m[1]}_{m[2]}" if m else path.name


def file_valid_share(path: str | os.PathLike, scl_classes: Iterable[int] = DEFAULT_SCL_MASK) -> float:
    """Share (0–1) of a reflectance file's pixels with a B4 value and (with an SCL band) no
    masked class, from a coarse read; 0 when its bands cannot be named."""
    with open_raster(path) as ds:
        try:
            index = band_indexes(ds)
        except BandError:
            return 0.0
        red = read_sample(ds, index["B4"])
        ok = np.isfinite(red) & (red != 0)
        if "SCL" in index:
            ok &= ~scl_invalid(read_sample(ds, index["SCL"], shape=red.shape), scl_classes)
    return float(ok.mean())


def newest_per_date(
    paths: Iterable[str | os.PathLike], when: dt.datetime | None = None
) -> dict[dt.date, Path]:
    """One file per acquisition date, logged when there were several. Of the reprocessings
    of one acquisition (same unit and datatake start in the product name): the newest
    processing baseline, then the one processed last (processing time in the name, else the
    file's modification time). Of the acquisitions of one date (Sentinel-2A, 2B, 2C), in
    the order of :func:`~vercye_lai.acquire.platform.date_order_key`: the newest baseline,
    then the larger valid share (:func:`file_valid_share`), then the name."""
    paths = [Path(p) for p in paths]
    latest: dict[tuple[dt.date, str], tuple[tuple, Path]] = {}
    for p in paths:
        date = acquisition_time(p, when).date()
        times = product_times(p)
        key = (baseline_of(p.name) or -1.0, times[1].timestamp() if times and times[1] else p.stat().st_mtime,
               p.name)
        old = latest.get((date, _acquisition(p)))
        if old is None or key > old[0]:
            latest[(date, _acquisition(p))] = (key, p)
    by_date: dict[dt.date, list[Path]] = {}
    for (date, _), (_, p) in latest.items():
        by_date.setdefault(date, []).append(p)
    out: dict[dt.date, Path] = {}
    for date in sorted(by_date):
        if len(by_date[date]) > 1:
            by_date[date].sort(key=lambda p: date_order_key(baseline_of(p.name), file_valid_share(p), p.name))
        out[date] = by_date[date][0]
    for p in paths:
        date = acquisition_time(p, when).date()
        if p != out[date]:
            log.warning("%s: %s and %s are of the same date; using %s", date, p.name, out[date].name,
                        out[date].name)
    return out
