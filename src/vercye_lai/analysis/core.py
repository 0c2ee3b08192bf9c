"""``analyze``: LAI rasters of a region → daily statistics per zone and a max-LAI map.

One pass over the dates: for each date one windowed read of the LAI raster serves every
zone (the zones' labels are rasterised once per grid), statistics come from label sums,
and a running per-pixel maximum is kept on the pixels of the zones only. The series are
then gap-filled and written, one ``_STATS.csv`` and one ``_MAX.tif`` per zone.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from vercye_lai.analysis.geometry import (
    ZoneGrid,
    Zones,
    read_window,
)
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.analysis.plan import AnalysisPlan, build_zones, plan_analysis, plan_zones, sensor_of  # noqa: F401 - also the API
from vercye_lai.analysis.products import (
    MAX_BAND_CHOICES,
    MAX_BANDS,
    STATS_COLUMNS,
    UNCERTAINTY_COLUMN,
    UNSMOOTHED_COLUMNS,
    output_stem,
    write_all_zones,
    write_max_tif,
    write_stats_csv,
)
from vercye_lai.analysis.stats import STAT_KEYS, ZoneIndex, zone_stats
from vercye_lai.analysis.timeseries import (
    adjust_lai,
    find_outliers,
    interpolate_gaps,
    smooth_savgol,
)
from vercye_lai.errors import DataIOError, InputError
from vercye_lai.grid import Grid
from vercye_lai.io import atomic_output, open_raster, remove_stale
from vercye_lai.naming import SENSORS, uncertainty_path

log = logging.getLogger(__name__)



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
        One :class:`ZoneResult` per zone analysed, in feature order.
    skipped
        Zone name → why it has no output.
    """

    start: dt.date
    end: dt.date
    n_files: int
    n_overlapping: int
    zones: list[ZoneResult] = field(default_factory=list)
    #: zones with no output, and why (no raster of the range meets them, too few pixels)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def outputs(self) -> list[Path]:
        return [p for z in self.zones for p in (z.csv, z.max_tif) if p is not None]


class _MaxAccumulator:
    """Running per-pixel max of LAI and adjusted LAI over the zones' pixels.

    Kept on the zones' window of the reference grid (see :class:`AnalysisPlan`); a date on
    another grid is resampled onto it (nearest) first, so the map has one grid even when
    dates' lattices differ.
    """

    def __init__(self, grid: Grid, index: ZoneIndex, adjustment: str,
                 zone_bounds: list[tuple[float, float, float, float]]) -> None:
        self.grid, self.index, self.adjustment = grid, index, adjustment
        self.zone_bounds = zone_bounds  # of each zone, in the grid's CRS: the maps' windows
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

    def fold(self, lai: np.ndarray, adj: np.ndarray | None) -> None:
        """Fold in the running max of another part (same zones, other dates)."""
        np.fmax(self.lai, lai, out=self.lai)
        if self.adj is not self.lai and adj is not None:
            np.fmax(self.adj, adj, out=self.adj)

    def zone_map(self, k: int, window: Window, which: str) -> np.ndarray:
        """The max map of 1-based zone ``k`` on ``window`` of the reference grid."""
        sl = self.slices[k - 1]
        src = self.lai if which == MAX_BANDS[0] else self.adj
        rows, cols = np.divmod(self.index.pixels[sl], self.grid.width)
        out = np.full((int(window.height), int(window.width)), np.nan, dtype=np.float32)
        out[rows - window.row_off, cols - window.col_off] = src[sl]
        return out


def _reference(plan: AnalysisPlan, zs: Zones) -> tuple[ZoneGrid, ZoneIndex, _MaxAccumulator | None]:
    """The zones on the reference grid, their index there, and an empty max map on it
    (``None`` when no map is wanted)."""
    with open_raster(plan.reference) as ds:
        ref = zs.on(ds)
    index = ZoneIndex.from_labels(ref.labels, zs.count)
    acc = None
    if plan.options.max_bands != "none":
        acc = _MaxAccumulator(ref.grid, index, plan.options.adjustment, zs.zone_bounds_in(ref.grid.crs))
    return ref, index, acc


