"""Predict from a table: one row per observation instead of one pixel per raster cell.

Field spectra, Earth Engine point samples and in-situ tables that carry the Sentinel-2
reflectances are tables. :func:`predict_table` assembles each row's network inputs
(:func:`table_inputs`) and runs the same code as ``predict`` on them
(:func:`vercye_lai.predict.predict_block`): a row and a pixel of the same values give
the same LAI, flags and uncertainty.

Inputs of a row
---------------
* Reflectances: the network's bands by name (``B3`` or ``B03``, case-insensitive), as
  0–1 factors, or stored × 10000 (integer columns are read × 1e-4, as Earth Engine's
  integer exports; ``--scale``/``--offset`` as in predict). Implausible values fail as
  in predict (:func:`vercye_lai.stack.check_physical`).
* Angles: ``cosVZA``, ``cosSZA``, ``cosRAA`` columns; or degrees: ``sun_zenith``,
  ``view_zenith`` and ``relative_azimuth`` (or ``sun_azimuth`` and ``view_azimuth``);
  or, for the sun, computed from the acquisition time (a time column, or a Sentinel-2
  product name in a column) and the row's position (its point geometry, or ``lon``/``lat``
  columns); a view angle that is not given is ``--view-zenith``/``--view-azimuth``
  (default nadir, as ``stack-bands`` assumes), said in the log.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vercye_lai.acquire.angles import cosines, solar_position
from vercye_lai.acquire.platform import s2_platform
from vercye_lai.errors import InputError, ModelError
from vercye_lai.model import FLAG_NODATA, load_error_network
from vercye_lai.model.registry import UNIT_MODELS, unit_members, unit_model
from vercye_lai.model.sl2p import FLAG_CALIBRATION_OUTSIDE
from vercye_lai.options import Options, setting
from vercye_lai.predict.kernel import HazeTest, predict_block
from vercye_lai.predict.options import PredictOptions
from vercye_lai.predict._table_files import (  # noqa: F401 - part of this module's API
    TABLE_SUFFIXES,
    VECTOR_SUFFIXES,
    is_geo,
    read_table,
    write_table,
)
from vercye_lai.predict.products import check_model, load_options_calibration, model_networks
from vercye_lai.regions import LAT_COLUMNS, LON_COLUMNS
from vercye_lai.stack import (
    ANGLE_BANDS,
    EE_INTEGER_SCALE,
    L8_BANDS,
    StackScaling,
    NegativeTally,
    canonical_band,
    check_physical,
)

log = logging.getLogger(__name__)

#: degree columns, by the names users give them (compared lower-case, spaces → _)
ANGLE_COLUMNS = {
    "sun_zenith": ("sun_zenith", "sza", "solar_zenith", "sun_zenith_angle", "solar_zenith_angle"),
    "sun_azimuth": ("sun_azimuth", "saa", "solar_azimuth", "sun_azimuth_angle", "solar_azimuth_angle"),
    "view_zenith": ("view_zenith", "vza", "viewing_zenith", "view_zenith_angle", "sensor_zenith"),
    "view_azimuth": ("view_azimuth", "vaa", "viewing_azimuth", "view_azimuth_angle", "sensor_azimuth"),
    "relative_azimuth": ("relative_azimuth", "raa", "relative_azimuth_angle"),
}
TIME_COLUMNS = ("time", "datetime", "timestamp", "acquisition_time", "date_time", "system:time_start")
_S2_NAME = re.compile(r"S2[A-D]_MSI(?:L2A|L1C)_(\d{8}T\d{6})")


@dataclass(frozen=True)
class TableOptions(Options):
    """How a table's rows become network inputs (``predict-table``, ``calibrate``)."""
    time_column: str | None = setting(
        None, default_help="a column named time/datetime/timestamp, or one of Sentinel-2 product names",
        help="Acquisition time (UTC unless it says otherwise) of each row, for the sun angles.")
    view_zenith: float = setting(
        0.0, min=0, max=90, help="View zenith (degrees) where the table gives none (nadir).")
    view_azimuth: float = setting(
        0.0, min=0, max=360, help="View azimuth (degrees) where the table gives none.")
    layer: str | None = setting(None, help="Layer of a vector file with several layers.")


# ------------------------------------------------------------------------------ columns


def _key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip()).lower()


