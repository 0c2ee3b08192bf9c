"""Landsat 8/9 Collection 2 Level-2 scenes on disk → input stacks.

A scene is its ``…_SR_B{n}.TIF`` band files, ``…_QA_PIXEL.TIF`` and its metadata
``…_MTL.txt`` (or ``…_MTL.xml``), named by the product id
``L{C|O}0{8|9}_L2SP_{path}{row}_{acquired}_{processed}_02_T{1|2}``.

Bands
    ``SR_B3 … SR_B7`` (green, red, NIR, SWIR1, SWIR2: Landsat numbering) for the Landsat
    network (``sl2p-l8``). Reflectance = DN × ``REFLECTANCE_MULT_BAND_n`` +
    ``REFLECTANCE_ADD_BAND_n`` of the MTL's Level-2 group (Collection 2: × 2.75e-5 − 0.2),
    DN 0 is fill.
QA_PIXEL
    Bits 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow, 7 water; the
    bits in ``qa_bits`` (default 0–5) mask a pixel; ``--cloud-buffer`` pixels around bits
    1–4 are masked too.
Angles
    Per pixel from ``…_SZA/_SAA/_VZA/_VAA.TIF`` angle bands (degrees × 100) where the product
    has them; else the sun per pixel from the acquisition time (``DATE_ACQUIRED`` +
    ``SCENE_CENTER_TIME``) and a nadir view — Landsat's view zenith is at most 7.5° at the
    swath edge (documented, and in the stack's tags).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vercye_lai.acquire.scene import (
    ANGLE_FILES,
    Scene,
    SceneSourceOptions,
    acquire_scenes,
    asset_href,
    stack_scenes,
)
from vercye_lai.acquire.source import Source
from vercye_lai.acquire.stac_search import item_time, search_items
from vercye_lai.errors import InputError
from vercye_lai.options import setting
from vercye_lai.stack import L8_BANDS

log = logging.getLogger(__name__)

_PRODUCT = re.compile(r"^(?P<id>L[CO]0(?P<sat>[89])_L2SP_(?P<pathrow>\d{6})_(?P<acq>\d{8})_\d{8}_02_T[12])_"
                      r"(?P<band>SR_B\d|QA_PIXEL|MTL|SZA|SAA|VZA|VAA)\.(?P<ext>tif|txt|xml)$", re.IGNORECASE)
QA_BITS = {0: "fill", 1: "dilated cloud", 2: "cirrus", 3: "cloud", 4: "cloud shadow", 5: "snow", 7: "water"}
DEFAULT_QA = (0, 1, 2, 3, 4, 5)
#: QA_PIXEL bits of clouds and their shadows: dilated by --cloud-buffer
QA_CLOUD_BITS = (1, 2, 3, 4)
L2_GROUP = "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"


def read_mtl(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """An MTL file (``.txt`` ODL or ``.xml``) as ``{group: {key: value}}`` (innermost groups)."""
    path = Path(path)
    out: dict[str, dict[str, str]] = {}
    try:
        if path.suffix.lower() == ".xml":
            for group in ET.parse(path).getroot().iter():
                leaves = {c.tag: (c.text or "").strip() for c in group if len(c) == 0}
                if leaves:
                    out.setdefault(group.tag, {}).update(leaves)
            return out
        stack: list[str] = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = (s.strip() for s in line.partition("="))
            if key == "GROUP":
                stack.append(value)
            elif key == "END_GROUP":
                stack.pop() if stack else None
            elif value and stack:
                out.setdefault(stack[-1], {})[key] = value.strip('"')
    except (OSError, ET.ParseError) as exc:
        raise InputError(f"cannot read the scene metadata: {exc}", path=path) from exc
    return out


def _first(mtl: dict[str, dict[str, str]], key: str, group: str | None = None) -> str | None:
    if group is not None:
        return mtl.get(group, {}).get(key)
    for g in mtl.values():
        if key in g:
            return g[key]
    return None


def find_scenes(paths: Iterable[str | os.PathLike], *, qa_bits: Sequence[int] = DEFAULT_QA) -> list[Scene]:
    """The Landsat 8/9 C2 L2 scenes among ``paths`` (files, or folders searched recursively).

    Raises
    ------
    InputError
        A scene without a band, its QA_PIXEL or its MTL (naming what is missing), an MTL
        without the Level-2 scaling or the acquisition time, an unknown QA bit, or no scene.
    """
    bad = [b for b in qa_bits if b not in QA_BITS]
    if bad:
        raise InputError(f"qa_bits: bit(s) {bad} are not QA_PIXEL mask bits; allowed: "
                         + ", ".join(f"{b} {n}" for b, n in QA_BITS.items()))
    files: dict[str, dict[str, Path]] = {}
    for p in map(Path, paths):
        for f in (sorted(p.rglob("*")) if p.is_dir() else [p]):
            m = _PRODUCT.match(f.name)
            if m:
                band = m["band"].upper()
                if band == "MTL" and "MTL" in files.get(m["id"].upper(), {}) and f.suffix.lower() == ".xml":
                    continue  # the .txt is read when both are there
                files.setdefault(m["id"].upper(), {})[band] = f
    scenes = []
    for pid, have in sorted(files.items()):
        need = [f"SR_B{n}" for n in range(3, 8)] + ["QA_PIXEL", "MTL"]
        missing = [b for b in need if b not in have]
        if missing:
            raise InputError(f"scene {pid} lacks {', '.join(missing)}", path=next(iter(have.values())))
        mtl = read_mtl(have["MTL"])
        acquired, centre = _first(mtl, "DATE_ACQUIRED"), _first(mtl, "SCENE_CENTER_TIME")
        if not acquired or not centre:
            raise InputError("no DATE_ACQUIRED/SCENE_CENTER_TIME", path=have["MTL"])
        hms = centre.rstrip("Z").split(".")[0]
        time = dt.datetime.fromisoformat(f"{acquired}T{hms}").replace(tzinfo=dt.UTC)
        mult = {n: _first(mtl, f"REFLECTANCE_MULT_BAND_{n}", L2_GROUP) for n in range(3, 8)}
        add = {n: _first(mtl, f"REFLECTANCE_ADD_BAND_{n}", L2_GROUP) for n in range(3, 8)}
        if None in mult.values() or None in add.values():
            raise InputError(f"no Level-2 reflectance scaling ({L2_GROUP}): not a Collection 2 Level-2 "
                             "scene?", path=have["MTL"])
        scale, offset = {float(v) for v in mult.values()}, {float(v) for v in add.values()}
        if len(scale) > 1 or len(offset) > 1:
            raise InputError("bands with different reflectance scalings are not supported", path=have["MTL"])
        angles = {a: have[a] for a in ANGLE_FILES if a in have}
        if angles and len(angles) < len(ANGLE_FILES):
            raise InputError(f"scene {pid} has only some angle bands ({', '.join(angles)})", path=have["MTL"])
        sat = pid[3]
        scenes.append(Scene(
            sensor=f"L{sat}", product=pid, tile=pid.split("_")[2], time=time,
            bands={f"B{n}": have[f"SR_B{n}"] for n in range(3, 8)}, inputs=L8_BANDS,
            scale=scale.pop(), offset=offset.pop(), fill=0, quality=have["QA_PIXEL"], quality_bits=tuple(qa_bits),
            quality_fill=None, angles=angles, angle_fill=None,
            notes=() if angles else ("no angle bands: sun from the acquisition time, nadir view assumed",),
            platform=f"landsat-{sat}", cloud_bits=QA_CLOUD_BITS))
    if not scenes:
        raise InputError("no Landsat C2 L2 scene files (L?0{8|9}_L2SP_…_SR_B{n}.TIF, QA_PIXEL, MTL) in "
                         + ", ".join(map(str, paths)))
    return scenes


def stack_landsat(paths: Iterable[str | os.PathLike], geometry, region: str, resolution: float,
                  out_dir: str | os.PathLike, *, qa_bits: Sequence[int] = DEFAULT_QA,
                  overwrite: bool = False, progress=None, cloud_buffer: int = 0) -> dict[tuple[dt.date, str], Path]:
    """Write ``{region}_{res}m_{date}_{L8|L9}.tif`` for every date of the scenes
    (``cloud_buffer``: pixels masked around the QA_PIXEL cloud and shadow bits)."""
    return stack_scenes(find_scenes(paths, qa_bits=qa_bits), geometry, region, resolution, out_dir,
                        overwrite=overwrite, source="stack-landsat", progress=progress, cloud_buffer=cloud_buffer)


# --- the ``landsat`` source of ``vercye-lai run`` (see :mod:`vercye_lai.acquire`) ----------



@dataclass(frozen=True)
class Options(SceneSourceOptions):
    """The ``landsat`` source: Landsat 8/9 Collection 2 Level-2 scenes on disk."""
    paths: tuple[Path, ...] = setting(
        (), cli=None, help="Folders of Landsat C2 L2 scene files (searched recursively), files or globs.")
    qa_bits: tuple[int, ...] = setting(
        DEFAULT_QA, sep=",", help="QA_PIXEL bits that mask a pixel: 0 fill, 1 dilated cloud, 2 cirrus, "
        "3 cloud, 4 cloud shadow, 5 snow, 7 water.")
    catalog: str | None = setting(
        None, help='"planetary-computer" (signed), "earth-search", a STAC API URL or a static catalogue; instead of paths.')
    collection: str = setting("landsat-c2-l2", help="With --catalog: the STAC collection id.")


def acquire(region, options: Options, out_dir: Path, *, resolution: float, state_dir: Path) -> dict:
    """The stacks of ``region``'s dates from the files or the catalogue: ``(date, sensor) -> path``."""
    from functools import partial

    return acquire_scenes(region, options, out_dir, source="landsat",
                          local=partial(find_scenes, qa_bits=options.qa_bits),
                          catalogue=partial(search_scenes, collection=options.collection, qa_bits=options.qa_bits))


