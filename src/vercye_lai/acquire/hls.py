"""NASA's Harmonized Landsat Sentinel-2 (HLS) granules on disk → input stacks.

Granules are folders (or lists) of COGs named
``HLS.{L30|S30}.T{tile}.{YYYYDOY}T{HHMMSS}.v{version}.{band}.tif`` (v1.5 granules cut to
GeoTIFF may lack the time and carry a further suffix, ``….B04.clip.tif``).

Bands
    HLS L30 (Landsat 8/9 OLI, Landsat numbering) → ``B3, B4, B5, B6, B7`` for the Landsat
    network (``sl2p-l8``, as LEAF uses it for L30); HLS S30 (Sentinel-2 MSI harmonised to
    Landsat geometry) keeps Sentinel-2's bands and numbering → ``B3 … B12`` for the
    Sentinel-2 networks. Reflectance = stored × 1e-4; fill −9999 (v2.0) or −1000 (v1.5)
    where a file declares no nodata.
Fmask
    Bits 0 cirrus, 1 cloud, 2 adjacent to cloud or shadow, 3 cloud shadow, 4 snow/ice,
    5 water, 6–7 aerosol level; the bits in ``fmask`` (default 0–4) mask a pixel, as
    does the fill value 255; ``--cloud-buffer`` pixels around bits 0–3 are masked too.
Unit
    An S30 granule's Sentinel-2 unit (any, 2C included) from its ``SPACECRAFT_NAME`` tag
    or STAC ``platform``, in the stack's ``PLATFORM`` tag.
Angles
    The granule's ``SZA, SAA, VZA, VAA`` bands (uint16 degrees × 100, fill 40000) where
    present; else the sun from the acquisition time per pixel and a nadir view (logged,
    and in the stack's tags).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import rasterio

from vercye_lai.acquire import scene
from vercye_lai.acquire.platform import s2_platform
from vercye_lai.acquire.source import Source
from vercye_lai.acquire.stac_search import search_items
from vercye_lai.errors import InputError
from vercye_lai.options import setting
from vercye_lai.stack import L8_BANDS, S2_BANDS_20M

log = logging.getLogger(__name__)

_NAME = re.compile(
    r"^HLS\.(?P<kind>L30|S30)\.T(?P<tile>\w{5})\.(?P<ydoy>\d{7})(?:T(?P<hms>\d{6}))?"
    r"\.v(?P<version>\d+\.\d+)\.(?P<band>[A-Za-z0-9]+)(?:\.[\w-]+)*\.tif$", re.IGNORECASE)
#: network band ← HLS band file, per product kind
BANDS = {
    "L30": {"B3": "B03", "B4": "B04", "B5": "B05", "B6": "B06", "B7": "B07"},
    "S30": {"B3": "B03", "B4": "B04", "B5": "B05", "B6": "B06", "B7": "B07", "B8A": "B8A",
            "B11": "B11", "B12": "B12"},
}
INPUTS = {"L30": L8_BANDS, "S30": S2_BANDS_20M}
SCALE = 1e-4
FILL = {"2": -9999, "1": -1000}  # by major version
FMASK_BITS = {0: "cirrus", 1: "cloud", 2: "adjacent to cloud or shadow", 3: "cloud shadow",
              4: "snow/ice", 5: "water"}
DEFAULT_FMASK = (0, 1, 2, 3, 4)
#: Fmask bits of clouds and their shadows: dilated by --cloud-buffer
FMASK_CLOUD_BITS = (0, 1, 2, 3)


def _time(m: re.Match, band_file: Path) -> dt.datetime:
    day = dt.datetime.strptime(m["ydoy"], "%Y%j").replace(tzinfo=dt.UTC)
    if m["hms"]:
        return day.replace(hour=int(m["hms"][:2]), minute=int(m["hms"][2:4]), second=int(m["hms"][4:]))
    with rasterio.open(band_file) as ds:  # v1.5 names hold no time: the granule's SENSING_TIME
        sensing = ds.tags().get("SENSING_TIME", "").split(";")[0].strip()
    if not sensing:
        raise InputError("the granule name holds no time and its files no SENSING_TIME", path=band_file)
    import pandas as pd

    t = pd.Timestamp(sensing)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.floor("us").to_pydatetime()


def _platform(kind: str, band_file: Path) -> str | None:
    """An S30 granule's Sentinel-2 unit, from its ``SPACECRAFT_NAME`` (``Sentinel-2C``) or
    ``PRODUCT_URI`` tag (the first of a granule made of two products); L30: ``None``."""
    if kind != "S30":
        return None
    with rasterio.open(band_file) as ds:
        tags = ds.tags()
    return s2_platform(tags.get("SPACECRAFT_NAME"), tags.get("PRODUCT_URI"))


def find_granules(paths: Iterable[str | os.PathLike], *, fmask: Sequence[int] = DEFAULT_FMASK,
                  kinds: Sequence[str] = ("L30", "S30")) -> list[scene.Scene]:
    """The HLS granules among ``paths`` (files, or folders searched recursively).

    Raises
    ------
    InputError
        A granule without a band the networks need or without its Fmask (naming what is
        missing), an unknown Fmask bit, or no granule at all.
    """
    bad = [b for b in fmask if b not in FMASK_BITS]
    if bad:
        raise InputError(f"fmask: bit(s) {bad} are not cloud/shadow/snow/water bits; allowed: "
                         + ", ".join(f"{b} {n}" for b, n in FMASK_BITS.items()))
    files: dict[str, dict[str, Path]] = {}
    matches: dict[str, re.Match] = {}
    for p in map(Path, paths):
        for f in (sorted(p.rglob("*.tif")) if p.is_dir() else [p]):
            m = _NAME.match(f.name)
            if not m or m["kind"].upper() not in kinds:
                continue
            gid = f"HLS.{m['kind'].upper()}.T{m['tile'].upper()}.{m['ydoy']}" + (f"T{m['hms']}" if m["hms"] else "") \
                + f".v{m['version']}"
            files.setdefault(gid, {})[m["band"].upper().replace("FMASK", "Fmask")] = f
            matches[gid] = m
    scenes = []
    for gid, have in sorted(files.items()):
        m = matches[gid]
        kind = m["kind"].upper()
        need = {**BANDS[kind], "Fmask": "Fmask"}
        missing = [f for f in need.values() if f not in have]
        if missing:
            raise InputError(f"granule {gid} lacks band file(s) {', '.join(missing)}", path=next(iter(have.values())))
        angles = {a: have[a] for a in scene.ANGLE_FILES if a in have}
        if angles and len(angles) < len(scene.ANGLE_FILES):
            raise InputError(f"granule {gid} has only some angle bands ({', '.join(angles)}); need "
                             f"{', '.join(scene.ANGLE_FILES)} or none", path=next(iter(angles.values())))
        bands = {b: have[f] for b, f in BANDS[kind].items()}
        notes = () if angles else ("no angle bands: sun from the acquisition time, nadir view assumed",)
        if not angles:
            log.info("%s: no angle bands; the sun is computed from the acquisition time, the view "
                     "assumed nadir", gid)
        scenes.append(scene.Scene(
            sensor=kind, product=gid, tile=m["tile"].upper(), time=_time(m, bands["B3"]), bands=bands,
            inputs=INPUTS[kind], scale=SCALE, offset=0.0, fill=FILL.get(m["version"].split(".")[0], -9999),
            quality=have["Fmask"], quality_bits=tuple(fmask), quality_fill=255, angles=angles, notes=notes,
            platform=_platform(kind, bands["B3"]), cloud_bits=FMASK_CLOUD_BITS))
    if not scenes:
        raise InputError("no HLS granule files (HLS.{L30|S30}.T{tile}.{YYYYDOY}….v{version}.{band}.tif) in "
                         + ", ".join(map(str, paths)))
    return scenes


def stack_hls(paths: Iterable[str | os.PathLike], geometry, region: str, resolution: float,
              out_dir: str | os.PathLike, *, fmask: Sequence[int] = DEFAULT_FMASK,
              kinds: Sequence[str] = ("L30", "S30"), overwrite: bool = False,
              progress=None, cloud_buffer: int = 0) -> dict[tuple[dt.date, str], Path]:
    """Write ``{region}_{res}m_{date}_{L30|S30}.tif`` for every date of the granules
    (``cloud_buffer``: pixels masked around the Fmask cloud and shadow bits)."""
    return scene.stack_scenes(find_granules(paths, fmask=fmask, kinds=kinds), geometry, region, resolution,
                        out_dir, overwrite=overwrite, source="stack-hls", progress=progress,
                        cloud_buffer=cloud_buffer)


# --- the ``hls`` source of ``vercye-lai run`` (see :mod:`vercye_lai.acquire`) -------------



@dataclass(frozen=True)
class Options(scene.SceneSourceOptions):
    """The ``hls`` source: HLS granules on disk."""
    paths: tuple[Path, ...] = setting(
        (), cli=None, help="Folders of HLS granule COGs (searched recursively), files or glob patterns.")
    fmask: tuple[int, ...] = setting(
        DEFAULT_FMASK, sep=",", help="Fmask bits that mask a pixel: 0 cirrus, 1 cloud, 2 adjacent, "
        "3 shadow, 4 snow/ice, 5 water.")
    products: tuple[str, ...] = setting(
        ("L30", "S30"), sep=",", choices=("L30", "S30"), help="HLS products to stack.")
    catalog: str | None = setting(
        None, help='"planetary-computer" (hls2-l30/hls2-s30), "nasa" (CMR-STAC; reading needs EARTHDATA_TOKEN or ~/.netrc), a STAC API URL or a static catalogue; instead of paths.')


def acquire(region, options: Options, out_dir: Path, *, resolution: float, state_dir: Path) -> dict:
    """The stacks of ``region``'s dates from the files or the catalogue: ``(date, sensor) -> path``."""
    from functools import partial

    return scene.acquire_scenes(region, options, out_dir, source="hls",
                          local=partial(find_granules, fmask=options.fmask, kinds=options.products),
                          catalogue=partial(search_granules, products=options.products, fmask=options.fmask))


