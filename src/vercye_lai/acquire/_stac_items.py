"""What a Sentinel-2 L2A STAC item says about itself: its asset keys, unit, mosaic order,
reflectance scaling and angles.

Held apart from :mod:`vercye_lai.acquire.stac` (which re-exports every name here) because
it reads only an item's metadata (and, for the offset check and the angle grids, a coarse
sample and the granule XML), never the pixels on the output grid: ``stack-stac`` and
``predict-stac`` (:mod:`vercye_lai.predict.direct`) both build on it, each with its own
reading of the assets.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from vercye_lai.acquire import scl as masks
from vercye_lai.acquire.angles import TileAngles, cosines, parse_tile_angles
from vercye_lai.acquire.offset import Sample, check_offset, check_reflectance_scale, expected_offset, read_sample
from vercye_lai.acquire.platform import baseline_of, date_order_key, s2_platform, valid_share
from vercye_lai.acquire.stac_search import read_bytes
from vercye_lai.errors import DataIOError, InputError, LaiError
from vercye_lai.stack import S2_BANDS_20M

log = logging.getLogger(__name__)

REFLECTANCE_BANDS: tuple[str, ...] = tuple(S2_BANDS_20M[3:])  # B3 … B12

#: Asset keys per catalogue flavour: band → asset key (``SCL`` and ``granule`` included).
ASSET_KEYS: dict[str, dict[str, str]] = {
    "earth-search": {
        "B3": "green",
        "B4": "red",
        "B5": "rededge1",
        "B6": "rededge2",
        "B7": "rededge3",
        "B8A": "nir08",
        "B11": "swir16",
        "B12": "swir22",
        "SCL": "scl",
        "granule": "granule_metadata",
    },
    "planetary-computer": {
        "B3": "B03",
        "B4": "B04",
        "B5": "B05",
        "B6": "B06",
        "B7": "B07",
        "B8A": "B8A",
        "B11": "B11",
        "B12": "B12",
        "SCL": "SCL",
        "granule": "granule-metadata",
    },
}
QUANTIFICATION = 10000.0  # L2A DN per unit reflectance
BOA_OFFSET_DN = -1000.0  # processing baseline ≥ 04.00


def asset_keys(item: Any) -> dict[str, str]:
    """The band → asset-key map that fits ``item`` (Earth Search or Planetary Computer).

    Raises
    ------
    InputError
        When the item lacks one of the 8 reflectance assets or SCL under both namings.
    """
    needed = (*REFLECTANCE_BANDS, "SCL")
    for keys in ASSET_KEYS.values():
        if all(keys[b] in item.assets for b in needed):
            return keys
    raise InputError(
        f"STAC item {item.id} lacks the Sentinel-2 L2A assets "
        f"(has {', '.join(sorted(item.assets))}); "
        f"expected {', '.join(ASSET_KEYS['earth-search'][b] for b in needed)} or "
        f"{', '.join(ASSET_KEYS['planetary-computer'][b] for b in needed)}"
    )


def _baseline(item: Any) -> float | None:
    # the property, else the product id: ..._N0400_...
    return baseline_of(item.properties.get("s2:processing_baseline"), item.properties.get("s2:product_uri"))


def item_platform(item: Any) -> str | None:
    """The item's Sentinel-2 unit (``sentinel-2c``): its ``platform``, else its id or
    ``s2:product_uri`` (``S2C_…``); ``None`` when none names one."""
    p = item.properties
    return s2_platform(p.get("platform"), item.id, p.get("s2:product_uri"))


def date_order(items: Iterable[Any]) -> list[Any]:
    """A date's items in mosaic order (:func:`~vercye_lai.acquire.platform.date_order_key`):
    newest processing baseline, then the larger valid share from the item's
    ``s2:nodata_pixel_percentage`` and ``eo:cloud_cover``, then the id."""
    def key(it: Any) -> tuple:
        p = it.properties
        share = valid_share(p.get("s2:nodata_pixel_percentage"), p.get("eo:cloud_cover", 100.0))
        return date_order_key(_baseline(it), share, it.id)

    return sorted(items, key=key)


def declared_scaling(item: Any, asset_key: str) -> tuple[float, float, str]:
    """``(scale, offset, where from)`` with reflectance factor = DN × scale + offset for one
    asset, as the item's metadata say.

    The asset's ``raster:bands`` scale/offset win when present (Earth Search v1 declares
    them). Otherwise ``earthsearch:boa_offset_applied`` (true: the DNs already include
    the offset) or ``s2:processing_baseline`` ≥ 04.00 (BOA_ADD_OFFSET = −1000 DN) decide:
    the baseline, never the date (Collection-1 reprocessings of earlier years carry the
    offset too). The data may say otherwise: see :func:`item_scaling`.
    """
    asset = item.assets[asset_key]
    rb = (asset.extra_fields.get("raster:bands") or [{}])[0]
    if "scale" in rb or "offset" in rb:
        return float(rb.get("scale", 1.0)), float(rb.get("offset", 0.0)), "raster:bands"
    scale = 1.0 / QUANTIFICATION
    if item.properties.get("earthsearch:boa_offset_applied"):
        return scale, 0.0, "earthsearch:boa_offset_applied"
    baseline = _baseline(item)
    if baseline is not None and baseline >= 4.0:
        return scale, BOA_OFFSET_DN * scale, f"baseline {baseline:05.2f}"
    return scale, 0.0, "baseline before 04.00" if baseline is not None else "no baseline"


def reflectance_scaling(item: Any, asset_key: str) -> tuple[float, float]:
    """``(scale, offset)`` of :func:`declared_scaling`."""
    return declared_scaling(item, asset_key)[:2]


def items_digest(items: Sequence[Any]) -> str:
    """What a stack of ``items`` is made of, in short: their ids and a digest of their
    properties and assets (hrefs aside: a catalogue moved is the same), so that a catalogue
    corrected under the same ids (a wrong ``raster:bands`` scale) makes its stacks again."""

    def content(it: Any) -> dict:
        assets = {k: {f: v for f, v in a.to_dict().items() if f != "href"} for k, a in it.assets.items()}
        return {"id": it.id, "properties": it.properties, "assets": assets}

    blob = json.dumps([content(it) for it in sorted(items, key=lambda i: i.id)], sort_keys=True, default=str)
    return ",".join(sorted(it.id for it in items)) + f" ({hashlib.sha1(blob.encode()).hexdigest()[:12]})"


def item_scaling(item: Any, images: Callable[[str], Any] = str) -> tuple[dict[str, tuple[float, float]], str]:
    """Band → ``(scale, offset)`` of an item's reflectance assets, the offset checked
    against a coarse sample of its B3/B4/B8A/SCL assets
    (:func:`~vercye_lai.acquire.offset.check_offset`: dropped where the COGs hold it
    already, as in element84/earth-search#71, added where a baseline ≥ 04.00 item's data
    lack it), and the check's note for the stack's tags.

    ``images`` opens an asset href (an :class:`~vercye_lai.acquire.warp.ImageCache`).
    """
    keys = asset_keys(item)
    declared = {b: declared_scaling(item, keys[b]) for b in REFLECTANCE_BANDS}
    scale, offset, what = declared["B4"]

    def sample(band: str, shape=None) -> np.ndarray:
        return read_sample(images(item.assets[keys[band]].get_absolute_href()), shape=shape, nodata=0)

    green = sample("B3")
    # a wrong declared scale (1 for DNs: every reflectance clipped to 32767 in the stack) is refused
    check_reflectance_scale(Sample(green, green, green, np.isfinite(green)), scale, offset, what,
                            path=f"STAC item {item.id}", fix="its raster:bands scale does not make its DNs "
                            "reflectances (DNs x 1e-4 in Sentinel-2 L2A): correct the catalogue")
    checked = check_offset(
        item.id,
        Sample(green, sample("B4", green.shape), sample("B8A", green.shape),
               np.isin(sample("SCL", green.shape), masks.LAND_CLASSES)),
        scale=scale, offset=offset, what=what, expected=expected_offset(_baseline(item)))
    return {b: (s, checked.offset if checked.offset != offset else o) for b, (s, o, _) in declared.items()}, checked.note


def property_angles(item: Any) -> dict[str, float]:
    """Mean sun/view angles (degrees) from item properties, for items without metadata XML.

    Sun: ``s2:mean_solar_zenith``/``_azimuth`` or ``view:sun_elevation``/``view:sun_azimuth``.
    View: ``view:incidence_angle`` (or ``view:off_nadir``) and ``view:azimuth``; when
    missing, a nadir view (zenith 0°, azimuth = sun azimuth) is assumed, with a warning.
    """
    p = item.properties
    sz = p.get("s2:mean_solar_zenith")
    if sz is None and p.get("view:sun_elevation") is not None:
        sz = 90.0 - float(p["view:sun_elevation"])
    sa = p.get("s2:mean_solar_azimuth", p.get("view:sun_azimuth"))
    if sz is None or sa is None:
        raise InputError(
            f"STAC item {item.id} has neither a granule metadata asset nor sun angle properties "
            "(s2:mean_solar_zenith/azimuth or view:sun_elevation/azimuth)"
        )
    vz = p.get("view:incidence_angle", p.get("view:off_nadir"))
    va = p.get("view:azimuth")
    if vz is None or va is None:
        log.warning("%s: no view angles in the item; assuming a nadir view", item.id)
        vz, va = 0.0, sa
    return {
        "sun_zenith": float(sz),
        "sun_azimuth": float(sa),
        "view_zenith": float(vz),
        "view_azimuth": float(va),
    }


def item_angles(item: Any) -> tuple[TileAngles | dict[str, np.ndarray], str]:
    """The angles of an item, read once per item: the granule metadata's angle grids
    (:class:`~vercye_lai.acquire.angles.TileAngles`), or, when the item has no granule
    metadata asset, constant cosines from its properties; and where they came from
    (``"granule metadata"`` or ``"item properties"``)."""
    granule = item.assets.get(asset_keys(item)["granule"])
    if granule is not None:
        href = granule.get_absolute_href()
        try:
            return parse_tile_angles(read_bytes(href)), "granule metadata"
        except LaiError as exc:  # parsed from bytes: say whose
            raise DataIOError(f"STAC item {item.id}: {exc}", path=href) from exc
    log.info("%s: angles from item properties (no granule metadata asset)", item.id)
    return cosines(**property_angles(item)), "item properties"