class SeasonPart:
    """Per-day statistics of some zones on some days, and the running max map over them.

    What :func:`analyze_part` returns and :func:`finish_analysis` combines. ``arrays``
    maps names to numpy arrays: ``zones`` (0-based zone numbers), ``days`` (positions in
    the plan's days), ``met`` (per day: the raster meets these zones), ``totals`` (zone
    pixel counts on the reference grid), ``n_pixels`` and ``t_{key}`` for each of
    :data:`~.stats.STAT_KEYS` (``(days, zones)``), and, when a map is kept, ``lai_max``
    and ``adj_max`` (per pixel of the zones on the reference grid; no ``adj_max`` when
    the adjustment is the identity). It may be an open ``.npz`` (see :meth:`save`), read
    lazily.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.arrays = arrays
        #: the max map itself when the part was made in this process (not saved)
        self.acc: _MaxAccumulator | None = None

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def get(self, key: str) -> np.ndarray | None:
        return self.arrays[key] if key in self.arrays else None

    @property
    def zones(self) -> tuple[int, ...]:
        return tuple(self["zones"].tolist())

    def save(self, path: str | Path) -> Path:
        """Write the part as an uncompressed ``.npz``, atomically.

        The max maps are stored as float32, the type of the MAX.tif: rounding is monotonic,
        so the max of rounded values is the rounded max and the maps stay exact.
        """
        arrays = {k: (v.astype(np.float32) if k in ("lai_max", "adj_max") else v)
                  for k, v in self.arrays.items()}
        with atomic_output(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> SeasonPart:
        """Open a saved part (arrays are read when first used)."""
        try:
            return cls(np.load(path))
        except (OSError, ValueError) as exc:
            raise DataIOError(f"cannot read analysis part: {exc}", path=path) from exc


def analyze_part(
    plan: AnalysisPlan,
    zones: Sequence[int] | None = None,
    days: Sequence[int] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> SeasonPart:
    """The statistics of zones ``zones`` on days ``days`` of ``plan`` (default: all).

    One windowed read per date serves all these zones. A zone's statistics on a date do not
    depend on which other zones or dates share its part, and the max maps of parts over
    the same zones fold together exactly, so any split gives the outputs of one part.
    ``progress(done, total)`` is called after each day.
    """
    zs = plan_zones(plan, zones)
    all_days = plan.days
    picked = list(range(len(all_days)) if days is None else days)
    season = _Season(zs, len(picked), adjustment=plan.options.adjustment,
                     max_cloud_percent=plan.options.max_cloud_percent,
                     min_valid_fraction=plan.options.min_valid_fraction)
    ref, ref_index, season.acc = _reference(plan, zs)
    season.indexes[ref.grid] = ref_index
    # a day seen by several sensors: one read per file, combined per zone (see _Season.add)
    paths = [(j, path) for j, i in enumerate(picked) for path in plan.day_files(all_days[i])]
    reads = _read_ahead(season, [path for _, path in paths])
    done = 0
    for j, path in paths:
        season.add(j, path, *next(reads), sensor=SENSORS.index(sensor_of(path)))
        if progress is not None and j + 1 > done:
            done = j + 1
            progress(done, len(picked))
    if progress is not None and done < len(picked):
        progress(len(picked), len(picked))
    arrays = {
        "zones": np.asarray(range(len(plan.names)) if zones is None else zones, dtype=np.int64),
        "days": np.asarray(picked, dtype=np.int64),
        "met": season.met,
        "totals": ref_index.total[1:],
        "covered": season.covered,
        "n_pixels": season.n_pix,
        "sensor": season.sensor,
        **{f"t_{k}": v for k, v in season.table.items()},
    }
    if season.acc is not None:
        arrays["lai_max"] = season.acc.lai
        if season.acc.adj is not season.acc.lai:
            arrays["adj_max"] = season.acc.adj
    part = SeasonPart(arrays)
    part.acc = season.acc
    return part


class _Season:
    """Per-day, per-zone statistics of one part, filled date by date, and its max map.

    Attributes
    ----------
    table
        :data:`~.stats.STAT_KEYS` → ``(days, zones)`` arrays; NaN on gap days (a gap keeps
        its cloud share).
    n_pix
        ``(days, zones)`` valid pixel counts.
    met
        ``(days,)``: the day's raster meets the zones.
    indexes
        The zones' :class:`~.stats.ZoneIndex` of each LAI grid met.
    acc
        The max map on the reference grid (``None`` when not wanted).
    """

    def __init__(self, zones: Zones, n_days: int, *, adjustment: str,
                 max_cloud_percent: float | None, min_valid_fraction: float) -> None:
        self.zones, self.adjustment = zones, adjustment
        self.max_cloud_percent, self.min_valid_fraction = max_cloud_percent, min_valid_fraction
        self.table = {k: np.full((n_days, zones.count), np.nan) for k in STAT_KEYS}
        self.n_pix = np.zeros((n_days, zones.count), dtype=np.int64)
        #: per day and zone: the index in SENSORS of the observation kept (-1: none), and
        #: its valid share (a second sensor the same day replaces it only where it sees more)
        self.sensor = np.full((n_days, zones.count), -1, dtype=np.int8)
        self._share = np.full((n_days, zones.count), -1.0)
        self.met = np.zeros(n_days, dtype=bool)
        self.covered = np.zeros(zones.count, dtype=bool)  # per zone: some raster of the range meets it
        self._meets: dict[tuple, np.ndarray] = {}
        self.indexes: dict[Grid, ZoneIndex] = {}
        self.acc: _MaxAccumulator | None = None

    def read(self, path: Path) -> tuple[ZoneGrid, np.ndarray | None, np.ndarray | None]:
        """The zones on the grid of ``path``, its one windowed read over them, and the same
        window of its uncertainty raster (``None`` when there is none)."""
        with open_raster(path) as ds:
            zg = self.zones.on(ds)
            values = read_window(ds, zg.window)
            grid = Grid.of(ds)
        if grid.key not in self._meets:
            self._meets[grid.key] = self.zones.meets(grid)
        self.covered |= self._meets[grid.key]
        unc = None
        if values is not None and (u := uncertainty_path(path)).exists():
            with open_raster(u) as ds:
                if Grid.of(ds) != grid:
                    raise InputError(f"the uncertainty raster is not on the grid of {path.name}", path=u)
                unc = read_window(ds, zg.window)
        return zg, values, unc

    def add(self, i: int, path: Path, zg: ZoneGrid, values: np.ndarray | None,
            unc: np.ndarray | None = None, *, sensor: int = 0) -> None:
        """Statistics of day ``i`` from :meth:`read` of the LAI raster ``path`` (of sensor
        number ``sensor``). A second file of the day (another sensor) replaces the first
        one's statistics of a zone only where it has the larger valid share."""
        if values is None:
            log.debug("%s: does not meet the geometry", path.name)
            if not self.met[i]:
                self.table["cloud_pct"][i] = 100.0
            return
        index = self.indexes.get(zg.grid)
        if index is None:
            index = self.indexes[zg.grid] = ZoneIndex.from_labels(zg.labels, self.zones.count)
        gathered = index.gather(values)
        st = zone_stats(gathered, index, adjustment=self.adjustment, gathered=True,
                        uncertainty=None if unc is None else index.gather(unc))
        total = index.total[1:]
        observed = _observed(st, total, self.max_cloud_percent, self.min_valid_fraction)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, st["n_pixels"] / np.maximum(total, 1), 0.0)
        take = share > self._share[i] if self.met[i] else np.ones(self.zones.count, dtype=bool)
        self.met[i] = True
        self._share[i, take] = share[take]
        self.sensor[i, take] = np.where(observed, sensor, -1)[take]
        # a rejected day aggregates nothing; its cloud share tells why
        self.n_pix[i, take] = np.where(observed, st["n_pixels"], 0)[take]
        for k in STAT_KEYS:
            v = st[k] if k == "cloud_pct" else np.where(observed, st[k], np.nan)
            self.table[k][i, take] = v[take]  # a gap keeps its cloud share, loses its statistics
        if self.acc is not None:
            self.acc.add(values, zg.grid, np.concatenate(([False], observed)),
                         gathered=gathered if zg.grid == self.acc.grid else None)