def find_column(df: pd.DataFrame, names: Sequence[str]) -> str | None:
    """The first column of ``df`` whose name is one of ``names`` (case-insensitive)."""
    keys = {_key(c): c for c in df.columns}
    for n in names:
        if _key(n) in keys:
            return keys[_key(n)]
    return None


def band_columns(df: pd.DataFrame, *, path: str | Path | None = None) -> dict[str, str]:
    """Canonical band name (``B3``, ``cosSZA``) -> column of ``df``.

    Raises
    ------
    InputError
        Two columns of one band (``B04`` and ``B4``): which one is meant is not guessed.
    """
    out: dict[str, str] = {}
    for c in df.columns:
        band = canonical_band(str(c))
        if band in out and band.startswith(("B", "cos")):
            raise InputError(f"columns {out[band]!r} and {c!r} are both band {band}: keep one", path=path)
        out.setdefault(band, c)
    return out


def row_times(df: pd.DataFrame, column: str | None = None, *, path: str | Path | None = None,
              time_of_day: bool = True) -> pd.Series:
    """Acquisition time of each row (UTC), from ``column`` or the columns that hold one.

    A time column (naive times are UTC) or a column of Sentinel-2 product names.

    Raises
    ------
    InputError
        No such column, values that are not times, or times without a time of day.
    """
    if column is not None and column not in df.columns:
        raise InputError(f"has no column {column!r} (--time-column); its columns: "
                         f"{', '.join(map(str, df.columns))}", path=path)
    names = (*TIME_COLUMNS, "date", "date_model") if not time_of_day else TIME_COLUMNS
    candidates = [column] if column else [c for c in (find_column(df, names),) if c]
    if not column:
        for c in df.columns:
            if not pd.api.types.is_numeric_dtype(df[c]) and df[c].astype(str).str.extract(_S2_NAME)[0].notna().mean() > 0.9:
                candidates.append(c)
    for c in candidates:
        values = df[c]
        products = values.astype(str).str.extract(_S2_NAME)[0]
        if products.notna().all():
            t = pd.to_datetime(products, format="%Y%m%dT%H%M%S", utc=True)
            log.info("acquisition times from the Sentinel-2 product names in column %s", c)
            return t
        try:
            t = pd.to_datetime(values, utc=True, format="ISO8601")
        except (ValueError, TypeError):  # (pandas' message is several lines of advice)
            bad = next((v for v in values if not _is_iso_time(v)), values.iloc[0] if len(values) else "?")
            raise InputError(f"column {c!r} does not hold ISO times (YYYY-MM-DDTHH:MM:SS, or Sentinel-2 product "
                             f"names): {bad!r}", path=path) from None
        if time_of_day and (t.dt.hour == 0).all() and (t.dt.minute == 0).all() and (t.dt.second == 0).all():
            raise InputError(f"column {c!r} holds dates without a time of day: the sun angles need the "
                             "acquisition time (or give sun_zenith/sun_azimuth columns)", path=path)
        log.info("acquisition times from column %s", c)
        return t
    raise InputError("no sun angles: give cosSZA/cosVZA/cosRAA or sun_zenith/sun_azimuth columns, or a "
                     "time column (--time-column) and the rows' positions (point geometries or lon/lat)",
                     path=path)


