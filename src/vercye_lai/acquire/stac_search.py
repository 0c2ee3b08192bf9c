"""STAC shared by the sources that read it (``stac``, ``hls``, ``landsat``, ``scene``): the
well-known catalogues, item search in an API or a static catalogue (signed for Planetary
Computer), and reading remote assets with GDAL's settings for them.

Public STAC APIs cannot be reached from the tests: they run against static catalogues built
from real products, and pystac-client's own test doubles.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from vercye_lai.acquire.warp import warp_options
from vercye_lai.errors import (
    DataIOError,
    DependencyError,
    InputError,
    ServiceError,
    gdal_reason,
    require,
)
from vercye_lai.grid import Grid
from vercye_lai.naming import date_range

log = logging.getLogger(__name__)

EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"
CATALOG_ALIASES = {"earth-search": EARTH_SEARCH, "planetary-computer": PLANETARY_COMPUTER}
#: GDAL settings for reading remote assets: no directory listing, retries on HTTP errors.
GDAL_REMOTE_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "2",
    "GDAL_HTTP_MULTIRANGE": "YES",
}

#: GDAL paths and URLs read over a network
REMOTE_PREFIXES = ("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss", "/vsiswift", "http://", "https://",
                   "s3://")


def remote_env() -> contextlib.AbstractContextManager:
    """:data:`GDAL_REMOTE_ENV` for a read, unless this thread's rasterio environment already
    holds it (stack-stac's, a predict-stac chunk's): a nested environment restarts GDAL's at
    its exit, and every start resets PROJ's search paths for every thread (counted: a chunk's
    9 reads started it 9 times)."""
    if rasterio.env.hasenv():
        current = rasterio.env.getenv()
        if all(str(current.get(k)) == v for k, v in GDAL_REMOTE_ENV.items()):
            return contextlib.nullcontext()
    return rasterio.Env(**GDAL_REMOTE_ENV)


# --------------------------------------------------------------------------- catalogues


def item_date(item: Any) -> dt.date:
    """UTC acquisition date of an item."""
    return item_time(item).date()


#: items closer in time than this are one overpass (a Sentinel-2 pass over a region lasts minutes)
ONE_PASS = dt.timedelta(minutes=20)


def items_by_date(items: Sequence[Any]) -> dict[dt.date, list[Any]]:
    """The items grouped by :func:`item_date` (UTC), oldest date first. An overpass whose items
    fall on two UTC dates (near 157° E a pass is at ~00:20 UTC: eastern Australia) makes two
    dates, each partly covered: that is logged as a warning naming the dates and times."""
    by_date: dict[dt.date, list[Any]] = {}
    for it in items:
        by_date.setdefault(item_date(it), []).append(it)
    times = sorted(item_time(it) for it in items)
    for t0, t1 in zip(times, times[1:]):
        if t0.date() != t1.date() and t1 - t0 <= ONE_PASS:
            log.warning("one overpass falls on two UTC dates, %s (%s UTC) and %s (%s UTC): its items make two "
                        "dates, each partly covered", t0.date(), t0.strftime("%H:%M"), t1.date(), t1.strftime("%H:%M"))
    return dict(sorted(by_date.items()))


def item_time(item: Any) -> dt.datetime:
    """UTC acquisition time of an item: its ``datetime``, or its ``start_datetime`` where a
    range is given instead (``datetime: null`` is legal STAC)."""
    when = item.datetime or dt.datetime.fromisoformat(str(item.properties["start_datetime"]).replace("Z", "+00:00"))
    return when.astimezone(dt.UTC) if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _planetary_signer() -> Callable[[Any], Any]:
    # Planetary Computer assets must be signed
    return require("planetary_computer", "stac").sign_inplace


def _http_reason(exc: BaseException) -> str:
    """``HTTP 404: <the body's first line>`` of a failed request (some servers send no body,
    some clients no message): the status, and the error's kind when nothing else is said."""
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    text = " ".join(str(exc).split())[:300]
    parts = [f"HTTP {status}" if status else "", text or type(exc).__name__]
    return ": ".join(p for p in parts if p)


def is_static(catalog: str) -> bool:
    """True for a static catalogue (a local path or a ``.json`` URL), False for an API URL."""
    if re.match(r"^https?://", catalog):
        return catalog.split("?")[0].endswith(".json")
    return True


