"""The options of an analysis: one type for ``analyze``, ``vercye-lai analyze`` and the run
config's ``[[analyses]]`` entries (see :mod:`vercye_lai.options`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vercye_lai.analysis.products import DATE_FORMATS, MAX_BAND_CHOICES
from vercye_lai.analysis.timeseries import ADJUSTMENTS, INTERPOLATIONS, OUTLIERS, SMOOTHERS
from vercye_lai.errors import ConfigError
from vercye_lai.options import Options, setting

MODES = ("raster", "poly_agg", "poly_iter")


@dataclass(frozen=True)
class AnalysisOptions(Options):
    """How the per-day statistics and max-LAI map of an analysis are made.

    The field order is the order of the options in ``MANIFEST.json`` fingerprints.
    """

    mode: str = setting(
        "poly_iter", choices=MODES,
        help="raster: the geometry is a crop mask (non-zero = crop); poly_agg: all polygons of a "
        "vector file together; poly_iter: each polygon alone.")
    adjustment: str = setting(
        "none", choices=tuple(ADJUSTMENTS), or_file=".json",
        help="Crop calibration per pixel: wheat 0.0482L²+0.9161L+0.0026, maize -0.078L²+1.4L-0.18, "
             "or a poly1/poly2 calibration file of `vercye-lai calibrate`.")
    interpolation: str = setting(
        "akima", choices=INTERPOLATIONS,
        help="Gap filling of the means and medians between observations (never "
        "extrapolated; clipped at 0).")
    smooth: str = setting(
        "none", choices=SMOOTHERS,
        help="Savitzky-Golay smoothing of the observed means, medians and standard deviations "
        "before interpolation (clipped at 0; the values before smoothing go to the "
        "'... Unsmoothed' columns), as the reference implementation does.")
    savgol_window: int = setting(
        9, min=3, aliases=("--smooth-window",),
        help="Savitzky-Golay window, in observations (odd; shrunk to the observations, never "
        "below order + 2).")
    savgol_order: int = setting(2, min=1, help="Savitzky-Golay polynomial order.")
    outliers: str = setting(
        "dips", choices=OUTLIERS,
        help="Reject observations a missed cloud or shadow made before smoothing and gap "
        "filling: dips = one or two observations below both neighbours by more than "
        "max(0.5, 20 %) LAI; marked in the 'outlier' column and filled like gaps.")
    max_cloud_percent: float | None = setting(
        None, min=0, max=100, default_help="no limit",
        help="Treat a date as a gap when more than this share (%) of the geometry's pixels is "
        "nodata.")
    min_valid_fraction: float = setting(
        0.0, min=0, max=1,
        help="Treat a date as a gap when less than this fraction (0-1) of the geometry's pixels "
        "is valid.")
    id_column: str | None = setting(
        "FID", help="poly_iter: attribute that names each polygon in the output names (the row "
        "index if absent or not unique).")
    min_zone_pixels: int = setting(
        0, min=0, help="Skip (and report) a zone with fewer pixels than this on the LAI grid "
        "(in raster mode: the whole crop mask).")
    layer: str | None = setting(
        None, default_help="the only layer",
        help="Layer of a vector file with several (a GeoPackage); needed when it has more than one.")
    all_touched: bool = setting(
        False, help="Count every pixel a polygon touches (default: pixels whose centre is inside).")
    date_format: str = setting(
        "iso", choices=tuple(DATE_FORMATS),
        help="Date column of the CSV: iso YYYY-MM-DD, or dmy dd/mm/YYYY (the reference "
        "implementation's, for existing APSIM set-ups).")
    max_bands: str = setting(
        "both", choices=tuple(MAX_BAND_CHOICES),
        help="Bands of _MAX.tif: estimateLAImax and/or adjustedLAImax; none writes no map.")
    variable: str = setting(
        "LAI", help="Product suffix in the file names ({region}_{res}m_{date}_{variable}.tif).")
    table_format: str = setting(
        "csv", cli="--format", choices=("csv", "netcdf", "parquet"),
        help="Besides the per-zone CSVs, one table of all zones x days (long form, with the zone id): "
             "netcdf ({..}_ALL.nc) or parquet ({..}_ALL.parquet, needs pyarrow); csv: none.")
    sensors: tuple[str, ...] = setting(
        ("s2", "s30", "l30", "l8", "l9"), sep=",", choices=("s2", "s30", "l30", "l8", "l9"),
        case_sensitive=False,
        help="Sensors whose products make the series (Sentinel-2 at --res, the others at theirs). A day "
             "seen by several takes, per zone, the one with the larger valid share (the first listed "
             "on a tie); the CSV's sensor column says which.")

    def __post_init__(self) -> None:
        self._type_fields()
        # sensor names are case-insensitive (s2, L30 ...), each counted once
        object.__setattr__(self, "sensors", tuple(dict.fromkeys(str(x).lower() for x in self.sensors)))
        super().__post_init__()
        if self.savgol_window % 2 == 0:  # it was shrunk to the odd one below, silently
            raise ConfigError(f"savgol_window: must be odd (a window centred on an observation), not {self.savgol_window}")

    @property
    def adjustment_file(self) -> Path | None:
        """The calibration file the adjustment names (``None``: a named adjustment)."""
        return Path(self.adjustment) if self.adjustment.lower().endswith(".json") else None
