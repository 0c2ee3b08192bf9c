"""Match in-situ measurements to the LAI products and measure the agreement.

Two ways to pair a measurement with an estimate:

* **points** (:func:`match_points`): the pixel under the point, or the mean of the valid
  pixels whose centres lie within ``buffer`` metres, from the nearest *clear* date (a
  valid value there) within ``max_days`` of the measurement (the earlier date on a tie).
  Points and rasters may be in any CRS; each raster is read on its own grid.
* **series** (:func:`match_series`): the daily field series an analysis wrote
  (``_STATS.csv``, gap-filled), on the measurement day, for the zone named in
  ``zone_column``. Several measurements of one zone and day are averaged first: the
  field mean is one number, and each field-day then counts once.

:func:`agreement_tables` gives n, RMSE, bias, MAE, r and slope overall and per group;
:func:`write_validation` writes the matched table, the metrics (CSV and Markdown) and
a scatter plot coloured by group.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vercye_lai.analysis.fields import known_zone, zone_name, zone_stem
from vercye_lai.analysis.manifest import zone_csvs
from vercye_lai.analysis.products import STATS_CORE, read_stats_csv
from vercye_lai.errors import InputError, NoDataFoundError
from vercye_lai.insitu.agreement import Agreement, check_measurements, plot_agreement
from vercye_lai.io import open_raster, read_values, write_text_atomic
from vercye_lai.naming import find_observations, flags_path, uncertainty_path
from vercye_lai.options import Options, setting
from vercye_lai.regions import read_vector
from vercye_lai.stack import canonical_band, stack_scaling

log = logging.getLogger(__name__)

INSITU = "insitu"  # the in-situ value's column in the matched table


@dataclass(frozen=True)
class ValidateOptions(Options):
    """How in-situ points are read and matched (``vercye-lai validate``)."""
    date_column: str = setting("date", help="Column of the measurement dates (or times) in INSITU.")
    value_column: str = setting("lai", help="Column of the measured values in INSITU.")
    group_column: str | None = setting(
        None, help="Column grouping the points (site, field, year): metrics and colours per group.")
    buffer: float = setting(
        0.0, min=0, help="Mean of the pixels whose centres lie within this many metres of the "
        "point (0: the pixel under it).")
    max_days: int = setting(5, min=0, help="Furthest LAI date from a measurement, in days.")
    variable: str = setting("LAI", help="Product variable to compare (the {VAR} of the file names).")
    sensors: tuple[str, ...] = setting(
        ("s2", "s30", "l30", "l8", "l9"), sep=",", choices=("s2", "s30", "l30", "l8", "l9"),
        help="Sensors whose products a point may take (the nearest date first; on a tie, the first listed).")
    zone_column: str | None = setting(
        None, help="With --series: column naming each point's zone (field) in the analysis.")
    layer: str | None = setting(None, help="Layer of an INSITU file with several layers.")


def read_insitu(path: str | Path | Any, options: ValidateOptions = ValidateOptions(), *,
                points: bool = True) -> Any:
    """The measurements of a vector file (or of a GeoDataFrame a caller read): a
    GeoDataFrame with ``insitu_date`` (date) and ``insitu`` (float) columns.

    Raises
    ------
    InputError
        A column missing (naming those there are), dates that do not parse, or geometries
        that are not points (for the point mode).
    """
    if isinstance(path, (str, os.PathLike)):
        g = read_vector(path, layer=options.layer)
    else:  # a frame already read; its errors name it so
        g, path = path.copy(), "the in-situ table"
    for c, opt in ((options.date_column, "--date-column"), (options.value_column, "--value-column"),
                   (options.group_column, "--group-column"), (options.zone_column, "--zone-column")):
        if c is not None and c not in g.columns:
            raise InputError(f"has no column {c!r} ({opt}); its columns: "
                             f"{', '.join(map(str, g.columns))}", path=path)
    try:
        g["insitu_date"] = pd.to_datetime(g[options.date_column], format="ISO8601").dt.date
    except (ValueError, TypeError):
        bad = next((str(v) for v in g[options.date_column] if not _is_iso_date(v)), "?")
        raise InputError(f"column {options.date_column!r} does not hold ISO dates (YYYY-MM-DD): {bad!r}",
                         path=path) from None
    g[INSITU] = _numbers(g[options.value_column], options.value_column, path)
    check_measurements(g[INSITU], options.variable, column=options.value_column, path=path)
    if points:
        kinds = sorted(set(g.geom_type.dropna()))
        if kinds != ["Point"]:
            raise InputError(f"in-situ measurements must be points, found {', '.join(kinds) or 'none'}",
                             path=path)
    return g


def _measurements(insitu: Any, options: ValidateOptions, *, points: bool) -> Any:
    """``insitu`` as :func:`read_insitu` gives it: read when a path, normalised when a frame
    without its columns (a caller's own GeoDataFrame), as it is when already read."""
    if isinstance(insitu, (str, os.PathLike)) or not {"insitu_date", INSITU} <= set(insitu.columns):
        return read_insitu(insitu, options, points=points)
    return insitu


def _is_iso_date(value: Any) -> bool:
    try:
        pd.to_datetime(value, format="ISO8601")
    except (ValueError, TypeError):
        return False
    return True


def _numbers(column: Any, name: str, path: str | Path) -> Any:
    """A column of numbers: empty cells stay NaN, a cell that is not a number is an error
    (a decimal comma is said, never read as a missing value)."""
    values = pd.to_numeric(column, errors="coerce")
    bad = column[values.isna() & column.notna() & (column.astype(str).str.strip() != "")]
    if len(bad):
        first = str(bad.iloc[0])
        hint = ": a decimal comma? write 2.5, not 2,5" if "," in first else ""
        raise InputError(f"column {name!r}: {len(bad)} value(s) are not numbers, e.g. {first!r}{hint}", path=path)
    return values


class _Rasters:
    """Open rasters by path, each once (closed by :meth:`close`)."""
    def __init__(self) -> None:
        self._open: dict[Path, Any] = {}

    def get(self, path: Path) -> Any | None:
        if path not in self._open:
            self._open[path] = open_raster(path) if path.exists() else None
        return self._open[path]

    def close(self) -> None:
        for ds in self._open.values():
            if ds is not None:
                ds.close()


def _pixels(ds: Any, x: float, y: float, buffer: float) -> tuple[Any, np.ndarray] | None:
    """The window and the boolean mask of pixels the point (x, y in ``ds``'s CRS) covers,
    or ``None`` outside the raster."""
    from rasterio.windows import Window

    col_f, row_f = ~ds.transform * (x, y)
    if buffer <= 0:
        col, row = int(np.floor(col_f)), int(np.floor(row_f))
        if not (0 <= col < ds.width and 0 <= row < ds.height):
            return None
        return Window(col, row, 1, 1), np.ones((1, 1), bool)
    rx, ry = buffer / abs(ds.transform.a), buffer / abs(ds.transform.e)
    c0, r0 = max(0, int(np.floor(col_f - rx))), max(0, int(np.floor(row_f - ry)))
    c1, r1 = min(ds.width, int(np.ceil(col_f + rx))), min(ds.height, int(np.ceil(row_f + ry)))
    if c0 >= c1 or r0 >= r1:
        return None
    cols, rows = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
    d = np.hypot((cols - col_f) * abs(ds.transform.a), (rows - row_f) * abs(ds.transform.e))
    mask = d <= buffer + 1e-3  # a millimetre: reprojection round-off at exactly the radius
    if not mask.any():
        return None
    return Window(c0, r0, c1 - c0, r1 - r0), mask


class _Coords:
    """The points' coordinates in each raster CRS met (reprojected once per CRS)."""
    def __init__(self, geometry: Any) -> None:
        self.geometry = geometry
        self._by_crs: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def of(self, ds: Any, i: int) -> tuple[float, float]:
        key = ds.crs.to_string()
        if key not in self._by_crs:
            g = self.geometry.to_crs(ds.crs)
            self._by_crs[key] = (g.x.to_numpy(float), g.y.to_numpy(float))
        xs, ys = self._by_crs[key]
        return float(xs[i]), float(ys[i])


def match_points(insitu: Any, lai_dir: str | Path, region: str, *, resolution: float,
                 options: ValidateOptions = ValidateOptions(), stacks_dir: str | Path | None = None
                 ) -> pd.DataFrame:
    """One row per measurement: the estimate from the nearest clear date (see the module
    docstring), its flags and uncertainty where those rasters exist, the stack's band
    values (physical: reflectance factors and cosines) with ``stacks_dir``, and the
    ``reason`` a measurement found no estimate. ``insitu``: a vector file of points, a
    GeoDataFrame of them, or :func:`read_insitu`'s result.

    Raises
    ------
    NoDataFoundError
        No LAI raster of the region at all.
    """
    insitu = _measurements(insitu, options, points=True)
    sensors = tuple(x.upper() for x in options.sensors)
    files = find_observations(lai_dir, region, resolution, sensors=sensors, suffix=options.variable,
                              extensions=(".tif",))
    stacks = find_observations(stacks_dir, region, resolution, sensors=sensors) if stacks_dir is not None else {}
    rank = {x: k for k, x in enumerate(sensors)}
    keys = sorted(files, key=lambda k: (k[0], rank[k[1]]))
    rasters = _Rasters()
    coords = _Coords(insitu.geometry)
    var = options.variable
    rows = []
    try:
        for i, (day, value) in enumerate(zip(insitu["insitu_date"], insitu[INSITU])):
            row: dict[str, Any] = {"point": i, "insitu_date": day.isoformat(), INSITU: value,
                                   "lon": np.nan, "lat": np.nan}
            if options.group_column:
                row["group"] = insitu[options.group_column].iloc[i]
            near = sorted((k for k in keys if abs((k[0] - day).days) <= options.max_days),
                          key=lambda k: (abs((k[0] - day).days), k[0], rank[k[1]]))
            reason = f"no LAI date within {options.max_days} day(s)" if not near else None
            outside = 0
            for key in near:
                d = key[0]
                ds = rasters.get(files[key])
                px = _pixels(ds, *coords.of(ds, i), options.buffer)
                if px is None:
                    outside += 1
                    continue
                window, mask = px
                v = read_values(ds, window=window).astype(float)
                use = mask & np.isfinite(v)
                if not use.any():
                    continue
                row.update({"date": d.isoformat(), "sensor": key[1].lower(), "day_gap": (d - day).days,
                            var: float(v[use].mean()), "n_pixels": int(use.sum())})
                f = rasters.get(flags_path(files[key]))
                if f is not None:
                    fv = f.read(1, window=window)[use]
                    row[f"{var} flags"] = int(np.bitwise_or.reduce(fv[fv != 255])) if (fv != 255).any() else 255
                u = rasters.get(uncertainty_path(files[key]))
                if u is not None:
                    uv = read_values(u, window=window)[use]
                    row[f"{var} uncertainty"] = float(np.nanmean(uv)) if np.isfinite(uv).any() else np.nan
                if key in stacks:
                    row.update(_stack_values(rasters.get(stacks[key]), coords.of(rasters.get(stacks[key]), i),
                                             options.buffer, stack_scaling))
                break
            else:
                if near:
                    reason = ("outside the LAI rasters" if outside == len(near)
                              else f"no clear pixel within {options.max_days} day(s)")
            row["reason"] = reason or ""
            rows.append(row)
    finally:
        rasters.close()
    out = pd.DataFrame(rows)
    lonlat = insitu.geometry.to_crs(4326)
    out["lon"], out["lat"] = lonlat.x.round(6).to_numpy(), lonlat.y.round(6).to_numpy()
    for c in ("date", "sensor", "day_gap", var, "n_pixels"):
        if c not in out.columns:
            out[c] = np.nan
    reasons = set(out["reason"]) if len(out) else set()
    if out[var].notna().sum() == 0 and "outside the LAI rasters" in reasons and \
            not any(r.startswith("no clear pixel") for r in reasons):  # no point on a raster
        _explain_outside(lonlat, files[keys[0]])
    return out


def _explain_outside(points: Any, raster: Path) -> None:
    """No point on the rasters: say where each lies, and whether swapped coordinates would fit."""
    from rasterio.warp import transform_bounds

    with open_raster(raster) as ds:
        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    x, y = points.x.to_numpy(float), points.y.to_numpy(float)
    swapped = int(((y >= w) & (y <= e) & (x >= s) & (x <= n)).sum())
    msg = (f"none of the {len(x)} points lies on the LAI rasters (they cover lon {w:.3f}…{e:.3f}, lat "
           f"{s:.3f}…{n:.3f}; the points lon {x.min():.3f}…{x.max():.3f}, lat {y.min():.3f}…{y.max():.3f})")
    if swapped:
        msg += f"; with longitude and latitude swapped {swapped} would: check the coordinate columns"
    raise InputError(msg)


def _stack_values(ds: Any, xy: tuple[float, float], buffer: float, stack_scaling: Any) -> dict[str, float]:
    """The stack's bands at the point, physical (mean of the valid pixels of the buffer)."""
    px = _pixels(ds, *xy, buffer)
    if px is None:
        return {}
    window, mask = px
    names = [canonical_band(d or f"band{k + 1}") for k, d in enumerate(ds.descriptions)]
    sc = stack_scaling(ds, names)
    data = ds.read(window=window, masked=True).astype(float).filled(np.nan)
    data = data * sc.a[:, None, None] + sc.b[:, None, None]
    use = mask & np.isfinite(data).all(axis=0)
    if not use.any():
        return {}
    return {n: float(data[k][use].mean()) for k, n in enumerate(names)}


def match_series(insitu: Any, series_dir: str | Path, *, options: ValidateOptions = ValidateOptions(),
                 columns: Sequence[str] = ("LAI Mean", "LAI Mean Adjusted")) -> pd.DataFrame:
    """One row per (zone, measurement day): the mean of its measurements and the zone's
    daily series values on that day (see the module docstring). ``insitu``: a vector file,
    a (Geo)DataFrame, or :func:`read_insitu`'s result.

    Raises
    ------
    InputError
        No ``zone_column``, or a series folder without an analysis manifest.
    """
    if not options.zone_column:
        raise InputError("--series needs --zone-column: the column naming each point's zone")
    insitu = _measurements(insitu, options, points=False)
    series_dir = Path(series_dir)
    csvs = zone_csvs(series_dir)
    if csvs is None:  # an analysis of an older version: {region}_{geometry}_{zone}_{start}_{end}_STATS.csv
        csvs = {}
        for z in sorted(set(insitu[options.zone_column].map(zone_name))):
            pattern = re.compile(rf"_{re.escape(zone_stem(z))}_\d{{4}}-\d\d-\d\d_\d{{4}}-\d\d-\d\d_STATS\.csv$")
            found = sorted(p for p in series_dir.glob("*_STATS.csv") if pattern.search(p.name))
            if len(found) > 1:
                raise InputError(f"several series of zone {z!r}: {', '.join(p.name for p in found)}",
                                 path=series_dir)
            if found:
                csvs[z] = found[0]
        if not csvs:
            raise InputError("holds no _STATS.csv of the in-situ points' zones (column "
                             f"{options.zone_column!r})", path=series_dir)
    keys = [options.zone_column, "insitu_date"] + ([options.group_column] if options.group_column else [])
    per_day = (pd.DataFrame(insitu.drop(columns="geometry")).groupby(keys, dropna=False)[INSITU]
               .agg(["mean", "count"]).reset_index())
    # each point's zone by the analysis' name of it (an older analysis named it as its files: "Field_1")
    per_day["_zone"] = [known_zone(n, csvs) for n in map(zone_name, per_day[options.zone_column])]
    rows = []
    unknown = sorted(set(per_day["_zone"]) - set(csvs))
    if unknown:
        log.warning("%s: zone(s) %s of the in-situ points are not in the analysis", series_dir, ", ".join(unknown))
    for zone, csv in csvs.items():
        stats = read_stats_csv(csv, need=(*STATS_CORE, *columns[:1]))
        stats = stats.set_index(stats["Date"].dt.strftime("%Y-%m-%d"))
        for _, m in per_day[per_day["_zone"] == zone].iterrows():
            day = m["insitu_date"].isoformat()
            if day not in stats.index or not np.isfinite(stats.loc[day, columns[0]]):
                continue  # outside the first..last observation: no extrapolation
            s = stats.loc[day]
            row = {"zone": zone, "group": m[options.group_column] if options.group_column else zone,
                   "insitu_date": day, "n_measurements": int(m["count"]), INSITU: float(m["mean"]),
                   "interpolated": int(s["interpolated"])}
            rows.append(row | {c: float(s[c]) for c in columns if c in s.index})
    return pd.DataFrame(rows)


def agreement_tables(matched: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """n, RMSE, bias, MAE, r, slope per estimate column: overall and per group."""
    rows = []
    groups = [("all", matched)]
    if "group" in matched.columns:
        groups += [(str(g), sub) for g, sub in matched.groupby("group")]
    for c in columns:
        for g, sub in groups:
            rows.append({"estimate": c, "group": g, **Agreement.of(sub[c], sub[INSITU]).as_dict()})
    return pd.DataFrame(rows)


def write_validation(matched: pd.DataFrame, out_dir: str | Path, *, columns: Sequence[str], title: str,
                     prefix: str = "validation") -> dict[str, Path]:
    """``{prefix}_matched.csv``, ``{prefix}_metrics.csv`` and ``.md``, ``{prefix}_scatter.png``
    in ``out_dir``."""
    out = Path(out_dir)
    metrics = agreement_tables(matched, columns)
    paths = {k: out / f"{prefix}_{k}" for k in ("matched.csv", "metrics.csv", "metrics.md", "scatter.png")}
    write_text_atomic(paths["matched.csv"], matched.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(paths["metrics.csv"], metrics.to_csv(index=False, float_format="%.4f"))
    write_text_atomic(paths["metrics.md"], metrics_markdown(metrics))
    ok = matched.dropna(subset=[columns[0]])
    if len(ok):
        plot_agreement(ok, paths["scatter.png"], title=title, columns=tuple(columns), truth=INSITU,
                       group="group" if "group" in ok.columns else None)
    else:
        paths.pop("scatter.png")
    return paths


def metrics_markdown(metrics: pd.DataFrame) -> str:
    lines = ["| estimate | group | n | RMSE | bias | MAE | r | slope |", "|" + " --- |" * 8]
    for m in metrics.itertuples(index=False):
        lines.append(f"| {m.estimate} | {m.group} | {m.n} | {m.rmse:.2f} | {m.bias:+.2f} | {m.mae:.2f} | "
                     f"{m.r:.2f} | {m.slope:.2f} |")
    return "\n".join(lines) + "\n"


def check_matches(matched: pd.DataFrame, column: str, path: str | Path) -> None:
    """Fail when no measurement found an estimate, saying why the first ones did not."""
    if matched.empty or matched[column].notna().sum() == 0:
        why = ", ".join(sorted(set(matched.get("reason", pd.Series(dtype=str)).dropna()) - {""})) or "none matched"
        raise NoDataFoundError(f"no in-situ measurement found an estimate ({why})", path=path)