def _read_ahead(season: _Season, paths: Sequence[Path], *, ahead: int = 2) -> Iterator[tuple]:
    """:meth:`_Season.read` of each path, in order, the next ones read in a thread meanwhile.

    Decoding a date's window (GDAL, without the GIL) overlaps the statistics of the
    previous one; at most ``ahead`` windows wait in memory.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="analysis-read") as pool:
        queue: deque = deque()
        todo = iter(paths)
        for path in itertools.islice(todo, ahead):
            queue.append(pool.submit(season.read, path))
        while queue:
            fut = queue.popleft()
            if (path := next(todo, None)) is not None:
                queue.append(pool.submit(season.read, path))
            yield fut.result()


def finish_analysis(plan: AnalysisPlan, parts: Sequence[SeasonPart]) -> AnalysisResult:
    """Combine the parts of ``plan`` and write one ``_STATS.csv`` and ``_MAX.tif`` per zone.

    The parts must cover every zone once and, for each chunk of zones, every day that has
    a file; otherwise nothing is written and :class:`~vercye_lai.errors.DataIOError` names
    what is missing.
    """
    days = plan.days
    chunks: dict[tuple[int, ...], list[SeasonPart]] = {}
    for p in parts:
        chunks.setdefault(p.zones, []).append(p)
    covered = sorted(z for chunk in chunks for z in chunk)
    if covered != list(range(len(plan.names))):
        raise DataIOError(f"the {len(parts)} analysis part(s) do not cover each of the "
                          f"{len(plan.names)} zone(s) once", path=plan.outdir)
    want = set(plan.file_days)
    met = np.zeros(len(days), dtype=bool)
    totals = np.zeros(len(plan.names), dtype=np.int64)
    covered = np.zeros(len(plan.names), dtype=bool)
    for chunk, ps in chunks.items():
        seen = {int(d) for p in ps for d in p["days"]}
        if not want <= seen:
            raise DataIOError(f"analysis parts of zones {chunk[0]}…{chunk[-1]} miss "
                              f"{len(want - seen)} date(s)", path=plan.outdir)
        for p in ps:
            met[p["days"]] |= p["met"]
            covered[list(chunk)] |= p["covered"]
        totals[list(chunk)] = ps[0]["totals"]
    if not totals.any():
        raise InputError("the geometry covers no pixel of the LAI grid (too small? try "
                         "--all-touched)", path=plan.geometry_path)

    geometry_name = plan.geometry_path.stem
    tags = {"REGION": plan.region, "GEOMETRY": geometry_name, "MODE": plan.options.mode,
            "START": plan.start.isoformat(), "END": plan.end.isoformat(),
            "ADJUSTMENT": plan.options.adjustment, "VARIABLE": plan.options.variable}
    # leftovers of an interrupted run, removed once here rather than once per file
    # (any zone, any date range of this region and geometry: only files whose writer is gone)
    remove_stale(plan.outdir, f"{plan.region}_{geometry_name}_")
    skipped = _skipped_zones(plan, covered, totals)
    if len(skipped) == len(plan.names):
        raise InputError(f"no zone can be analysed: {next(iter(skipped.values()))}", path=plan.geometry_path)
    results: dict[int, ZoneResult] = {}
    # zones written one by one on purpose: a thread pool measured slower (the GIL-bound
    # formatting and interpolation dominate the small writes)
    for chunk, ps in chunks.items():
        table = {k: np.full((len(days), len(chunk)), np.nan) for k in STAT_KEYS}
        n_pix = np.zeros((len(days), len(chunk)), dtype=np.int64)
        table["sensor"] = np.full((len(days), len(chunk)), -1, dtype=np.int8)
        for p in ps:
            for k in STAT_KEYS:
                table[k][p["days"]] = p[f"t_{k}"]
            n_pix[p["days"]] = p["n_pixels"]
            if p.get("sensor") is not None:
                table["sensor"][p["days"]] = p["sensor"]
        acc = _chunk_max(plan, chunk, ps)
        for k_local, z in enumerate(chunk):
            if plan.names[z] not in skipped:
                results[z] = _write_zone(plan, z, k_local, table, n_pix, acc, int(totals[z]), tags)
    if plan.options.table_format != "csv":
        stem = output_stem(plan.region, geometry_name, plan.start, plan.end)
        ext = {"netcdf": ".nc", "parquet": ".parquet"}[plan.options.table_format]
        write_all_zones(plan.outdir / f"{stem}_ALL{ext}", {results[z].name: results[z].csv for z in sorted(results)},
                        plan.options.table_format)
    return AnalysisResult(plan.start, plan.end, len(plan.files), int(met.sum()),
                          [results[z] for z in sorted(results)],
                          {plan.names[z]: skipped[plan.names[z]] for z in range(len(plan.names))
                           if plan.names[z] in skipped})


def _skipped_zones(plan: AnalysisPlan, covered: np.ndarray, totals: np.ndarray) -> dict[str, str]:
    """The zones to write no output for, and why, each kind warned once with their names."""
    out: dict[str, str] = {}
    kinds = [(~covered, "meets no LAI raster of the range (wrong place, CRS or region?)")]
    n_min = plan.options.min_zone_pixels
    if n_min:
        kinds.append((covered & (totals < n_min), f"has fewer than --min-zone-pixels {n_min} pixels "
                                                  "on the LAI grid"))
    for mask, why in kinds:
        names = [plan.names[z] for z in np.flatnonzero(mask)]
        for name in names:
            out.setdefault(name, why)
        if names:
            shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            log.warning("%s: %d zone(s) %s, skipped: %s", plan.geometry_path.name, len(names), why, shown)
    return out


def _chunk_max(plan: AnalysisPlan, chunk: tuple[int, ...],
               parts: Sequence[SeasonPart]) -> _MaxAccumulator | None:
    """The max map of a chunk of zones: its parts' running maxima folded together."""
    if plan.options.max_bands == "none":
        return None
    if len(parts) == 1 and parts[0].acc is not None:  # made here: no need to rasterise again
        return parts[0].acc
    _, _, acc = _reference(plan, plan_zones(plan, chunk))
    for p in parts:
        acc.fold(p["lai_max"], p.get("adj_max"))
    return acc


