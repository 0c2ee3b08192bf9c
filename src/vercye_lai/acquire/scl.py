"""Sentinel-2 L2A Scene Classification (SCL) masking.

SCL classes (ESA L2A product specification): 0 no data, 1 saturated/defective,
2 dark area pixels, 3 cloud shadows, 4 vegetation, 5 not vegetated, 6 water,
7 unclassified, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus,
11 snow/ice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from rasterio.windows import Window

from vercye_lai.grid import Grid
from vercye_lai.options import setting

#: Valid land: vegetation, not vegetated (the pixels the offset check looks at).
LAND_CLASSES: tuple[int, ...] = (4, 5)
#: Classes masked by default: no data, defective, cloud shadow, clouds, cirrus, snow.
DEFAULT_SCL_MASK: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)


#: Clouds and their shadows (shadow, medium and high probability, cirrus): the classes
#: ``--cloud-buffer`` dilates; their thin edges are what SCL misses.
CLOUD_CLASSES: tuple[int, ...] = (3, 8, 9, 10)
#: Default ``--cloud-buffer`` (pixels of the stack's grid): chosen from the Strickhof season,
#: see ``benchmarks/eval_cloud_buffer.py`` and the acquisition guide.
DEFAULT_CLOUD_BUFFER = 0


def cloud_buffer_setting():
    """The ``cloud_buffer`` field every source's options share (one help text)."""
    return setting(
        DEFAULT_CLOUD_BUFFER, min=0, max=50, metavar="PX",
        help="Also mask this many pixels (of the stack's grid) around clouds and their shadows "
        "(SCL 3, 8, 9, 10; the cloud and shadow bits of Fmask and QA_PIXEL; Earth Engine's mask): "
        "their thin edges, which the masks miss.")


def scl_mask_text(classes: Iterable[int]) -> str:
    """The SCL classes masked, for a stack's tag: ``"none"`` when none is (an empty tag is no
    tag in GeoTIFF: the stack then did not say it was left unmasked)."""
    return ",".join(map(str, classes)) or "none"


def cloud_buffer_tag(px: int) -> dict[str, str]:
    """The stack tag that records the cloud buffer (``CLOUD_BUFFER``: pixels of the stack)."""
    return {"CLOUD_BUFFER": str(int(px))}


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` grown by ``px`` pixels in every direction, diagonals included (a square of
    side 2·px + 1); ``px`` ≤ 0 returns it as it is."""
    if px <= 0:
        return mask
    from scipy import ndimage

    return ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=px)


def masked_pixels(
    grid: Grid,
    fraction: Callable[[Grid, Callable[[np.ndarray], np.ndarray]], np.ndarray],
    invalid: Callable[[np.ndarray], np.ndarray],
    cloud: Callable[[np.ndarray], np.ndarray],
    buffer: int,
) -> np.ndarray:
    """Where the pixels of ``grid`` are masked: any part of the pixel invalid, or within
    ``buffer`` pixels of a cloud or shadow — the one place every source's cloud buffer is
    made.

    Parameters
    ----------
    grid
        The output grid, or a window of it.
    fraction
        ``fraction(g, prepare)``: the source's mask image (SCL, Fmask, QA_PIXEL) turned into
        0/1 by ``prepare`` and brought onto ``g`` (a share when coarsening; NaN: no data).
    invalid, cloud
        Mask values → True where the pixel is masked / is a cloud or shadow.
    buffer
        Pixels of ``grid``; the cloud mask is made on ``grid`` grown by as many pixels on
        every side before it is dilated, so a window's result equals the whole grid's.
    """
    masked = ~(fraction(grid, lambda v: invalid(v).astype(np.float32)) == 0)
    if buffer > 0:
        h, w = grid.shape
        wide = grid.window(Window(-buffer, -buffer, w + 2 * buffer, h + 2 * buffer))
        near = fraction(wide, lambda v: cloud(v).astype(np.float32)) > 0  # NaN: no cloud
        masked |= dilate(near, buffer)[buffer:-buffer, buffer:-buffer]
    return masked


def scl_masked(grid: Grid, fraction: Callable[[Grid, Callable[[np.ndarray], np.ndarray]], np.ndarray],
               classes: Iterable[int], buffer: int) -> np.ndarray:
    """:func:`masked_pixels` of an SCL image: ``classes`` masked, the cloud and shadow classes
    among them (:data:`CLOUD_CLASSES`) grown by ``buffer`` pixels."""
    classes = tuple(classes)
    return masked_pixels(grid, fraction, lambda v: scl_invalid(v, classes), lambda v: scl_cloud(v, classes), buffer)


def scl_mask_setting():
    """The ``scl_mask`` field every Sentinel-2 source's options share (one help text)."""
    return setting(
        DEFAULT_SCL_MASK, sep=",", min=0, max=11,
        help="SCL classes masked to nodata (comma-separated; '' masks none): 0 no data, "
        "1 defective, 3 cloud shadow, 8/9 cloud, 10 cirrus, 11 snow.")


def scl_cloud(scl: np.ndarray, classes: Iterable[int] = DEFAULT_SCL_MASK) -> np.ndarray:
    """True where a pixel's SCL class is a cloud or shadow (:data:`CLOUD_CLASSES`) among
    the masked ``classes``; NaN and fill values are not."""
    return np.isin(scl, [c for c in CLOUD_CLASSES if c in set(classes)])


def scl_invalid(scl: np.ndarray, classes: Iterable[int] = DEFAULT_SCL_MASK) -> np.ndarray:
    """Boolean mask, True where a pixel's SCL class is one of ``classes``.

    Parameters
    ----------
    scl
        SCL values (any shape, any numeric dtype; float values such as resampled SCL
        are rounded to the nearest class first). NaN and values that are no SCL class
        (outside 0–11, e.g. a fill value such as 255 or 1e20) count as invalid.
    classes
        SCL classes to mask.
    """
    scl = np.asarray(scl)
    if np.issubdtype(scl.dtype, np.floating):
        finite = np.isfinite(scl)
        scl = np.round(np.where(finite, scl, -1))
    return np.isin(scl, list(classes)) | (scl < 0) | (scl > 11)
