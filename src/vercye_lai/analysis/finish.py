"""Finishing an analysis: its parts combined into gap-filled daily series, one ``_STATS.csv``
and one ``_MAX.tif`` per zone (:func:`finish_analysis`)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vercye_lai.analysis.fields import zone_stem
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.analysis.plan import AnalysisPlan, build_zones, plan_analysis, plan_zones, sensor_of  # noqa: F401 - also the API
from vercye_lai.analysis.products import (
    MAX_BAND_CHOICES,
    STATS_COLUMNS,
    UNCERTAINTY_COLUMN,
    UNSMOOTHED_COLUMNS,
    output_stem,
    write_all_zones,
    write_max_tif,
    write_stats_csv,
)
from vercye_lai.analysis.season import MaxAccumulator, SeasonPart, analyze_part, reference
from vercye_lai.analysis.stats import STAT_KEYS
from vercye_lai.analysis.timeseries import (
    find_outliers,
    interpolate_gaps,
    smooth_savgol,
)
from vercye_lai.errors import DataIOError, InputError
from vercye_lai.io import remove_stale
from vercye_lai.naming import SENSORS

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
               parts: Sequence[SeasonPart]) -> MaxAccumulator | None:
    """The max map of a chunk of zones: its parts' running maxima folded together."""
    if plan.options.max_bands == "none":
        return None
    if len(parts) == 1 and parts[0].acc is not None:  # made here: no need to rasterise again
        return parts[0].acc
    _, _, acc = reference(plan, plan_zones(plan, chunk))
    for p in parts:
        acc.fold(p["lai_max"], p.get("adj_max"))
    return acc


def _write_zone(plan: AnalysisPlan, z: int, k: int, table: dict[str, np.ndarray],
                n_pix: np.ndarray, acc: MaxAccumulator | None, total: int,
                tags: dict[str, str]) -> ZoneResult:
    """Write the CSV and max map of zone ``z`` (column ``k`` of its chunk's tables)."""
    name = plan.names[z]
    stem = output_stem(plan.region, plan.geometry_path.stem, plan.start, plan.end,
                       zone_stem(name) if plan.options.mode == "poly_iter" else None)
    if total == 0:
        log.warning("zone %s covers no pixel centre of the LAI grid (try --all-touched)", name)
    cols = _fill_series(table, n_pix, k, options=plan.options, uncertainty=plan.has_uncertainty,
                        sensors=plan.multi_sensor, zone=name)
    csv = write_stats_csv(plan.outdir / f"{stem}_STATS.csv", plan.days, cols,
                          date_format=plan.options.date_format, clean_stale=False)
    tif = None
    bands = MAX_BAND_CHOICES[plan.options.max_bands]
    rejected = set(np.flatnonzero(cols["outlier"] == 1).tolist())
    if acc is not None and bands and rejected:
        # the map is the maximum over the observation days: one rejected by the outlier test (a
        # spike) had set it, folded in before the test; this zone's map again, without those days
        alone = analyze_part(plan, (z,), [d for d in plan.file_days if d not in rejected])
        acc, k = _chunk_max(plan, (z,), [alone]), 0
    if acc is not None and bands and acc.index.total[k + 1] > 0:
        win = acc.grid.window_for(acc.zone_bounds[k]).intersection(acc.grid.full_window)
        tif = write_max_tif(plan.outdir / f"{stem}_MAX.tif", acc.grid.window(win),
                            {b: acc.zone_map(k + 1, win, b) for b in bands},
                            tags=dict(tags, ZONE=name), clean_stale=False)
    observed = ~np.isnan(cols["mean"]) & (cols["interpolated"] == 0)
    return ZoneResult(name, csv, tif, total, int(observed.sum()), int(cols["interpolated"].sum()))


def _fill_series(table: dict[str, np.ndarray], n_pix: np.ndarray, k: int, *,
                 options: AnalysisOptions, uncertainty: bool = False,
                 sensors: bool = False, zone: str = "") -> dict[str, np.ndarray]:
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
        log.warning("zone %s: only %d observation(s) in the range: no interpolation", zone, n_obs)
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