# --- from STAC: landsat-c2-l2 (Planetary Computer, Earth Search) ---------------------------

#: network band ← asset keys (Collection 2 STAC naming)
STAC_ASSETS = {"B3": ("green", "SR_B3"), "B4": ("red", "SR_B4"), "B5": ("nir08", "SR_B5"),
               "B6": ("swir16", "SR_B6"), "B7": ("swir22", "SR_B7")}
DEFAULT_SCALE, DEFAULT_OFFSET = 2.75e-05, -0.2


def _asset_scaling(item, key: str) -> tuple[float, float]:
    bands = item.assets[key].extra_fields.get("raster:bands") or [{}]
    return float(bands[0].get("scale", DEFAULT_SCALE)), float(bands[0].get("offset", DEFAULT_OFFSET))


def scenes_from_items(items: Iterable, *, qa_bits: Sequence[int] = DEFAULT_QA) -> list[Scene]:
    """Landsat 8/9 C2 L2 STAC items (``green`` … ``swir22``, ``qa_pixel``) as scenes; items of
    other platforms (Landsat 4–7) are skipped with a log line.

    Raises
    ------
    InputError
        An item without an asset the network needs (naming what it has).
    """
    scenes = []
    for item in items:
        platform = str(item.properties.get("platform", "")).lower()
        sat = {"landsat-8": "8", "landsat-9": "9"}.get(platform)
        if sat is None and item.id[:4] in ("LC08", "LC09"):
            sat = item.id[3]
        if sat is None:
            log.info("STAC item %s: platform %r is not Landsat 8/9, skipped", item.id, platform)
            continue
        keys = {b: next((k for k in ks if k in item.assets), None) for b, ks in STAC_ASSETS.items()}
        qa = next((k for k in ("qa_pixel", "QA_PIXEL") if k in item.assets), None)
        missing = [b for b, k in {**keys, "qa_pixel": qa}.items() if k is None]
        if missing:
            raise InputError(f"STAC item {item.id} lacks asset(s) for {', '.join(missing)}; it has "
                             f"{', '.join(sorted(item.assets))}")
        scalings = {_asset_scaling(item, k) for k in keys.values()}
        if len(scalings) > 1:
            raise InputError(f"STAC item {item.id}: bands with different reflectance scalings")
        scale, offset = scalings.pop()
        scenes.append(Scene(
            sensor=f"L{sat}", product=item.id, tile=item.id.split("_")[2] if item.id.count("_") > 2 else item.id,
            time=item_time(item), bands={b: asset_href(item, (k,)) for b, k in keys.items()},
            inputs=L8_BANDS, scale=scale, offset=offset, fill=0, quality=asset_href(item, (qa,)),
            quality_bits=tuple(qa_bits), quality_fill=None,
            notes=("sun from the acquisition time, nadir view assumed",),
            platform=f"landsat-{sat}", cloud_bits=QA_CLOUD_BITS))
    return scenes