def _write_zone(plan: AnalysisPlan, z: int, k: int, table: dict[str, np.ndarray],
                n_pix: np.ndarray, acc: _MaxAccumulator | None, total: int,
                tags: dict[str, str]) -> ZoneResult:
    """Write the CSV and max map of zone ``z`` (column ``k`` of its chunk's tables)."""
    name = plan.names[z]
    stem = output_stem(plan.region, plan.geometry_path.stem, plan.start, plan.end,
                       name if plan.options.mode == "poly_iter" else None)
    if total == 0:
        log.warning("zone %s covers no pixel centre of the LAI grid (try --all-touched)", name)
    cols = _fill_series(table, n_pix, k, options=plan.options, uncertainty=plan.has_uncertainty,
                        sensors=plan.multi_sensor)
    csv = write_stats_csv(plan.outdir / f"{stem}_STATS.csv", plan.days, cols,
                          date_format=plan.options.date_format, clean_stale=False)
    tif = None
    bands = MAX_BAND_CHOICES[plan.options.max_bands]
    if acc is not None and bands and acc.index.total[k + 1] > 0:
        win = acc.grid.window_for(acc.zone_bounds[k]).intersection(acc.grid.full_window)
        tif = write_max_tif(plan.outdir / f"{stem}_MAX.tif", acc.grid.window(win),
                            {b: acc.zone_map(k + 1, win, b) for b in bands},
                            tags=dict(tags, ZONE=name), clean_stale=False)
    observed = ~np.isnan(cols["mean"]) & (cols["interpolated"] == 0)
    return ZoneResult(name, csv, tif, total, int(observed.sum()), int(cols["interpolated"].sum()))