def _is_iso_time(value: object) -> bool:
    try:
        pd.to_datetime(value, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        return False
    return True


def row_lonlat(df: pd.DataFrame, *, path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (degrees, WGS 84) of each row: its geometry or lon/lat columns."""
    if is_geo(df):
        g = df.geometry
        if df.crs is None:
            raise InputError("the rows' geometries have no CRS", path=path)
        pts = g.to_crs(4326).representative_point() if not g.geom_type.eq("Point").all() else g.to_crs(4326)
        return pts.x.to_numpy(float), pts.y.to_numpy(float)
    lon, lat = find_column(df, LON_COLUMNS), find_column(df, LAT_COLUMNS)
    if lon is None or lat is None:
        raise InputError("the sun angles need each row's position: point geometries (a vector file) or "
                         "lon/lat columns", path=path)
    x, y = df[lon].to_numpy(float), df[lat].to_numpy(float)
    if np.nanmax(np.abs(x)) > 180 or np.nanmax(np.abs(y)) > 90:
        raise InputError(f"columns {lon}/{lat} are not lon/lat degrees (values beyond ±180/±90)", path=path)
    return x, y


def _degrees(df: pd.DataFrame, what: str) -> np.ndarray | None:
    c = find_column(df, ANGLE_COLUMNS[what])
    return None if c is None else df[c].to_numpy(float)


def _check_degrees(df: pd.DataFrame, sz: np.ndarray | None, vz: np.ndarray | None,
                   azimuths: dict[str, np.ndarray | None], options: TableOptions, path: str | Path | None) -> None:
    """Angle columns are degrees: zeniths within 0–90° and, where the time and place of a row
    are known, the sun zenith near the sun's; cosines under a degree column's name are refused."""
    name = {w: find_column(df, ANGLE_COLUMNS[w]) for w in ANGLE_COLUMNS}
    for what, v in (("sun_zenith", sz), ("view_zenith", vz)):
        if v is not None and np.isfinite(v).any() and (np.nanmin(v) < 0 or np.nanmax(v) > 90):
            raise InputError(f"column {name[what]!r} holds zenith angles outside 0–90° "
                             f"({np.nanmin(v):.4g}…{np.nanmax(v):.4g}): degrees expected", path=path)
    if sz is not None and np.isfinite(sz).any() and np.nanmax(sz) <= 1.0:
        raise InputError(f"column {name['sun_zenith']!r} holds values of at most 1 (a sun zenith of "
                         f"{np.nanmax(sz):.3g}° is not an optical acquisition): cosines? name the column "
                         "cosSZA, or give degrees", path=path)
    if sz is not None:
        try:
            times, (lon, lat) = row_times(df, options.time_column, path=path), row_lonlat(df, path=path)
        except InputError:
            times = None  # no time or place to check against: the ranges above must do
        if times is not None:
            sun = np.array([solar_position(t.to_pydatetime(), x, y)[0] for t, x, y in zip(times, lon, lat)])
            off = np.abs(sz - sun)
            if np.nanmedian(off) > 10:
                i = int(np.nanargmax(off))
                raise InputError(f"column {name['sun_zenith']!r}: {sz[i]:.4g}° in row {i}, while the sun at that "
                                 f"time and place stood at {sun[i]:.4g}° zenith (median difference "
                                 f"{np.nanmedian(off):.3g}°): not the sun zenith in degrees", path=path)
    for what, v in azimuths.items():
        if v is not None and len(v) >= 3 and np.isfinite(v).all() and np.abs(v).max() <= 1.0 and np.any(v != 0):
            log.warning("%s: column %r holds values within ±1 only: cosines? azimuths are read as degrees",
                        Path(path).name if path else "table", name[what])


def _check_cos_raa(df: pd.DataFrame, cos_raa: np.ndarray, column: str, path: str | Path | None) -> None:
    """A cosRAA column is checked against the azimuths where the table has them, and a column
    of zeros (a placeholder, as some exports write) is said: never taken silently."""
    sa, va = _degrees(df, "sun_azimuth"), _degrees(df, "view_azimuth")
    if sa is not None and va is not None:
        off = np.abs(cos_raa - np.cos(np.radians(sa - va)))
        if np.nanmedian(off) > 0.05:
            raise InputError(f"column {column!r} disagrees with cos(sun azimuth − view azimuth) of the azimuth "
                             f"columns (median difference {np.nanmedian(off):.2f}): drop the wrong one", path=path)
    elif len(cos_raa) >= 3 and np.mean(cos_raa == 0) > 0.9:
        log.warning("%s: column %r is 0 in %d of %d rows (a relative azimuth of 90° everywhere): a placeholder? "
                    "give the sun and view azimuths instead", Path(path).name if path else "table", column,
                    int((cos_raa == 0).sum()), len(cos_raa))


def angle_inputs(df: pd.DataFrame, options: TableOptions = TableOptions(), *,
                 path: str | Path | None = None) -> dict[str, np.ndarray]:
    """``cosVZA``, ``cosSZA``, ``cosRAA`` of each row (see the module docstring) and
    which of them were computed (key ``"computed"``: a list of names)."""
    have = band_columns(df, path=path)
    out: dict[str, Any] = {b: df[have[b]].to_numpy(float) for b in ANGLE_BANDS if b in have}
    if "cosRAA" in out:
        _check_cos_raa(df, out["cosRAA"], have["cosRAA"], path)
    if len(out) == len(ANGLE_BANDS):
        out["computed"] = []
        return out
    sz, sa = _degrees(df, "sun_zenith"), _degrees(df, "sun_azimuth")
    vz, va = _degrees(df, "view_zenith"), _degrees(df, "view_azimuth")
    raa = _degrees(df, "relative_azimuth")
    _check_degrees(df, sz, vz, {"sun_azimuth": sa, "view_azimuth": va, "relative_azimuth": raa}, options, path)
    if sz is None or (sa is None and raa is None and "cosRAA" not in out):
        times = row_times(df, options.time_column, path=path)
        lon, lat = row_lonlat(df, path=path)
        zen = np.empty(len(df))
        az = np.empty(len(df))
        for i, (t, x, y) in enumerate(zip(times, lon, lat)):
            zen[i], az[i] = solar_position(t.to_pydatetime(), x, y)
        log.info("sun angles computed from the acquisition time and position of %d row(s)", len(df))
        sz = zen if sz is None else sz
        sa = az if sa is None else sa
    if vz is None:
        log.info("no view zenith column: %.4g degrees assumed (--view-zenith)", options.view_zenith)
        vz = np.full(len(df), options.view_zenith)
    if raa is None and va is None:
        log.info("no view azimuth column: %.4g degrees assumed (--view-azimuth)", options.view_azimuth)
        va = np.full(len(df), options.view_azimuth)
    if raa is not None:  # cos(RAA) from the relative azimuth itself
        sa, va = raa, np.zeros(len(df))
    c = cosines(sz, sa, vz, va)
    computed = [b for b in ANGLE_BANDS if b not in out]
    for b in computed:
        out[b] = c[b].astype(float)
    out["computed"] = computed
    return out


@dataclass(frozen=True)
class TableInputs:
    """The network inputs of a table's rows: ``x`` (n_inputs, n_rows) physical values,
    NaN where a row lacks one; the angle cosines that were computed; the scaling used;
    the values as stored and the per-input map ``x = stored · a + b`` (predict folds it
    into the network, and so does :func:`predict_table`, so that rows equal pixels)."""
    x: np.ndarray
    computed: dict[str, np.ndarray]
    how: str
    stored: np.ndarray
    a: np.ndarray
    b: np.ndarray


def table_inputs(df: pd.DataFrame, inputs: Sequence[str], *, predict: PredictOptions = PredictOptions(),
                 options: TableOptions = TableOptions(), path: str | Path | None = None) -> TableInputs:
    """Assemble the network ``inputs`` of every row (see the module docstring).

    Raises
    ------
    InputError
        A band missing (naming the columns there are), angles that cannot be had, or
        reflectances that are not physical once scaled.
    """
    have = band_columns(df, path=path)
    refl = [b for b in inputs if b not in ANGLE_BANDS]
    s2_only = [b for b in ("B8A", "B12") if b in have]  # Landsat has neither (its B11 is thermal)
    if tuple(inputs) == L8_BANDS and s2_only:  # same names, other bands: B5 is NIR in Landsat only
        raise InputError(f"has Sentinel-2 bands ({', '.join(s2_only)}): model {predict.model} reads Landsat "
                         "numbering (B3 green, B4 red, B5 NIR, B6/B7 SWIR); use a Sentinel-2 model "
                         "(sl2p) for Sentinel-2 and HLS S30 rows", path=path)
    missing = [b for b in refl if b not in have]
    if missing:
        landsat = tuple(inputs) != L8_BANDS and all(b in have for b in L8_BANDS if b not in ANGLE_BANDS)
        hint = (f"; the table has Landsat-numbered bands (B3-B7, no B8A/B12): for Landsat 8/9 or HLS L30 rows "
                f"use --model {predict.landsat_model}") if landsat and "B8A" in missing else ""
        raise InputError(f"no column for band(s) {', '.join(missing)} (model {predict.model}); "
                         f"its columns: {', '.join(map(str, df.columns))}{hint}", path=path)
    # the table's own input columns: the reflectances and any cosine columns
    given = [b for b in inputs if b in have]
    raw = np.array([pd.to_numeric(df[have[b]], errors="coerce").to_numpy(float) for b in given])
    integer = all(pd.api.types.is_integer_dtype(df[have[b]]) for b in given)
    a, o = np.ones(len(given)), np.zeros(len(given))
    if predict.scale is not None or predict.offset is not None:  # as stack_scaling: angles keep x 1e-4
        # an offset alone keeps the columns' own scale (integers x 1e-4), as stack_scaling does
        s = (EE_INTEGER_SCALE if integer else 1.0) if predict.scale is None else predict.scale
        off = 0.0 if predict.offset is None else predict.offset
        for i, b in enumerate(given):
            a[i], o[i] = ((EE_INTEGER_SCALE if integer else 1.0), 0.0) if b in ANGLE_BANDS else (s, off * s)
        how = f"user: reflectance = (value + {off:g}) * {s:g}"
    elif integer:
        a[:], how = EE_INTEGER_SCALE, "integer columns: x 1e-4"
    else:
        how = "as stored"
    values = raw * a[:, None] + o[:, None]
    as_read = StackScaling(np.ones(len(given)), np.zeros(len(given)), how)
    check_physical(values[:, None, :], as_read, given, [None] * len(given), path=path or "table")
    negatives = NegativeTally(as_read, given)  # an offset applied twice
    negatives.add(values[:, None, :], [None] * len(given))
    negatives.check(path=path or "table")
    rows = dict(zip(given, values))
    if "cosRAA" in rows:
        _check_cos_raa(df, rows["cosRAA"], have["cosRAA"], path)
    stored = dict(zip(given, raw))
    scale = {b: (a[i], o[i]) for i, b in enumerate(given)}
    computed: dict[str, np.ndarray] = {}
    if any(b in ANGLE_BANDS and b not in rows for b in inputs):
        angles = angle_inputs(df.drop(columns=[have[b] for b in given if b in ANGLE_BANDS]), options, path=path)
        computed = {b: angles[b] for b in angles["computed"] if b in inputs}
        rows = {b: angles[b] for b in ANGLE_BANDS if b in angles} | rows
        stored = {b: angles[b] for b in ANGLE_BANDS if b in angles} | stored
    x = np.array([rows[b] for b in inputs], dtype=np.float32)
    a_in, b_in = (np.array([scale.get(b, (1.0, 0.0))[k] for b in inputs]) for k in (0, 1))
    return TableInputs(x, computed, how, np.array([stored[b] for b in inputs], dtype=np.float32), a_in, b_in)


# ------------------------------------------------------------------------------ predict


def output_columns(variable: str) -> tuple[str, str, str]:
    """The columns ``predict-table`` adds: value, flags, uncertainty."""
    return variable, f"{variable} flags", f"{variable} uncertainty"


def predict_table(df: pd.DataFrame, *, predict: PredictOptions = PredictOptions(),
                  options: TableOptions = TableOptions(), path: str | Path | None = None) -> pd.DataFrame:
    """``df`` plus, per variable, its value, flags (255: input missing) and, with
    ``predict.uncertainty``, its uncertainty; the angle cosines it computed; and, with
    ``predict.calibration`` (a file of ``vercye-lai calibrate``), ``{VAR} Calibrated``.

    Raises
    ------
    InputError
        See :func:`table_inputs`; an output column the table already has.
    """
    models = row_models(df, predict.model, path=path)
    unit_options = {m: dataclasses.replace(predict, model=m) for m in dict.fromkeys(models)} or {
        str(predict.model): dataclasses.replace(predict, model=unit_model(predict.model, None, path=path))}
    for o in unit_options.values():  # a calibration fitted for one model: every row's must be it
        check_model(o)
    first = next(iter(unit_options.values()))
    networks = model_networks(first)  # every unit's network takes the same inputs
    calibration = load_options_calibration(first)
    inputs = table_inputs(df, networks[0].inputs, predict=first, options=options, path=path)
    new = [c for v in predict.variables for c in output_columns(v)]
    clash = [c for c in new if c in df.columns]
    if clash:
        raise InputError(f"already has column(s) {', '.join(clash)} (a predict-table output?); "
                         "rename or drop them", path=path)
    n = len(df)
    values = [np.full(n, np.nan, np.float32) for _ in predict.variables]
    flags = [np.full(n, FLAG_NODATA, np.uint8) for _ in predict.variables]
    unc = [np.full(n, np.nan, np.float32) for _ in predict.variables] if predict.uncertainty else []
    n_valid = 0
    for model, o in unit_options.items():
        rows = np.flatnonzero(models == model)
        v, f, k, u = _predict_rows(inputs, o, rows)
        for out_list, got in ((values, v), (flags, f), (unc, u)):
            for full, part in zip(out_list, got):
                full[rows] = part.ravel()
        n_valid += k
        if len(unit_options) > 1:
            log.info("%d row(s) of %s: %s", len(rows), model, predict.model)
    log.info("%d of %d row(s) have every input (%s)", n_valid, len(df), inputs.how)
    out = df.copy()
    for b, v in inputs.computed.items():
        if b not in out.columns:
            out[b] = v.astype(np.float32)
    for k, v in enumerate(predict.variables):
        name, fname, uname = output_columns(v)
        out[name] = values[k]
        out[fname] = flags[k]
        if unc:
            out[uname] = unc[k]
    if calibration is not None:
        doy = day_of_year(df, options.time_column, path=path) if calibration.needs_date else None
        est = out[calibration.variable].to_numpy(float)
        out[calibration.column], outside = calibration.calibrate(est, inputs.x, doy)
        if calibration.sigma:  # the calibrated value's σ, from the held-out errors of its fit
            out[f"{calibration.column} uncertainty"] = calibration.uncertainty(out[calibration.column])
        flags = f"{calibration.variable} flags"
        if flags in out:  # rows outside the calibration's training domain: uncalibrated, flagged
            outside &= out[flags].to_numpy() != FLAG_NODATA
            out.loc[outside, flags] = out.loc[outside, flags].astype(int) | FLAG_CALIBRATION_OUTSIDE
    return out


def _predict_rows(inputs: TableInputs, predict: PredictOptions, rows: np.ndarray):
    """:func:`predict_block` of the table's ``rows`` with ``predict``'s networks (and error
    networks), on the table's stored values: values, flags, valid rows, uncertainty."""
    networks = model_networks(predict)
    errors = [load_error_network(predict.model, v) for v in predict.variables] if predict.uncertainty else []
    fold = [n.for_stored_values(inputs.a, inputs.b) for n in networks]
    fold_err = [e.for_stored_values(inputs.a, inputs.b) for e in errors]
    return predict_block(inputs.stored[:, None, rows], fold, [None] * inputs.x.shape[0], flags=True,
                         out_of_range=predict.out_of_range, errors=fold_err,
                         haze=HazeTest.of(networks[0].inputs, inputs.a, inputs.b, predict.haze))


#: columns that may name a row's Sentinel-2 unit: Earth Engine's property, STAC's, a plain name
PLATFORM_COLUMNS = ("spacecraft_name", "platform", "spacecraft")


def row_models(df: pd.DataFrame, model: str | Path, *, path=None) -> np.ndarray:
    """The model of each row: ``model``, or for a per-unit model (``snap-3.0``) the network of
    the row's Sentinel-2 unit, named by a column of :data:`PLATFORM_COLUMNS` (any case:
    ``Sentinel-2C``, ``sentinel-2c``, a product id).

    Raises
    ------
    ModelError
        A per-unit model and no such column (choose a unit's model), or a unit it has no
        network for.
    InputError
        Rows whose column names no unit (counted, the first shown).
    """
    if str(model) not in UNIT_MODELS:
        return np.full(len(df), str(model), dtype=object)
    lower = {str(c).lower(): c for c in df.columns}
    column = next((lower[c] for c in PLATFORM_COLUMNS if c in lower), None)
    if column is None:  # (unit_model would speak of a stack's PLATFORM tag)
        raise ModelError(f"{model} picks each row's network from its Sentinel-2 unit: the table needs a column "
                         f"{' or '.join(PLATFORM_COLUMNS)} (S2A, Sentinel-2B, …), or choose "
                         f"{' or '.join(unit_members(model))} with --model", path=path)
    units = [s2_platform(v) if pd.notna(v) else None for v in df[column]]
    missing = [i for i, u in enumerate(units) if u is None]
    if missing:
        raise InputError(f"{len(missing)} row(s) name no Sentinel-2 unit in column {column!r} (row {missing[0]}: "
                         f"{df[column].iloc[missing[0]]!r}), which {model} needs to choose each row's network",
                         path=path)
    return np.array([str(unit_model(model, u, path=path)) for u in units], dtype=object)


def day_of_year(df: pd.DataFrame, column: str | None = None, *, path=None) -> np.ndarray:
    """Day of the year of each row's acquisition (see :func:`row_times`; a date will do)."""
    return row_times(df, column, path=path, time_of_day=False).dt.day_of_year.to_numpy(float)
