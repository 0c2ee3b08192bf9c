"""Per-date statistics, gap-filled daily series and max-LAI maps of fields or crop masks.

``analyze`` (in :mod:`.core`) is the entry point; :mod:`.geometry` rasterises the zones
on each LAI grid, :mod:`.stats` computes per-zone statistics from label sums,
:mod:`.timeseries` adjusts and gap-fills, :mod:`.products` writes the CSV and GeoTIFF.
"""

from ..grid import Grid
from .core import AnalysisResult, ZoneResult, analyze, build_zones
from .geometry import largest_grid, reproject_mask
from .options import MODES, AnalysisOptions
from .timeseries import ADJUSTMENTS, INTERPOLATIONS, adjust_lai, interpolate_gaps

__all__ = [
    "ADJUSTMENTS",
    "INTERPOLATIONS",
    "MODES",
    "AnalysisOptions",
    "AnalysisResult",
    "Grid",
    "ZoneResult",
    "adjust_lai",
    "analyze",
    "build_zones",
    "interpolate_gaps",
    "largest_grid",
    "reproject_mask",
]