def search_scenes(catalog: str, *, geometry, start: dt.date, end: dt.date, collection: str = "landsat-c2-l2",
                  qa_bits: Sequence[int] = DEFAULT_QA, max_cloud: float | None = None) -> list[Scene]:
    """The Landsat 8/9 C2 L2 scenes of ``catalog`` (``planetary-computer`` — signed —,
    ``earth-search``, a STAC API URL or a static catalogue) over ``geometry`` in the range.

    Raises
    ------
    InputError
        No Landsat 8/9 item.
    """
    items = search_items(catalog, collection=collection, geometry=geometry, start=start, end=end,
                         max_cloud=max_cloud)
    scenes = scenes_from_items(items, qa_bits=qa_bits)
    if not scenes:
        raise InputError(f"no Landsat 8/9 item of {collection} from {start} to {end} in {catalog}")
    return scenes


def stac_landsat(catalog: str, *, region: str, geometry, start: dt.date, end: dt.date, resolution: float,
                 out_dir: str | os.PathLike, overwrite: bool = False, progress=None, cloud_buffer: int = 0,
                 **search) -> dict[tuple[dt.date, str], Path]:
    """Write the stacks of the scenes :func:`search_scenes` finds (``search``: its options)."""
    return stack_scenes(search_scenes(catalog, geometry=geometry, start=start, end=end, **search), geometry,
                        region, resolution, out_dir, overwrite=overwrite, source="stack-landsat (STAC)",
                        progress=progress, cloud_buffer=cloud_buffer)


SOURCE = Source("landsat", Options, acquire, sensors=lambda o: frozenset({"L8", "L9"}))
