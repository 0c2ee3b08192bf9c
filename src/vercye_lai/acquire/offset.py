"""A reflectance offset checked against the data, for every source that reads stored values.

Processing baselines 04.00 to 05.11 of Sentinel-2 L2A store ``DN = 10000 × ρ + 1000``
(``BOA_ADD_OFFSET = −1000``), Collection-1 reprocessings of earlier years too, so the
offset follows the product's baseline or metadata, never its date. But catalogues and
tools get it wrong both ways: Earth Search items of 2025 declare ``offset −0.1`` in
``raster:bands`` (and ``earthsearch:boa_offset_applied: false``) while their COGs are
already shifted by −1000 DN (element84/earth-search#71), and some reflectance files are
written without the offset applied (two of the bundled Strickhof dates: green/red/NIR
0.1 above the neighbouring dates). Applying an offset twice lowers every reflectance by
0.1, missing it raises every one by 0.1; SL2P turns either into a plausible, wrong LAI.

So before a product is read, :func:`check_offset` looks at a coarse sample of it
(:func:`read_sample`, at most :data:`SAMPLE_SIDE` pixels a side, nearest):

Applied twice
    With the offset applied, more than :data:`~vercye_lai.stack.MAX_NEGATIVE_SHARE` (5 %) of
    the valid land pixels (SCL 4/5, or the source's clear mask) have green or red reflectance
    below :data:`~vercye_lai.stack.NEGATIVE_REFLECTANCE` (−0.005), while without it at most
    5 % do: the data hold the offset already, and it is dropped. Measured: with the offset applied once, 0.03 % of the
    Irish SAFE's land pixels (540,296 at 60 m) and none of the 35 Strickhof files' are
    below −0.005; applied twice, 98 % of the Irish ones and 8–99.5 % (median 75 %) of
    each Strickhof file's are.
Missing
    The product's baseline expects an offset (≥ 04.00), none is applied, and of at least
    :data:`MIN_PIXELS` dense-vegetation land pixels (NDVI > 0.5 as read) fewer than
    :data:`MIN_DARK_SHARE` (20 %) have red reflectance below 0.095: green canopies are
    darker than that in red, so the data lack the offset, and it is applied. Measured:
    48–100 % of each Strickhof file's dense vegetation (65.6 % and more where 100 pixels
    or more) and 98.7 % of the Irish SAFE's read below 0.095 with the right offset; 0 %
    in the three Strickhof files without it and in the Irish SAFE read without it. The
    reflectance files of other tools (``bands`` source) are only warned about: the
    bundled demo's 2022-06-20 and 2022-06-23 files are such (``--offset -0.1`` applies it).

A correction is warned once per product, naming it and what was assumed, and said in
the stack's ``REFLECTANCE_OFFSET`` tag (:func:`offset_tag`). An offset the user gives
(``--offset``) is not checked. Too few land pixels (clouds, water): the metadata's offset
is kept, and the tag says it was not checked.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.enums import Resampling

from vercye_lai.acquire.warp import open_image
from vercye_lai.errors import InputError
from vercye_lai.stack import DARKEST_MEDIAN, MAX_NEGATIVE_SHARE, NEGATIVE_REFLECTANCE, REFLECTANCE_MEDIAN_RANGE

log = logging.getLogger(__name__)

#: fewest land (dense-vegetation) pixels a sample needs to be judged
MIN_PIXELS = 100
#: red reflectance of dense green vegetation is below this …
DARK_RED = 0.095
#: … for at least this share of its pixels, unless the offset is missing
MIN_DARK_SHARE = 0.2
#: pixels a side of the sample read for the check (nearest)
SAMPLE_SIDE = 256
#: the stack tag stating the offset applied and why
OFFSET_TAG = "REFLECTANCE_OFFSET"
#: BOA_ADD_OFFSET of baselines ≥ 04.00 as reflectance (−1000 DN / 10000)
BOA_OFFSET = -0.1


def expected_offset(baseline: float | None) -> float | None:
    """The offset (reflectance) a Sentinel-2 L2A product of this processing baseline
    carries: −0.1 from 04.00 on, 0 before, ``None`` when the baseline is unknown."""
    if baseline is None:
        return None
    return BOA_OFFSET if baseline >= 4.0 else 0.0


def sample_shape(width: int, height: int, side: int = SAMPLE_SIDE) -> tuple[int, int]:
    """``(rows, cols)`` of a sample of an image, at most ``side`` a side, its aspect kept."""
    f = min(1.0, side / max(width, height))
    return max(1, round(height * f)), max(1, round(width * f))


def read_sample(src: str | os.PathLike | rasterio.DatasetReader, band: int = 1, *,
                shape: tuple[int, int] | None = None, nodata: float | None = None) -> np.ndarray:
    """One band of a whole image read coarsely (nearest, from overviews where it has
    them), float64 with NaN where the image (or ``nodata``) says there is no data.

    Parameters
    ----------
    shape
        ``(rows, cols)`` of the sample (default :func:`sample_shape`); give the first
        band's to the others of a product so that the samples' pixels coincide.
    """
    with contextlib.ExitStack() as stack:
        ds = src if isinstance(src, rasterio.io.DatasetReaderBase) else stack.enter_context(open_image(src))
        shape = shape or sample_shape(ds.width, ds.height)
        data = ds.read(band, out_shape=shape, resampling=Resampling.nearest, masked=True)
    out = data.astype(np.float64).filled(np.nan)
    if nodata is not None:
        out[out == nodata] = np.nan
    return out


@dataclass(frozen=True)
class Sample:
    """Stored values (not yet scaled) of a product's green, red and NIR bands on one
    coarse grid, and where its pixels are valid land (SCL 4/5, or the clear mask)."""

    green: np.ndarray
    red: np.ndarray
    nir: np.ndarray
    land: np.ndarray


@dataclass(frozen=True)
class OffsetCheck:
    """The offset (reflectance) to apply to a product, and what the check found (a phrase
    of the ``REFLECTANCE_OFFSET`` tag)."""

    offset: float
    note: str


def check_reflectance_scale(sample: Sample, scale: float, offset: float, how: str, *, path,
                            fix: str = "a file of reflectance x 10000 needs --scale 1e-4") -> None:
    """Refuse a scaling that does not make a product's green band reflectance factors (``fix``:
    what to do when it reads too high): a float file holding reflectance × 10000 wrote a stack of
    nodata, exit 0, with a warning that the offset looked missing; a STAC item declaring scale 1
    for its DNs a stack clipped to 32767.

    Raises
    ------
    InputError
        Naming the median found and what to pass.
    """
    green = sample.green[sample.land & np.isfinite(sample.green)]
    if green.size < 10:
        return
    median = float(np.median(green)) * scale + offset
    lo, hi = REFLECTANCE_MEDIAN_RANGE
    if median > hi:
        raise InputError(f"values are not reflectance factors: B3's median is {median:.6g} (scaling: {how}, x{scale:g}"
                         f"{offset:+g}); {fix}", path=path)
    if median < lo or abs(median) < DARKEST_MEDIAN:
        raise InputError(f"values are not reflectance factors: B3's median is {median:.6g} (scaling: {how}, x{scale:g}"
                         f"{offset:+g}); scaled twice? drop --scale or the file's declared scale", path=path)


def check_offset(name: str, sample: Sample, *, scale: float, offset: float, what: str,
                 expected: float | None = None, add_missing: bool = True) -> OffsetCheck:
    """The offset to read a product with: ``offset`` unless the sample shows it was applied
    already or is missing (see the module docstring); warned when corrected.

    Parameters
    ----------
    name
        The product (item id, product name, file name) for the warning and the tag.
    sample
        Its coarse sample (:class:`Sample`).
    scale, offset
        Reflectance = stored × ``scale`` + ``offset``, as the metadata say.
    what
        Where ``offset`` comes from, in words (``"raster:bands"``, ``"BOA_ADD_OFFSET"``).
    expected
        The offset the product's baseline implies (:func:`expected_offset`), if known.
    add_missing
        Apply a missing offset (Sentinel-2 DNs); ``False``: only warn and say so in the
        note (reflectances another tool wrote, which ``--offset`` corrects).
    """
    land = sample.land & np.isfinite(sample.green) & np.isfinite(sample.red)
    n = int(land.sum())
    said = f"{name}: {offset:+g} ({what})"
    if n < MIN_PIXELS:
        return OffsetCheck(offset, f"{said}, not checked ({n} land pixels)")
    low = np.minimum(sample.green[land], sample.red[land]) * scale
    share = float(np.mean(low + offset < NEGATIVE_REFLECTANCE))
    if share > MAX_NEGATIVE_SHARE and offset < 0 and np.mean(low < NEGATIVE_REFLECTANCE) <= MAX_NEGATIVE_SHARE:
        log.warning("%s: with the %s offset %+g, %.0f%% of the valid land pixels have green or red "
                    "reflectance below %g; assuming the data hold the offset already and reading them "
                    "without it", name, what, offset, 100 * share, NEGATIVE_REFLECTANCE)
        return OffsetCheck(0.0, f"{name}: 0, the {what} offset {offset:+g} dropped ({100 * share:.0f}% of land "
                                f"below {NEGATIVE_REFLECTANCE:g} with it: applied in the data already)")
    if expected and not offset:
        red, nir = sample.red * scale, sample.nir * scale
        with np.errstate(invalid="ignore", divide="ignore"):
            dense = land & ((nir - red) / (nir + red) > 0.5)
        if dense.sum() >= MIN_PIXELS and np.mean(red[dense] < DARK_RED) < MIN_DARK_SHARE:
            dark = float(np.mean(red[dense] < DARK_RED))
            found = (f"its baseline carries an offset of {expected:+g} but none is applied ({what}), and only "
                     f"{100 * dark:.0f}% of its dense vegetation has red reflectance below {DARK_RED:g}")
            if not add_missing:
                log.warning("%s: %s: the offset looks missing from the data; read as they are (--offset %g "
                            "applies it)", name, found, expected)
                return OffsetCheck(offset, f"{said}, kept although the data look to lack the baseline's "
                                           f"{expected:+g} ({100 * dark:.0f}% of dense vegetation with red "
                                           f"below {DARK_RED:g})")
            log.warning("%s: %s; assuming the offset is missing from the data and applying it", name, found)
            return OffsetCheck(expected, f"{name}: {expected:+g}, applied although {what} gave none "
                                         f"({100 * dark:.0f}% of dense vegetation with red below {DARK_RED:g} "
                                         "without it: missing in the data)")
    if share > MAX_NEGATIVE_SHARE:
        log.warning("%s: %.0f%% of the valid land pixels have green or red reflectance below %g with the "
                    "%s offset %+g; kept (dropping it does not explain them)", name, 100 * share, NEGATIVE_REFLECTANCE,
                    what, offset)
    return OffsetCheck(offset, f"{said}, checked ({100 * share:.1f}% of land below {NEGATIVE_REFLECTANCE:g})")


def offset_tag(notes: Iterable[str]) -> dict[str, str]:
    """The ``REFLECTANCE_OFFSET`` tag of a stack: its products' check notes, ``; ``-joined."""
    notes = [n for n in dict.fromkeys(notes) if n]
    return {OFFSET_TAG: "; ".join(notes)} if notes else {}
