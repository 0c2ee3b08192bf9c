"""``vercye-lai predict-table``: SL2P on the rows of a table (field spectra, point samples)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import stdout
from vercye_lai.model.sl2p import FLAG_HAZE, FLAG_NODATA
from vercye_lai.predict import PredictOptions
from vercye_lai.predict.table import TableOptions, predict_table, read_table, write_table

log = logging.getLogger(__name__)

#: predict's options that mean nothing for a table (no raster is written; --model serves every row)
_RASTER_ONLY = ("flags", "cog", "block_size", "landsat_model", "dtype")  # (a table's values are text: --dtype did nothing)
#: predict's options whose meaning differs for rows of a table
_TABLE_HELPS = {
    "uncertainty": "Add a '{VAR} uncertainty' column: the LEAF error network's per-row uncertainty, in the "
                   "variable's units (sl2p, sl2p-10m).",
    "calibration": "A calibration file of `vercye-lai calibrate`: add a '{VAR} Calibrated' column for its "
                   "variable.",
}


@click.command("predict-table")
@click.argument("table", metavar="IN", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out", metavar="OUT", type=click.Path(dir_okay=False, path_type=Path))
@opts.click_options(PredictOptions, exclude=_RASTER_ONLY, helps=_TABLE_HELPS)
@opts.click_options(TableOptions)
def command(table, out, **params):
    """Predict LAI (or another variable) for every row of IN; write IN plus the results to OUT.

    \b
    IN and OUT: .csv, .parquet, or a vector file (.gpkg, .geojson, .shp, .fgb).
    Bands by name (B3 or B03 ...): 0-1 factors, or integers x 1e-4, or --scale/--offset.
    Angles: cosVZA/cosSZA/cosRAA columns, or degrees (sun_zenith, view_zenith,
    relative_azimuth or sun_azimuth + view_azimuth), or the sun computed from a time
    column (or Sentinel-2 product names) and each row's point or lon/lat columns; the
    view where none is given: --view-zenith/--view-azimuth (nadir), said in the log.
    Added columns: {VAR}, '{VAR} flags' (SNAP bits; 255: an input missing),
    '{VAR} uncertainty' (--uncertainty), the angle cosines it computed, and with
    --calibration FILE '{VAR} Calibrated'.
    A row and a raster pixel of the same values give the same results.

    \b
    Example:
      vercye-lai predict-table samples.csv samples_lai.csv --model sl2p --uncertainty
    """
    predict = opts.from_cli(PredictOptions, params, workers=1)
    options = opts.from_cli(TableOptions, params)
    df = read_table(table, layer=options.layer)
    res = predict_table(df, predict=predict, options=options, path=table)
    write_table(res, out)
    first = predict.variables[0]
    n = int(res[first].notna().sum())
    f = res[f"{first} flags"]
    hazy = int((((f & FLAG_HAZE) != 0) & (f != FLAG_NODATA)).sum()) if predict.haze == "mask" else 0
    stdout.print(f"predict-table: {n} of {len(res)} row(s) predicted ({predict.model}, "
                 f"{', '.join(predict.variables)}" + (f"; {hazy} masked as hazy" if hazy else "") + f") -> {out}")