# --- from STAC: Planetary Computer (hls2-l30, hls2-s30), NASA CMR-STAC (HLSL30_2.0, HLSS30_2.0)

NASA_STAC = "https://cmr.earthdata.nasa.gov/stac/LPCLOUD"
#: collection ids per catalogue, by product
STAC_COLLECTIONS = {
    "planetary-computer": {"L30": "hls2-l30", "S30": "hls2-s30"},
    "nasa": {"L30": "HLSL30_2.0", "S30": "HLSS30_2.0"},
}


def scenes_from_items(items: Iterable, *, fmask: Sequence[int] = DEFAULT_FMASK) -> list[scene.Scene]:
    """HLS v2.0 STAC items (asset keys ``B03`` …, ``Fmask``, ``SZA`` …) as scenes.

    Raises
    ------
    InputError
        An item that is not an HLS granule or lacks an asset (naming what it has).
    """
    scenes = []
    for item in items:
        kind = "S30" if ("S30" in item.id.upper() or "s30" in str(item.collection_id).lower()) else "L30"
        if not ("L30" in item.id.upper() or "S30" in item.id.upper() or "hls" in str(item.collection_id).lower()):
            raise InputError(f"STAC item {item.id} is not an HLS granule")
        bands = {b: scene.asset_href(item, (f, f.lower())) for b, f in BANDS[kind].items()}
        quality = scene.asset_href(item, ("Fmask", "fmask", "FMASK"))
        angles = {a: scene.asset_href(item, (a, a.lower())) for a in scene.ANGLE_FILES}
        missing = [k for k, v in {**bands, "Fmask": quality}.items() if v is None]
        if missing:
            raise InputError(f"STAC item {item.id} lacks asset(s) {', '.join(missing)}; it has "
                             f"{', '.join(sorted(item.assets))}")
        angles = {a: h for a, h in angles.items() if h is not None}
        if len(angles) < len(scene.ANGLE_FILES):
            angles = {}
        t = item.datetime or dt.datetime.fromisoformat(item.properties["start_datetime"].replace("Z", "+00:00"))
        tile = item.properties.get("hls:tile_id") or (item.id.split(".")[2] if item.id.count(".") > 2 else item.id)
        scenes.append(scene.Scene(
            sensor=kind, product=item.id, tile=str(tile),
            time=t.astimezone(dt.UTC), bands=bands, inputs=INPUTS[kind], scale=SCALE, offset=0.0,
            fill=-9999, quality=quality, quality_bits=tuple(fmask), quality_fill=255, angles=angles,
            notes=() if angles else ("no angle assets: sun from the acquisition time, nadir view assumed",),
            platform=s2_platform(item.properties.get("platform")) if kind == "S30" else None,
            cloud_bits=FMASK_CLOUD_BITS))
    return scenes


