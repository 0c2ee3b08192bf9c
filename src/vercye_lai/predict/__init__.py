"""Predict: SL2P products of input stacks, block by block, in bounded memory.

Layering (each module imports only those above it): :mod:`.options` (the options and
the network by sensor) → :mod:`.kernel` (the networks on one block, no I/O) →
:mod:`.phases` (a timer) → :mod:`.lanes` (the worker threads kept across dates; ordered
work on a thread of its own) → :mod:`.overviews` (a COG's overviews, equal to GDAL's, from
its blocks) → :mod:`.cog` (a COG assembled from tiles compressed as its blocks come) →
:mod:`.writer` (one product's file: atomic, tiled or COG) → :mod:`.products` (names, completeness, the
one writer of a date's products) → :mod:`.file` (a stack on threads, a region's dates) →
:mod:`.split` (parts for Dask) ; :mod:`.table` runs the kernel on the rows of a table,
:mod:`._cube_block` on the chunks of an xarray cube (:mod:`vercye_lai.xarray`).
"""

from vercye_lai.predict.file import (
    PredictResult,
    Stopped,
    finishing_dates,
    pipelined,
    predict_dir,
    predict_file,
    stopping,
)
from vercye_lai.predict.kernel import BlockResult, predict_block
from vercye_lai.predict.options import PredictOptions, options_for
from vercye_lai.predict.products import check_model, is_complete, part_path, product_paths
from vercye_lai.predict.split import (
    DatePart,
    PredictUnit,
    assemble_parts,
    date_parts,
    part_key,
    plan_predict,
    predict_windows_to_part,
    stack_windows,
)
from vercye_lai.predict.table import TableOptions, predict_table

__all__ = [
    "BlockResult",
    "DatePart",
    "PredictOptions",
    "PredictResult",
    "PredictUnit",
    "Stopped",
    "TableOptions",
    "assemble_parts",
    "check_model",
    "date_parts",
    "finishing_dates",
    "is_complete",
    "options_for",
    "part_key",
    "part_path",
    "pipelined",
    "plan_predict",
    "predict_block",
    "predict_dir",
    "predict_file",
    "predict_table",
    "predict_windows_to_part",
    "product_paths",
    "stack_windows",
    "stopping",
]
