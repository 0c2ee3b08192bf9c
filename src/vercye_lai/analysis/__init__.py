"""Per-date statistics, gap-filled daily series and max-LAI maps of fields or crop masks.

``analyze`` (in :mod:`.core`) is the entry point; :mod:`.fields` reads the fields and names
the zones, :mod:`.geometry` rasterises them on each LAI grid, :mod:`.stats` computes per-zone statistics from label sums,
:mod:`.timeseries` adjusts and gap-fills, :mod:`.products` writes the CSV and GeoTIFF.
"""

from vercye_lai.analysis.finish import AnalysisResult, ZoneResult
from vercye_lai.analysis.geometry import largest_grid, reproject_mask
from vercye_lai.analysis.options import MODES, AnalysisOptions
from vercye_lai.analysis.plan import build_zones
from vercye_lai.analysis.tasks import analyze
from vercye_lai.analysis.timeseries import ADJUSTMENTS, INTERPOLATIONS, adjust_lai, interpolate_gaps
from vercye_lai.grid import Grid

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