def analyze(
    lai_dir: str | Path,
    outdir: str | Path,
    region: str,
    geometry_path: str | Path,
    *,
    resolution: float = 20,
    start: dt.date | None = None,
    end: dt.date | None = None,
    options: AnalysisOptions = AnalysisOptions(),
    progress: Callable[[int, int], None] | None = None,
) -> AnalysisResult:
    """Daily LAI statistics and the max-LAI map of fields or a crop mask.

    Parameters
    ----------
    lai_dir, outdir, region, geometry_path, resolution, start, end, options
        As :func:`plan_analysis`: the LAI folder, the output folder, the region name,
        the fields or crop mask, the pixel size (m) in the file names, the inclusive date
        range and the :class:`.options.AnalysisOptions`.
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

    This runs the analysis as one part in this process; :func:`plan_analysis`,
    :func:`analyze_part` and :func:`finish_analysis` split it into parts over chunks of
    zones and dates (how ``vercye-lai run`` spreads it over threads or Dask workers),
    with the same outputs.
    """
    plan = plan_analysis(lai_dir, outdir, region, geometry_path, resolution=resolution,
                         start=start, end=end, options=options)
    log.info("%s: %d zone(s), %d LAI file(s) over %d days", plan.geometry_path.name,
             len(plan.names), len(plan.files), len(plan.days))
    result = finish_analysis(plan, [analyze_part(plan, progress=progress)])
    # the same record a run writes: validate --series, export-apsim and report read it
    from vercye_lai.analysis.manifest import fingerprint, write_manifest

    fp = fingerprint(dict(enumerate(plan.all_files)), plan.geometry_path, start=plan.start, end=plan.end,
                     options=plan.options)
    write_manifest(plan.outdir, fp, result)
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


