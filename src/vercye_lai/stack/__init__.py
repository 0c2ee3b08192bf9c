"""The input-stack contract: band order, storage form, the stack writer and its reader.

Every acquisition source (Earth Engine, L2A SAFE, STAC, band files) ends in the same
stack that ``predict`` reads: one raster per region and date, bands in
:data:`S2_BANDS_20M` order (or :data:`S2_BANDS_10M` for the 10 m network), reflectances as
surface reflectance factors and angles as cosines, stored as ``int16`` × 10000 with the
scale (1e-4) declared in the file and ``-32768`` as nodata (:class:`StackWriter`).

The reader takes any stack of that band order: reflectances as 0–1 floats or integers whose
scale/offset the file declares (Earth Engine's exports cannot: integer stacks that declare
nothing are read as ×1e-4, :func:`stack_scaling`), and refuses values that are not physical
once scaled (:func:`check_physical` per block, :class:`NegativeTally` over a stack's blocks).

Layering: ``_contract`` (bands, writer, scaling) below ``_checks`` (the physical checks).
"""

from vercye_lai.stack._checks import (
    COSINE_RANGE,
    DARKEST_MEDIAN,
    MAX_NEGATIVE_SHARE,
    MAX_RED_ABOVE_NIR,
    MIN_TALLY_PIXELS,
    NEGATIVE_REFLECTANCE,
    REFLECTANCE_MEDIAN_RANGE,
    NegativeTally,
    check_physical,
)
from vercye_lai.stack._contract import (
    ANGLE_BANDS,
    EE_INTEGER_SCALE,
    L8_BANDS,
    S2_BANDS_10M,
    S2_BANDS_20M,
    STACK_DTYPE,
    STACK_NODATA,
    STACK_SCALE,
    WINDOW_SIZE,
    StackScaling,
    StackWriter,
    band_array,
    canonical_band,
    check_band_order,
    encode_bands,
    encode_stack,
    invalid_mask,
    open_stack,
    stack_scaling,
    write_stack,
)

__all__ = [
    "ANGLE_BANDS", "COSINE_RANGE", "DARKEST_MEDIAN", "EE_INTEGER_SCALE", "L8_BANDS", "MAX_NEGATIVE_SHARE",
    "MAX_RED_ABOVE_NIR", "MIN_TALLY_PIXELS", "NEGATIVE_REFLECTANCE", "REFLECTANCE_MEDIAN_RANGE", "S2_BANDS_10M",
    "S2_BANDS_20M", "STACK_DTYPE", "STACK_NODATA", "STACK_SCALE", "WINDOW_SIZE", "NegativeTally", "StackScaling",
    "StackWriter", "band_array", "canonical_band", "check_band_order", "check_physical", "encode_bands",
    "encode_stack", "invalid_mask", "open_stack", "stack_scaling", "write_stack",
]
