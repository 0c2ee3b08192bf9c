"""Sentinel-2 L2A Scene Classification (SCL) masking.

SCL classes (ESA L2A product specification): 0 no data, 1 saturated/defective,
2 dark area pixels, 3 cloud shadows, 4 vegetation, 5 not vegetated, 6 water,
7 unclassified, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus,
11 snow/ice.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vercye_lai.options import setting

#: Valid land: vegetation, not vegetated (the pixels the offset check looks at).
LAND_CLASSES: tuple[int, ...] = (4, 5)
#: Classes masked by default: no data, defective, cloud shadow, clouds, cirrus, snow.
DEFAULT_SCL_MASK: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)


def scl_mask_setting():
    """The ``scl_mask`` field every Sentinel-2 source's options share (one help text)."""
    return setting(
        DEFAULT_SCL_MASK, sep=",", min=0, max=11,
        help="SCL classes masked to nodata (comma-separated; '' masks none): 0 no data, "
        "1 defective, 3 cloud shadow, 8/9 cloud, 10 cirrus, 11 snow.")


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