def _fill_series(table: dict[str, np.ndarray], n_pix: np.ndarray, k: int, *,
                 options: AnalysisOptions, uncertainty: bool = False,
                 sensors: bool = False) -> dict[str, np.ndarray]:
    """The CSV columns (:func:`~.products.stats_columns`, by key) of zone ``k``: outliers
    rejected, then the smoothed columns smoothed, then the gap-filled ones interpolated."""
    o = options
    series = {key: table[key][:, k].copy() for key in STAT_KEYS}
    n = n_pix[:, k].copy()
    rejected = find_outliers(series["mean"], kind=o.outliers)
    series["mean_rejected"] = np.where(rejected, series["mean"], np.nan)
    smoothed = [c.key for c in STATS_COLUMNS if c.smoothed]
    for key in (*smoothed, "unc"):  # a rejected observation becomes a gap
        series[key][rejected] = np.nan
    n[rejected] = 0  # nothing of that day is aggregated
    n_obs = int((~np.isnan(series["mean"])).sum())
    if n_obs < 2 and o.interpolation != "none":
        log.warning("only %d observation(s) in the range: no interpolation", n_obs)
    columns = STATS_COLUMNS + ((UNCERTAINTY_COLUMN,) if uncertainty else ())
    if not uncertainty:
        del series["unc"]
    if o.smooth == "savgol":
        columns += UNSMOOTHED_COLUMNS
        for key in smoothed:
            series[f"{key}_raw"] = series[key].copy()
            series[key] = smooth_savgol(series[key], window=o.savgol_window, polyorder=o.savgol_order)
    filled = {}
    for c in columns:
        if c.gap_filled:
            series[c.key], filled[c.key] = interpolate_gaps(series[c.key], method=o.interpolation)
    series["interpolated"] = filled["mean"].astype(np.int8)
    series["outlier"] = rejected.astype(np.int8)
    series["n_pixels"] = n
    if sensors:  # the sensor of each observed day ('' on gap, outlier and rejected days)
        code = table["sensor"][:, k]
        names = np.array([*(x.lower() for x in SENSORS), ""], dtype=object)
        series["sensor"] = names[np.where((code >= 0) & (n > 0), code, len(SENSORS))]
    return series
