"""``analyze``: LAI rasters of a region → daily statistics per zone and a max-LAI map.

One pass over the dates: for each date one windowed read of the LAI raster serves every
zone (the zones' labels are rasterised once per grid), statistics come from label sums,
and a running per-pixel maximum is kept on the pixels of the zones only. The series are
then gap-filled and written, one ``_STATS.csv`` and one ``_MAX.tif`` per zone.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from ..errors import ConfigError, InputError
from ..io import TMP_SUFFIX, open_raster
from ..naming import find_rasters
from .geometry import (
    Grid,
    MaskZones,
    PolygonZones,
    Zones,
    read_geometries,
    read_window,
    window_for_bounds,
    zone_ids,
)
from .products import (
    DATE_FORMATS,
    MAX_BAND_CHOICES,
    MAX_BANDS,
    output_stem,
    write_max_tif,
    write_stats_csv,
)
from .stats import STAT_KEYS, ZoneIndex, zone_stats
from .timeseries import (
    ADJUSTMENTS,
    INTERPOLATIONS,
    SMOOTHERS,
    adjust_lai,
    interpolate_gaps,
    smooth_savgol,
)

log = logging.getLogger(__name__)

MODES = ("raster", "poly_agg", "poly_iter")


@dataclass
class ZoneResult:
    """The outputs of one zone (one field, all fields, or the crop mask)."""

    name: str
    csv: Path
    max_tif: Path | None
    n_pixels: int
    n_observed: int
    n_interpolated: int


@dataclass
class AnalysisResult:
    """What :func:`analyze` did.

    Attributes
    ----------
    start, end
        The analysed date range (inclusive).
    n_files
        LAI files found in the range.
    n_overlapping
        Files whose raster meets the geometry.
    zones
        One :class:`ZoneResult` per zone, in feature order.
    """

    start: dt.date
    end: dt.date
    n_files: int
    n_overlapping: int
    zones: list[ZoneResult] = field(default_factory=list)

    @property
    def outputs(self) -> list[Path]:
        return [p for z in self.zones for p in (z.csv, z.max_tif) if p is not None]


def _check_choice(value: str, allowed, what: str) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")


def build_zones(geometry_path: str | Path, mode: str, *, id_column: str | None = "FID",
                all_touched: bool = False) -> Zones:
    """The zones of ``geometry_path`` for ``mode`` (see :func:`analyze`)."""
    _check_choice(mode, MODES, "mode")
    path = Path(geometry_path)
    if mode == "raster":
        return MaskZones(path, path.stem)
    gdf = read_geometries(path)
    names = zone_ids(gdf, id_column, path=path) if mode == "poly_iter" else [path.stem]
    return PolygonZones(gdf, names, path=path, all_touched=all_touched)


class _MaxAccumulator:
    """Running per-pixel max of LAI and adjusted LAI over the zones' pixels.

    Kept on the first grid met (the reference); a date on another grid is resampled onto
    it (nearest) first, so the map has one grid even when dates' lattices differ.
    """

    def __init__(self, grid: Grid, index: ZoneIndex, adjustment: str) -> None:
        self.grid, self.index, self.adjustment = grid, index, adjustment
        self.slices = index.zone_slices()
        self.lai = np.full(len(index.pixels), np.nan)
        # the identity adjustment shares the array: one running max, not two
        self.adj = self.lai if adjustment == "none" else np.full(len(index.pixels), np.nan)

    def add(self, values: np.ndarray, grid: Grid, observed: np.ndarray, *,
            gathered: np.ndarray | None = None) -> None:
        """Fold one date in; ``gathered`` = ``values`` already gathered on this grid."""
        if gathered is None:
            if grid != self.grid:
                moved = np.full(self.grid.shape, np.nan, dtype=np.float32)
                reproject(values, moved, src_transform=grid.transform, src_crs=grid.crs,
                          dst_transform=self.grid.transform, dst_crs=self.grid.crs,
                          resampling=Resampling.nearest, src_nodata=np.nan, dst_nodata=np.nan)
                values = moved
            gathered = self.index.gather(values)
        # observed is per zone (1-based): a too-cloudy date does not enter that zone's map
        v = np.where(observed[self.index.labels], gathered, np.nan)
        lai = np.maximum(v, 0)  # NaN stays NaN
        np.fmax(self.lai, lai, out=self.lai)
        if self.adj is not self.lai:
            np.fmax(self.adj, adjust_lai(lai, self.adjustment), out=self.adj)

    def zone_map(self, k: int, window: Window, which: str) -> np.ndarray:
        """The max map of 1-based zone ``k`` on ``window`` of the reference grid."""
        sl = self.slices[k - 1]
        src = self.lai if which == MAX_BANDS[0] else self.adj
        rows, cols = np.divmod(self.index.pixels[sl], self.grid.width)
        out = np.full((int(window.height), int(window.width)), np.nan, dtype=np.float32)
        out[rows - window.row_off, cols - window.col_off] = src[sl]
        return out


class _Season:
    """Per-day, per-zone statistics, filled date by date, and the running max map.

    Attributes
    ----------
    table
        :data:`~.stats.STAT_KEYS` → ``(days, zones)`` arrays; NaN on gap days (a gap keeps
        its cloud share).
    n_pix
        ``(days, zones)`` valid pixel counts.
    indexes
        The zones' :class:`~.stats.ZoneIndex` of each LAI grid met.
    acc
        The max map (``None`` until a date meets the zones, or when not wanted).
    n_overlap
        Dates whose raster meets the zones.
    """

    def __init__(self, zones: Zones, n_days: int, *, adjustment: str, keep_max: bool,
                 max_cloud_percent: float | None, min_valid_fraction: float) -> None:
        self.zones, self.adjustment, self.keep_max = zones, adjustment, keep_max
        self.max_cloud_percent, self.min_valid_fraction = max_cloud_percent, min_valid_fraction
        self.table = {k: np.full((n_days, zones.count), np.nan) for k in STAT_KEYS}
        self.n_pix = np.zeros((n_days, zones.count), dtype=np.int64)
        self.indexes: dict[Grid, ZoneIndex] = {}
        self.acc: _MaxAccumulator | None = None
        self.n_overlap = 0

    def add(self, i: int, path: Path) -> None:
        """Statistics of day ``i`` from the LAI raster ``path``: one windowed read."""
        with open_raster(path) as ds:
            zg = self.zones.on(ds)
            values = read_window(ds, zg.window)
        if values is None:
            log.debug("%s: does not meet the geometry", path.name)
            self.table["cloud_pct"][i] = 100.0
            return
        self.n_overlap += 1
        index = self.indexes.get(zg.grid)
        if index is None:
            index = self.indexes[zg.grid] = ZoneIndex.from_labels(zg.labels, self.zones.count)
        gathered = index.gather(values)
        st = zone_stats(gathered, index, adjustment=self.adjustment, gathered=True)
        self.n_pix[i] = st["n_pixels"]
        observed = _observed(st, index.total[1:], self.max_cloud_percent,
                             self.min_valid_fraction)
        for k in STAT_KEYS:
            self.table[k][i] = st[k]
            if k != "cloud_pct":  # a gap keeps its cloud share, loses its statistics
                self.table[k][i, ~observed] = np.nan
        if self.keep_max:
            if self.acc is None:
                self.acc = _MaxAccumulator(zg.grid, index, self.adjustment)
            self.acc.add(values, zg.grid, np.concatenate(([False], observed)),
                         gathered=gathered if zg.grid == self.acc.grid else None)


def analyze(
    lai_dir: str | Path,
    outdir: str | Path,
    region: str,
    geometry_path: str | Path,
    *,
    resolution: float = 20,
    mode: str = "poly_iter",
    adjustment: str = "none",
    start: dt.date | None = None,
    end: dt.date | None = None,
    variable: str = "LAI",
    interpolation: str = "akima",
    smooth: str = "none",
    smooth_window: int = 5,
    max_cloud_percent: float | None = None,
    min_valid_fraction: float = 0.0,
    id_column: str | None = "FID",
    all_touched: bool = False,
    date_format: str = "iso",
    max_bands: str = "both",
    progress: Callable[[int, int], None] | None = None,
) -> AnalysisResult:
    """Daily LAI statistics and the max-LAI map of fields or a crop mask.

    Parameters
    ----------
    lai_dir
        Folder of ``{region}_{res}m_{YYYY-MM-DD}_{variable}.tif`` (LAI in m²/m², any CRS;
        NaN and the declared nodata are invalid).
    outdir
        Folder for ``{region}_{geometry}[_{id}]_{start}_{end}_STATS.csv`` and ``_MAX.tif``.
    region
        Region name as in the file names.
    geometry_path
        ``raster`` mode: a crop mask raster (non-zero = crop), any CRS/resolution/extent.
        ``poly_agg``/``poly_iter``: a vector file in any CRS (reprojected to the LAI CRS).
    resolution
        Pixel size (m) in the file names.
    mode
        ``raster``, ``poly_agg`` (all polygons as one zone) or ``poly_iter`` (one zone per
        polygon).
    adjustment
        ``none``, ``wheat`` or ``maize`` (see :func:`~.timeseries.adjust_lai`).
    start, end
        Inclusive date range; default: the first and last date with a file.
    variable
        File-name suffix of the product (``LAI``).
    interpolation
        Gap filling of the mean and adjusted mean: ``akima``, ``makima``, ``linear``, ``none``.
    smooth, smooth_window
        ``savgol`` smooths the observed means (window in observations) before filling.
    max_cloud_percent
        A date whose share of invalid zone pixels exceeds this (%) is a gap.
    min_valid_fraction
        A date whose share of valid zone pixels is below this (0–1) is a gap.
    id_column
        ``poly_iter``: the attribute naming each polygon in the output names (row index if
        absent or not unique).
    all_touched
        Count every pixel a polygon touches (default: pixels whose centre is inside).
    date_format
        ``iso`` (YYYY-MM-DD) or ``dmy`` (dd/mm/YYYY) in the CSV's Date column.
    max_bands
        ``both``, ``estimate``, ``adjusted`` or ``none`` (no MAX.tif).
    progress
        Called as ``progress(done, total)`` after each date.

    Raises
    ------
    NoDataFoundError
        No LAI file in the range.
    InputError
        Start after end, an empty geometry file or all-zero mask, or a geometry that meets
        no LAI raster (or covers no pixel).
    DataIOError
        A geometry or LAI file that cannot be read.

    Notes
    -----
    A CSV row per day. On a gap day (no file, no valid pixel, or rejected by
    ``max_cloud_percent``/``min_valid_fraction``) median and standard deviations are
    empty, the means are interpolated (``interpolated = 1``) when the day lies between two
    observations, and ``n_pixels`` and the cloud share keep what was seen (empty cloud
    share: no file that day). Pixels of the geometry outside a date's raster count as
    cloud/no data. The max map holds, per pixel, the maximum over the observation days of
    its zone, on the grid of the first LAI raster that meets the geometry.
    """
    for value, allowed, what in (
        (adjustment, ADJUSTMENTS, "adjustment"), (interpolation, INTERPOLATIONS, "interpolation"),
        (smooth, SMOOTHERS, "smoothing"), (date_format, DATE_FORMATS, "date format"),
        (max_bands, MAX_BAND_CHOICES, "max-bands choice"), (mode, MODES, "mode"),
    ):
        _check_choice(value, allowed, what)
    if start and end and start > end:
        raise InputError(f"start date {start} is after end date {end}")
    if not 0.0 <= min_valid_fraction <= 1.0:
        raise ConfigError(f"min_valid_fraction must be within 0–1, not {min_valid_fraction}")
    files = find_rasters(lai_dir, region, resolution, suffix=variable, extensions=(".tif",),
                         start=start, end=end)
    start = start or min(files)
    end = end or max(files)
    zones = build_zones(geometry_path, mode, id_column=id_column, all_touched=all_touched)
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    nz = zones.count
    log.info("%s: %d zone(s), %d LAI file(s) over %d days", Path(geometry_path).name, nz,
             len(files), len(days))

    season = _Season(zones, len(days), adjustment=adjustment, keep_max=max_bands != "none",
                     max_cloud_percent=max_cloud_percent, min_valid_fraction=min_valid_fraction)
    for i, day in enumerate(days):
        if (path := files.get(day)) is not None:
            season.add(i, path)
        if progress is not None:
            progress(i + 1, len(days))

    if season.n_overlap == 0:
        raise InputError(
            f"the geometry does not overlap any of the {len(files)} '{region}' LAI raster(s) "
            f"in {lai_dir} between {start} and {end}", path=geometry_path)
    totals = next(iter(season.indexes.values())).total[1:]
    if not totals.any():
        raise InputError("the geometry covers no pixel of the LAI grid (too small? try "
                         "--all-touched)", path=geometry_path)

    outdir = Path(outdir)
    geometry_name = Path(geometry_path).stem
    bands = MAX_BAND_CHOICES[max_bands]
    acc = season.acc
    ref_bounds = zones.zone_bounds_in(acc.grid.crs) if acc is not None else None
    tags = {"REGION": region, "GEOMETRY": geometry_name, "MODE": mode, "START": start.isoformat(),
            "END": end.isoformat(), "ADJUSTMENT": adjustment, "VARIABLE": variable}
    # leftovers of an interrupted run, removed once here rather than once per file
    _remove_stale(outdir, output_stem(region, geometry_name, start, end))

    def write_zone(k: int, name: str) -> ZoneResult:
        stem = output_stem(region, geometry_name, start, end, name if mode == "poly_iter" else None)
        if totals[k] == 0:
            log.warning("zone %s covers no pixel centre of the LAI grid (try --all-touched)", name)
        cols = _fill_series(season.table, season.n_pix, k, interpolation=interpolation,
                            smooth=smooth, smooth_window=smooth_window)
        csv = write_stats_csv(outdir / f"{stem}_STATS.csv", days, cols, date_format=date_format,
                              clean_stale=False)
        tif = None
        if acc is not None and bands and acc.index.total[k + 1] > 0:
            win = window_for_bounds(acc.grid.transform, ref_bounds[k])
            win = win.intersection(Window(0, 0, acc.grid.width, acc.grid.height))
            grid = Grid(window_transform(win, acc.grid.transform), int(win.height),
                        int(win.width), acc.grid.crs)
            tif = write_max_tif(outdir / f"{stem}_MAX.tif", grid,
                                {b: acc.zone_map(k + 1, win, b) for b in bands},
                                tags=dict(tags, ZONE=name), clean_stale=False)
        observed = ~np.isnan(cols["LAI Mean"]) & (cols["interpolated"] == 0)
        return ZoneResult(name, csv, tif, int(totals[k]), int(observed.sum()),
                          int(cols["interpolated"].sum()))

    result = AnalysisResult(start, end, len(files), season.n_overlap)
    # serial on purpose: a thread pool measured slower (the GIL-bound formatting and
    # interpolation dominate the small writes)
    result.zones.extend(write_zone(k, name) for k, name in enumerate(zones.names))
    return result


def _observed(st: dict[str, np.ndarray], total: np.ndarray, max_cloud_percent: float | None,
              min_valid_fraction: float) -> np.ndarray:
    """Which zones count this date as an observation (not a gap)."""
    ok = st["n_pixels"] > 0
    if max_cloud_percent is not None:
        ok &= st["cloud_pct"] <= max_cloud_percent
    if min_valid_fraction > 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            ok &= st["n_pixels"] / total >= min_valid_fraction
    return ok


def _fill_series(table: dict[str, np.ndarray], n_pix: np.ndarray, k: int, *, interpolation: str,
                 smooth: str, smooth_window: int) -> dict[str, np.ndarray]:
    """The CSV columns of zone ``k``: observations, smoothed and gap-filled means."""
    mean, mean_adj = table["mean"][:, k], table["mean_adj"][:, k]
    n_obs = int((~np.isnan(mean)).sum())
    if n_obs < 2 and interpolation != "none":
        log.warning("only %d observation(s) in the range: no interpolation", n_obs)
    if smooth == "savgol":
        mean = smooth_savgol(mean, window=smooth_window)
        mean_adj = smooth_savgol(mean_adj, window=smooth_window)
    mean, filled = interpolate_gaps(mean, method=interpolation)
    mean_adj, _ = interpolate_gaps(mean_adj, method=interpolation)
    return {
        "n_pixels": n_pix[:, k],
        "interpolated": filled.astype(np.int8),
        "LAI Mean": mean,
        "LAI Median": table["median"][:, k],
        "LAI Stddev": table["std"][:, k],
        "LAI Mean Adjusted": mean_adj,
        "LAI Stddev Adjusted": table["std_adj"][:, k],
        "Cloud or Snow Percentage": table["cloud_pct"][:, k],
    }


def _remove_stale(outdir: Path, prefix: str) -> None:
    """Remove hidden temporary files of an interrupted run whose outputs start with ``prefix``."""
    if outdir.is_dir():
        for old in outdir.glob(f".{prefix}*{TMP_SUFFIX}"):
            old.unlink(missing_ok=True)
            log.debug("removed stale temporary file %s", old)