def search_items(
    catalog: str,
    *,
    collection: str,
    geometry,
    start: dt.date,
    end: dt.date,
    max_cloud: float | None = None,
) -> list[Any]:
    """Items of ``collection`` over ``geometry`` (EPSG:4326) from ``start`` to ``end``.

    Parameters
    ----------
    catalog
        ``"earth-search"``, ``"planetary-computer"``, a STAC API URL, or a static
        catalogue (``catalog.json`` path or URL).
    collection
        Collection id (``sentinel-2-l2a``).
    max_cloud
        Maximum ``eo:cloud_cover`` (percent).

    Returns
    -------
    list of pystac.Item
        Sorted by datetime; Planetary Computer items come signed.
    """
    pystac = require("pystac", "stac")
    catalog = CATALOG_ALIASES.get(catalog, catalog)
    date_range(start, end)  # validates the order
    if is_static(catalog):
        local = catalog.removeprefix("file://")  # (a file:// URL of an existing file was refused)
        if not re.match(r"^https?://", catalog) and not Path(local).exists():
            raise DataIOError("STAC catalogue does not exist", path=catalog)
        try:
            root = pystac.read_file(catalog)
        except Exception as exc:
            raise DataIOError(f"cannot read the STAC catalogue: {exc}", path=catalog) from exc
        items = _filter_static(
            root.get_items(recursive=True),
            collection=collection,
            geometry=geometry,
            start=start,
            end=end,
            max_cloud=max_cloud,
        )
    else:
        client_mod = require("pystac_client", "stac")
        modifier = _planetary_signer() if catalog == PLANETARY_COMPUTER else None
        query = {"eo:cloud_cover": {"lte": max_cloud}} if max_cloud is not None else None
        try:
            client = client_mod.Client.open(catalog, modifier=modifier)
            search = client.search(
                collections=[collection],
                intersects=geometry.__geo_interface__,
                datetime=f"{start.isoformat()}/{end.isoformat()}",
                query=query,
            )
            items = list(search.items())
        except (DependencyError, InputError):
            raise
        except Exception as exc:
            raise ServiceError(f"STAC search failed: {_http_reason(exc)}", path=catalog) from exc
    return sorted(items, key=lambda it: (item_date(it), it.id))


def _filter_static(
    items: Iterable[Any],
    *,
    collection: str,
    geometry,
    start: dt.date,
    end: dt.date,
    max_cloud: float | None,
) -> list[Any]:
    """What an API search would do, for a static catalogue."""
    from shapely.geometry import box, shape

    out = []
    for item in items:
        if item.collection_id != collection:
            continue
        if not start <= item_date(item) <= end:
            continue
        footprint = shape(item.geometry) if item.geometry else box(*item.bbox)
        if not footprint.intersects(geometry):
            continue
        cloud = item.properties.get("eo:cloud_cover")
        if max_cloud is not None and cloud is not None and cloud > max_cloud:
            continue
        out.append(item)
    return out


def read_asset(
    href: str | rasterio.DatasetReader, grid: Grid, *, resampling: Resampling
) -> np.ndarray:
    """One asset resampled onto ``grid`` as float32; NaN outside the data and where DN = 0.

    ``href`` is a path/URL (opened here) or an open dataset (e.g. from an
    :class:`~vercye_lai.acquire.warp.ImageCache`). ``grid`` may be a window of a larger
    grid: the values do not depend on the window (see
    :func:`~vercye_lai.acquire.warp.warp_options`).
    """
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(remote_env())
            src = href if not isinstance(href, (str, Path)) else stack.enter_context(rasterio.open(href))
            if src.crs is None:  # (a CRSError traceback deep in the warp)
                raise DataIOError("STAC asset has no CRS (a georeferenced image is needed)",
                                  path=getattr(href, "name", href))
            if src.driver == "JP2OpenJPEG" and str(src.name).startswith(REMOTE_PREFIXES) and str(
                    rasterio.env.getenv().get("GDAL_NUM_THREADS")) != "1":
                # GDAL decodes a JP2 on threads of its own and drops their errors: a range request that
                # failed there gave garbage pixels; on this thread it raises (local files are checked
                # whole when opened, :func:`~vercye_lai.acquire.warp.check_whole_jp2`)
                stack.enter_context(rasterio.Env(GDAL_NUM_THREADS="1"))
            vrt = stack.enter_context(
                WarpedVRT(
                    src,
                    crs=grid.crs,
                    transform=grid.transform,
                    width=grid.shape[1],
                    height=grid.shape[0],
                    resampling=resampling,
                    src_nodata=0,
                    nodata=0,
                    **warp_options(src.transform, src.crs, grid),
                )
            )
            data = vrt.read(1, out_dtype="float32")
    except rasterio.errors.RasterioIOError as exc:
        raise DataIOError(f"cannot read STAC asset: {gdal_reason(exc)}", path=getattr(href, "name", href)) from exc
    data[data == 0] = np.nan  # L2A DN 0 is no data
    return data


def read_bytes(href: str) -> bytes:
    try:
        if re.match(r"^https?://", href):
            with urllib.request.urlopen(href, timeout=60) as resp:
                return resp.read()
        return Path(href.removeprefix("file://")).read_bytes()
    except OSError as exc:
        raise DataIOError(f"cannot read the granule metadata: {exc}", path=href) from exc
