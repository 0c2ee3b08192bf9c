"""The analysis outputs: ``_STATS.csv`` and ``_MAX.tif``, written atomically."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio

from vercye_lai.errors import ConfigError, DataIOError, InputError, require
from vercye_lai.io import atomic_output

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StatsColumn:
    """One column of a ``_STATS.csv`` after ``Date``.

    Attributes
    ----------
    key
        Where the values come from: a zone statistic (:data:`~.stats.STAT_KEYS`),
        ``n_pixels``, ``interpolated``, ``outlier`` or ``mean_rejected`` (see
        :func:`~.timeseries.fill_series`); ``{key}_raw`` for an ``Unsmoothed`` column.
    header
        The CSV header.
    type
        ``int`` (written as integers) or ``float`` (8 significant digits, empty for NaN).
    gap_filled
        Interpolated over the gap days (means and medians), or written as observed.
    smoothed
        Smoothed by ``--smooth savgol`` (then an ``… Unsmoothed`` column keeps the values
        before smoothing, as the reference implementation writes them).
    """
    key: str
    header: str
    type: type
    gap_filled: bool = False
    smoothed: bool = False

    def cells(self, values: np.ndarray) -> list[str]:
        """The column's CSV cells."""
        if self.type is str:
            return [str(v) for v in values.tolist()]
        if self.type is int:
            return [str(int(v)) for v in values.tolist()]
        return [_fmt(v) for v in values.tolist()]


#: The columns of a ``_STATS.csv`` after ``Date``, in order: a new statistic is one row
#: here. The reference implementation's columns come first, in its order.
STATS_COLUMNS: tuple[StatsColumn, ...] = (
    StatsColumn("n_pixels", "n_pixels", int),
    StatsColumn("interpolated", "interpolated", int),
    StatsColumn("mean", "LAI Mean", float, gap_filled=True, smoothed=True),
    StatsColumn("median", "LAI Median", float, gap_filled=True, smoothed=True),
    StatsColumn("std", "LAI Stddev", float, smoothed=True),
    StatsColumn("mean_adj", "LAI Mean Adjusted", float, gap_filled=True, smoothed=True),
    StatsColumn("median_adj", "LAI Median Adjusted", float, gap_filled=True, smoothed=True),
    StatsColumn("std_adj", "LAI Stddev Adjusted", float, smoothed=True),
    StatsColumn("cloud_pct", "Cloud or Snow Percentage", float),
)
#: With ``--smooth savgol``: the values before smoothing (gap-filled like their column).
UNSMOOTHED_COLUMNS: tuple[StatsColumn, ...] = tuple(
    StatsColumn(f"{c.key}_raw", f"{c.header} Unsmoothed", float, gap_filled=c.gap_filled)
    for c in STATS_COLUMNS if c.smoothed)
#: When the LAI rasters have ``_uncertainty.tif`` beside them (``predict --uncertainty``).
UNCERTAINTY_COLUMN = StatsColumn("unc", "LAI Uncertainty", float, gap_filled=True)
#: Last, ours: the observations the outlier test rejected (then filled like gaps).
OUTLIER_COLUMNS: tuple[StatsColumn, ...] = (
    StatsColumn("outlier", "outlier", int),
    StatsColumn("mean_rejected", "LAI Mean Rejected", float),
)


#: Last, when the products come from several sensors: the sensor of each observed day.
SENSOR_COLUMN = StatsColumn("sensor", "sensor", str)


def stats_columns(*, smoothed: bool, uncertainty: bool = False, sensors: bool = False) -> tuple[StatsColumn, ...]:
    """The columns after ``Date`` of a ``_STATS.csv``, with or without smoothing,
    uncertainty and the sensor column."""
    return (STATS_COLUMNS + (UNSMOOTHED_COLUMNS if smoothed else ())
            + ((UNCERTAINTY_COLUMN,) if uncertainty else ()) + OUTLIER_COLUMNS
            + ((SENSOR_COLUMN,) if sensors else ()))


#: the columns every reader of a _STATS.csv needs (quicklook, report, export-apsim, validate)
STATS_CORE = ("Date", "interpolated", "LAI Mean")


