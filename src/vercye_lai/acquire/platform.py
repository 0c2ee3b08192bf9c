"""Which satellite a product comes from, and which of a date's products goes first.

Sentinel-2 units are named by one letter (2A, 2B, 2C since 2025, 2D to come), and every
place that names them spells the letter differently: a product name
(``S2C_MSIL2A_…``, an Earth Search id ``S2C_33UXP_20250126_0_L2A``), a STAC ``platform``
(``sentinel-2c``), ``SPACECRAFT_NAME`` in ``MTD_MSIL2A.xml``, an HLS S30 file's tags and
Earth Engine's image properties (``Sentinel-2C``). :func:`s2_platform` reads them all with
one pattern of a unit letter, not a list of known units, and gives the STAC spelling,
which the stacks carry in their ``PLATFORM`` tag (:data:`PLATFORM_TAG`; the SNAP 3.0
networks are chosen per unit from it, see :mod:`vercye_lai.model.registry`).

The products of one date (units, tiles, reprocessings) are mosaicked first valid pixel
first, in the order :func:`date_order_key` gives: the newest processing baseline first,
then the larger valid share (not nodata, not cloud, from the product's metadata), then
the name — so the choice is the same on every run and every machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: the stack tag naming the platform(s) of a stack's pixels, mosaic order (``sentinel-2c``)
PLATFORM_TAG = "PLATFORM"

# "Sentinel-2C", "sentinel-2c", "SENTINEL2C"; or a product name's leading "S2C_" (any unit letter)
_SPACECRAFT = re.compile(r"sentinel-?2([a-z])(?![a-z0-9])", re.IGNORECASE)
_PRODUCT = re.compile(r"(?:^|[^A-Za-z0-9])S2([A-Z])(?:_|$)")
_BASELINE = re.compile(r"_N(\d{2})(\d{2})_")


def s2_platform(*texts: object) -> str | None:
    """The Sentinel-2 unit in the first of ``texts`` that names one, as STAC spells it
    (``"sentinel-2c"``), or ``None`` when none does.

    Parameters
    ----------
    texts
        Spacecraft names (``Sentinel-2C``), STAC platforms (``sentinel-2c``) or product
        names and ids (``S2C_MSIL2A_…``, ``S2C_33UXP_…``); ``None`` is skipped.
    """
    for text in texts:
        if text is None:
            continue
        s = str(text)
        m = _SPACECRAFT.search(s) or _PRODUCT.search(s)
        if m:
            return f"sentinel-2{m[1].lower()}"
    return None


def platform_tag(platforms: Iterable[str | None]) -> dict[str, str]:
    """The ``PLATFORM`` tag of a stack mosaicked from products of these platforms (the
    distinct known ones in mosaic order, comma-separated); empty when none is known."""
    known = [p for p in dict.fromkeys(platforms) if p]
    return {PLATFORM_TAG: ",".join(known)} if known else {}


def baseline_of(*texts: object) -> float | None:
    """A processing baseline (``4.0`` for ``"04.00"``) from a baseline string or a
    product name holding ``_N0400_``; ``None`` when none of ``texts`` gives one."""
    for text in texts:
        if text is None:
            continue
        s = str(text)
        m = _BASELINE.search(s)
        try:
            return float(f"{m[1]}.{m[2]}") if m else float(s)
        except ValueError:
            continue
    return None


def valid_share(nodata_percent: float | None, cloud_percent: float | None) -> float:
    """Share (0–1) of a product's pixels that hold data and no cloud, from its metadata
    percentages (``NODATA_PIXEL_PERCENTAGE``, cloud cover of the data; missing: 0 %)."""
    return (1 - (nodata_percent or 0.0) / 100) * (1 - (cloud_percent or 0.0) / 100)


def date_order_key(baseline: float | None, share: float, name: str) -> tuple:
    """Sort key of a date's products: newest processing baseline first (unknown last),
    then the larger valid share, then the name."""
    return (-(baseline if baseline is not None else -1.0), -share, name)