def search_granules(catalog: str, *, geometry, start: dt.date, end: dt.date,
                    products: Sequence[str] = ("L30", "S30"), collections: Mapping[str, str] | None = None,
                    fmask: Sequence[int] = DEFAULT_FMASK, max_cloud: float | None = None) -> list[scene.Scene]:
    """The HLS granules of ``catalog`` (``planetary-computer``, ``nasa`` — CMR-STAC, reading
    needs an Earthdata login: ``EARTHDATA_TOKEN`` or ``~/.netrc`` — a STAC API URL or a
    static catalogue) over ``geometry`` (EPSG:4326) in the range.

    Raises
    ------
    InputError
        No item.
    """
    flavour = "nasa" if catalog == "nasa" else "planetary-computer"
    ids = dict(collections or STAC_COLLECTIONS[flavour])
    url = NASA_STAC if catalog == "nasa" else catalog
    items = []
    for kind in products:
        items += search_items(url, collection=ids[kind], geometry=geometry, start=start, end=end,
                              max_cloud=max_cloud)
    if not items:
        raise InputError(f"no HLS item of {', '.join(ids[k] for k in products)} from {start} to {end} in {catalog}")
    return scenes_from_items(items, fmask=fmask)


def stac_hls(catalog: str, *, region: str, geometry, start: dt.date, end: dt.date, resolution: float,
             out_dir: str | os.PathLike, overwrite: bool = False, progress=None, cloud_buffer: int = 0,
             **search) -> dict[tuple[dt.date, str], Path]:
    """Write the stacks of the granules :func:`search_granules` finds (``search``: its options)."""
    return scene.stack_scenes(search_granules(catalog, geometry=geometry, start=start, end=end, **search), geometry,
                        region, resolution, out_dir, overwrite=overwrite, source="stack-hls (STAC)",
                        progress=progress, cloud_buffer=cloud_buffer)


SOURCE = Source("hls", Options, acquire, sensors=lambda o: frozenset(p.upper() for p in o.products))
