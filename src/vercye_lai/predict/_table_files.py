"""Tables on disk: CSV, Parquet or a vector file read as a (Geo)DataFrame, with errors naming
the file, and written atomically (:mod:`vercye_lai.predict.table` re-exports both)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pandas as pd

from vercye_lai.errors import DataIOError, InputError, require
from vercye_lai.io import atomic_output, check_utf8
from vercye_lai.regions import read_vector

log = logging.getLogger(__name__)

VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb")
TABLE_SUFFIXES = (".csv", ".parquet", *VECTOR_SUFFIXES)


def read_table(path: str | Path, *, layer: str | None = None) -> pd.DataFrame:
    """A CSV, Parquet or vector file as a (Geo)DataFrame, with errors naming the file."""
    path = check_utf8(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"not a table: expected one of {', '.join(TABLE_SUFFIXES)}", path=path)
    if not path.exists():
        raise DataIOError("file does not exist", path=path)
    if suffix in VECTOR_SUFFIXES:
        df = read_vector(path, layer=layer)
    else:
        try:
            if suffix == ".parquet":
                _need_parquet()
                df = pd.read_parquet(path)
            else:
                df = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise DataIOError(f"cannot read the table: {exc}", path=path) from exc
    return _without_blank_rows(df, path)


def _without_blank_rows(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The rows that hold a value (a spreadsheet's trailing empty rows are left out, and said);
    a table without any is an error."""
    values = df.drop(columns=[c for c in ("geometry",) if c in df.columns])
    blank = values.isna().all(axis=1).to_numpy() & (~df.geometry.notna().to_numpy() if "geometry" in df.columns
                                                      else True)
    if blank.any():
        log.info("%s: %d empty row(s) left out", path.name, int(blank.sum()))
        df = df[~blank]
    if df.empty:
        raise InputError("the table has no rows (only its header)", path=path)
    return df


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` atomically as CSV, Parquet or (a GeoDataFrame) a vector file."""
    path = check_utf8(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES or suffix == ".shp":  # a shapefile is several files: not atomic
        raise InputError("cannot write this kind of file: expected one of .csv, .parquet, .gpkg, "
                         ".geojson, .fgb", path=path)
    if suffix == ".parquet":
        _need_parquet()
    with atomic_output(path) as tmp:
        if suffix == ".csv":  # a point's geometry stays out of a CSV (its lon/lat columns, if any, stay)
            (df.drop(columns="geometry") if is_geo(df) else df).to_csv(tmp, index=False)
        elif suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            if not is_geo(df):
                raise InputError("a vector output needs a vector input (rows with a geometry)", path=path)
            lower = [c.lower() for c in df.columns]
            clash = sorted({c for c in df.columns if lower.count(c.lower()) > 1})
            if clash:
                raise InputError(f"columns {', '.join(clash)} differ only in case, which a vector "
                                 "file cannot hold; write a CSV or Parquet instead", path=path)
            driver = {".gpkg": "GPKG", ".fgb": "FlatGeobuf"}.get(suffix, "GeoJSON")
            try:
                with warnings.catch_warnings():  # the temporary name ends in .part, not .gpkg
                    warnings.filterwarnings("ignore", message="The filename extension should be")
                    df.to_file(tmp, driver=driver, layer=path.stem)
            except Exception as exc:  # noqa: BLE001 - pyogrio's errors are not OSErrors
                raise DataIOError(f"cannot write: {exc}", path=path) from exc
    return path


def is_geo(df: pd.DataFrame) -> bool:
    """The rows carry a geometry (a GeoDataFrame with its geometry column)."""
    return hasattr(df, "geometry") and "geometry" in df.columns


def _need_parquet() -> None:
    require("pyarrow", "parquet")