def read_stats_csv(path: str | Path, need: Sequence[str] = STATS_CORE):
    """An analysis' ``_STATS.csv`` as a DataFrame, its ``Date`` parsed (ISO or dd/mm/YYYY).

    Raises
    ------
    DataIOError
        The file is missing or not a CSV.
    InputError
        A column of ``need`` is missing, or there is no row (naming the file).
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise DataIOError("file does not exist", path=path)
    try:
        df = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - pandas raises several parser error types
        raise DataIOError(f"cannot read as CSV: {exc}", path=path) from exc
    missing = [c for c in dict.fromkeys(["Date", *need]) if c not in df.columns]
    if missing:
        raise InputError(f"not an analysis _STATS.csv: no column {', '.join(map(repr, missing))}", path=path)
    if df.empty:
        raise InputError("the _STATS.csv has no rows", path=path)
    text = df["Date"].astype(str)
    dmy = text.str.contains("/").any()  # --date-format dmy
    try:
        df["Date"] = pd.to_datetime(text, format="%d/%m/%Y" if dmy else "%Y-%m-%d")
    except ValueError as exc:
        raise InputError(f"column 'Date' holds a value that is not a date ({exc})", path=path) from None
    return df


MAX_BANDS = ("estimateLAImax", "adjustedLAImax")
#: ``--max-bands`` choices → band names written.
MAX_BAND_CHOICES: dict[str, tuple[str, ...]] = {
    "both": MAX_BANDS, "estimate": MAX_BANDS[:1], "adjusted": MAX_BANDS[1:], "none": (),
}
DATE_FORMATS = {"iso": "%Y-%m-%d", "dmy": "%d/%m/%Y"}  # dmy: the reference implementation's, for APSIM set-ups


def output_stem(region: str, geometry: str, start: dt.date, end: dt.date,
                zone: str | None = None) -> str:
    """``{region}_{geometry}[_{zone}]_{start}_{end}`` (ISO dates); a geometry named after its
    region (``strickhof_fields``) is not prefixed twice (``strickhof_fields_…``, not
    ``strickhof_strickhof_fields_…``)."""
    mid = f"{geometry}_{zone}" if zone is not None else geometry
    if geometry == region or geometry.startswith(f"{region}_"):
        return f"{mid}_{start.isoformat()}_{end.isoformat()}"
    return f"{region}_{mid}_{start.isoformat()}_{end.isoformat()}"


def _fmt(v: float) -> str:
    """A CSV cell: 8 significant digits, empty for NaN."""
    return "" if v != v else "%.8g" % v  # noqa: PLR0124 - v != v is the fastest NaN test


@functools.lru_cache(maxsize=8)
def _date_strings(dates: tuple[dt.date, ...], fmt: str) -> list[str]:
    """The Date column (every zone of an analysis has the same days: formatted once)."""
    return [d.strftime(fmt) for d in dates]


def write_stats_csv(path: str | Path, dates: Sequence[dt.date], columns: dict[str, np.ndarray],
                    *, date_format: str = "iso", clean_stale: bool = True) -> Path:
    """Write one ``_STATS.csv`` atomically.

    Parameters
    ----------
    path
        Destination.
    dates
        One date per row.
    columns
        Key → array for every column of :func:`stats_columns` (``{key}_raw`` present: the
        smoothed set; ``unc``: with uncertainty); NaN → empty cell.
    date_format
        ``"iso"`` (YYYY-MM-DD) or ``"dmy"`` (dd/mm/YYYY, the reference implementation's).
    clean_stale
        Remove temporary leftovers beside ``path`` first (see :func:`~vercye_lai.io.atomic_output`).
    """
    try:
        fmt = DATE_FORMATS[date_format]
    except KeyError:
        raise ConfigError(f"unknown date format {date_format!r}; choose iso or dmy") from None
    table = stats_columns(smoothed="mean_raw" in columns, uncertainty="unc" in columns,
                          sensors="sensor" in columns)
    cells = [_date_strings(tuple(dates), fmt)]
    cells += [c.cells(columns[c.key]) for c in table]
    buf = io.StringIO()
    buf.write(",".join(["Date", *(c.header for c in table)]) + "\n")
    buf.writelines(",".join(row) + "\n" for row in zip(*cells))
    with atomic_output(path, clean_stale=clean_stale) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return Path(path)


def write_max_tif(path: str | Path, grid, bands: dict[str, np.ndarray], *,
                  tags: dict[str, str] | None = None, clean_stale: bool = True) -> Path:
    """Write a max-LAI GeoTIFF atomically: float32, NaN nodata, one band per entry.

    Parameters
    ----------
    path
        Destination.
    grid
        :class:`~vercye_lai.grid.Grid` of the arrays (the geometry's window
        of the LAI grid, in the LAI CRS).
    bands
        Band description → ``(height, width)`` array (m²/m²), NaN outside the geometry.
    tags
        Dataset tags (region, geometry, dates...) that :mod:`vercye_lai.analysis.quicklook` reads.
    clean_stale
        As in :func:`write_stats_csv`.
    """
    profile = grid.profile(count=len(bands), dtype=np.float32, nodata=np.nan)
    with atomic_output(path, clean_stale=clean_stale) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            # metadata first: GDAL then writes the TIFF directory once
            if tags:
                dst.update_tags(**tags)
            for i, (name, arr) in enumerate(bands.items(), start=1):
                dst.set_band_description(i, name)
                dst.write(arr.astype(np.float32, copy=False), i)
    return Path(path)


def write_all_zones(path: str | Path, csvs: dict[str, Path], fmt: str) -> Path:
    """One long table of every zone's ``_STATS.csv`` (a ``zone`` column first): NetCDF
    (``(row)`` variables, the zone and date as coordinates) or Parquet; atomically."""
    import pandas as pd

    frames = [pd.read_csv(csv).assign(zone=str(zone)) for zone, csv in csvs.items()]
    table = pd.concat(frames, ignore_index=True)
    table = table[["zone", *[c for c in table.columns if c != "zone"]]]
    path = Path(path)
    with atomic_output(path) as tmp:
        if fmt == "parquet":
            require("pyarrow", "parquet")
            table.to_parquet(tmp, index=False)
        else:
            xr = require("xarray", "cube")
            ds = xr.Dataset.from_dataframe(table.rename_axis("row"))
            ds = ds.set_coords(["zone", "Date"])
            for name in ds.data_vars:
                ds[name].attrs["long_name"] = str(name)
            ds.attrs.update({"Conventions": "CF-1.8", "title": "vercye-lai per-zone daily LAI statistics"})
            ds.to_netcdf(tmp, format="NETCDF4")
    return path
