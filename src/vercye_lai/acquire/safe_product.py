"""A local Sentinel-2 L2A product (``.SAFE`` folder or its ``.zip``) as a :class:`SafeTile`:
its tile, date, CRS, band images, scaling (``BOA_ADD_OFFSET``, ``BOA_QUANTIFICATION_VALUE``
of ``MTD_MSIL2A.xml``), unit (``SPACECRAFT_NAME``: any ``Sentinel-2X``), processing
baseline, valid share (``NODATA_PIXEL_PERCENTAGE``, ``Cloud_Coverage_Assessment``) and
angle grids (``MTD_TL.xml``). How tiles become stacks is
:mod:`vercye_lai.acquire.safe`'s.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rasterio.crs import CRS

from vercye_lai.acquire.angles import (
    BAND_IDS,
    STACK_VIEW_BANDS,
    read_xml,
)
from vercye_lai.acquire.platform import baseline_of, s2_platform, valid_share
from vercye_lai.errors import DataIOError, InputError
from vercye_lai.stack import canonical_band

log = logging.getLogger(__name__)

REFLECTANCE_BANDS: tuple[str, ...] = STACK_VIEW_BANDS  # B3 … B12 in stack order
_IMG_RE = re.compile(
    r"^GRANULE/[^/]+/IMG_DATA/R(\d+)m/[^/]*_(B\d\d|B8A|SCL)_(\d+)m\.jp2$", re.IGNORECASE
)
_TL_RE = re.compile(r"^GRANULE/[^/]+/MTD_TL\.xml$")
_TILE_RE = re.compile(r"_T(\d\d[A-Z]{3})_")


# ------------------------------------------------------------------------ product access


@dataclass
class SafeTile:
    """One tile of an L2A product, with what :func:`stack_tiles` needs.

    Attributes
    ----------
    source
        The ``.SAFE`` folder or ``.zip`` given.
    product
        Product name (``S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454``).
    tile
        Tile id, e.g. ``"29UNU"``.
    sensing_time
        ``SENSING_TIME`` of the tile (UTC).
    crs, bounds
        Tile CRS and footprint ``(left, bottom, right, top)`` in metres.
    quantification, offsets
        ``BOA_QUANTIFICATION_VALUE`` and ``BOA_ADD_OFFSET`` per band name.
    images
        Band name (``"B3"``, ``"SCL"``…) → {resolution in m: GDAL path}.
    tile_xml
        Content of ``MTD_TL.xml``.
    platform
        Sentinel-2 unit as STAC names it (``"sentinel-2c"``), ``None`` when unknown.
    baseline
        Processing baseline (``4.0`` for 04.00), ``None`` when unknown.
    valid_share
        Share (0–1) of the tile with data and no cloud, from the product's metadata.
    offset_note
        What the offset check found (:mod:`vercye_lai.acquire.offset`), for the stack's tags.
    """
    source: Path
    product: str
    tile: str
    sensing_time: dt.datetime
    crs: CRS
    bounds: tuple[float, float, float, float]
    quantification: float
    offsets: dict[str, float]
    images: dict[str, dict[int, str]] = field(repr=False)
    tile_xml: bytes = field(repr=False)
    platform: str | None = None
    baseline: float | None = None
    valid_share: float = 1.0
    offset_note: str = ""

    @property
    def date(self) -> dt.date:
        return self.sensing_time.date()


def _safe_listing(path: Path) -> tuple[list[str], Callable[[str], bytes], Callable[[str], str]]:
    """Names inside a SAFE (relative to its root), a reader and a GDAL-path maker."""
    if path.is_dir():
        root = path
        if not (root / "MTD_MSIL2A.xml").exists():  # the folder holding one .SAFE
            inner = [p for p in root.glob("*.SAFE") if p.is_dir()]
            if len(inner) == 1:
                root = inner[0]
        names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
        return names, lambda n: (root / n).read_bytes(), lambda n: str(root / n)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if not n.endswith("/")]
        tops = {n.split("/", 1)[0] for n in members if "/" in n}
        prefix = f"{tops.pop()}/" if len(tops) == 1 else ""
        names = [n[len(prefix) :] for n in members if n.startswith(prefix)]
        zpath = path.resolve().as_posix()

        def read(name: str) -> bytes:  # opened per read: no handle left open per product
            with zipfile.ZipFile(path) as zf:
                return zf.read(prefix + name)

        return names, read, lambda n: f"/vsizip/{zpath}/{prefix}{n}"
    if path.exists():
        raise InputError("not a .SAFE folder nor a .zip of one", path=path)
    raise DataIOError("file or folder does not exist", path=path)


def open_safe(path: str | os.PathLike) -> SafeTile:
    """Read the metadata of an L2A product and list its images.

    Parameters
    ----------
    path
        A ``.SAFE`` folder (or the folder holding exactly one), or a ``.zip`` of one.

    Raises
    ------
    InputError
        Not an L2A product, no ``MTD_TL.xml``, several granules.
    """
    path = Path(path)
    names, read, gdal_path = _safe_listing(path)
    if "MTD_MSIL2A.xml" not in names:
        kind = (
            "an L1C product (MTD_MSIL1C.xml); L2A is needed"
            if "MTD_MSIL1C.xml" in names
            else ("not a Sentinel-2 L2A product: MTD_MSIL2A.xml is missing")
        )
        raise InputError(kind, path=path)
    tls = [n for n in names if _TL_RE.match(n)]
    if not tls:
        raise InputError(
            "has no GRANULE/*/MTD_TL.xml (the tile metadata with the sun and view angle grids); "
            "was the product copied or unzipped completely?",
            path=path,
        )
    if len(tls) > 1:
        raise InputError(
            f"has {len(tls)} granules; only single-tile L2A products are supported", path=path
        )
    tile_xml = read(tls[0])
    mtd, _ = read_xml(read("MTD_MSIL2A.xml"))
    tl, _ = read_xml(tile_xml)

    quant = mtd.findtext(".//BOA_QUANTIFICATION_VALUE")
    if quant is None:
        raise InputError("MTD_MSIL2A.xml has no BOA_QUANTIFICATION_VALUE", path=path)
    by_id = {v: k for k, v in BAND_IDS.items()}
    offsets = {
        by_id[int(el.get("band_id"))]: float(el.text)
        for el in mtd.iter("BOA_ADD_OFFSET")
        if el.get("band_id") is not None and int(el.get("band_id")) in by_id
    }
    if not offsets:
        log.debug("%s: no BOA_ADD_OFFSET (baseline < 04.00), offset 0", path.name)

    images: dict[str, dict[int, str]] = {}
    for n in names:
        m = _IMG_RE.match(n)
        if m:
            images.setdefault(canonical_band(m[2]), {})[int(m[3])] = gdal_path(n)

    geo = tl.find(".//Tile_Geocoding")
    sensing = tl.findtext(".//SENSING_TIME")
    if geo is None or sensing is None:
        raise InputError("MTD_TL.xml has no Tile_Geocoding or SENSING_TIME", path=path)
    pos = {el.get("resolution"): el for el in geo.iter("Geoposition")}
    size = {el.get("resolution"): el for el in geo.iter("Size")}
    res = min(pos, key=float)
    ulx, uly = float(pos[res].findtext("ULX")), float(pos[res].findtext("ULY"))
    width = float(size[res].findtext("NCOLS")) * float(res)
    height = float(size[res].findtext("NROWS")) * float(res)
    product = mtd.findtext(".//PRODUCT_URI") or path.name
    product = re.sub(r"\.(SAFE|zip)$", "", product)
    tile = _TILE_RE.search(product + "_")
    return SafeTile(
        source=path,
        product=product,
        tile=tile[1] if tile else "?",
        sensing_time=dt.datetime.fromisoformat(sensing),
        crs=CRS.from_user_input(geo.findtext("HORIZONTAL_CS_CODE")),
        bounds=(ulx, uly - height, ulx + width, uly),
        quantification=float(quant),
        offsets=offsets,
        images=images,
        tile_xml=tile_xml,
        platform=s2_platform(mtd.findtext(".//SPACECRAFT_NAME"), product),
        baseline=baseline_of(mtd.findtext(".//PROCESSING_BASELINE"), product),
        valid_share=valid_share(_number(mtd.findtext(".//NODATA_PIXEL_PERCENTAGE")),
                                _number(mtd.findtext(".//Cloud_Coverage_Assessment"))),
    )


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
