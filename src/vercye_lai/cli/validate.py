"""``vercye-lai validate``: in-situ measurements against the LAI products."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import stdout
from vercye_lai.insitu.validate import (
    ValidateOptions,
    agreement_tables,
    check_matches,
    match_points,
    match_series,
    metrics_markdown,
    read_insitu,
    write_validation,
)
from vercye_lai.naming import infer_region_resolution

log = logging.getLogger(__name__)


@click.command("validate")
@click.argument("insitu", metavar="INSITU", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("lai_dir", metavar="[LAI_DIR]", type=click.Path(file_okay=False, path_type=Path), required=False)
@opts.region_option(required=False, help="Region name of the LAI files ({region}_{res}m_{date}_{VAR}.tif).")
@opts.resolution_option
@opts.out_dir_option(help="Folder for validation_matched.csv, _metrics.csv/.md and _scatter.png (created).")
@opts.click_options(ValidateOptions)
@opts.option("--stacks", "stacks_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Folder of the input stacks: their band values at each point go into the matched table "
             "(for `calibrate --method refit*`).")
@opts.option("--series", "series_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Compare with the daily field series an analysis wrote in this folder instead "
             "(needs --zone-column).")
def command(insitu, lai_dir, region, resolution, out_dir, stacks_dir, series_dir, **params):
    """Match the in-situ measurements of INSITU (a vector file of points, any CRS, with a date and
    a value column) to the LAI products of LAI_DIR, and measure the agreement.

    \b
    Each point takes the pixel under it (or the mean within --buffer metres) from the
    nearest clear date within --max-days (the earlier on a tie); with --series DIR, the
    analysis' gap-filled daily series of the point's zone on the measurement day
    (measurements of one zone and day averaged). Metrics: n, RMSE, bias, MAE, r, slope,
    overall and per --group-column. Points without an estimate stay in the matched table
    with the reason.

    \b
    Examples:
      vercye-lai validate insitu.gpkg lai/ -o val/ --group-column parcel   (region, resolution: from the files)
      vercye-lai validate insitu.gpkg --series analysis/strickhof/fields --zone-column parcel -o val/
    """
    options = opts.from_cli(ValidateOptions, params)
    if series_dir is None and lai_dir is None:
        raise click.UsageError("give LAI_DIR (or --series DIR)")
    if series_dir is None:
        region, resolution = infer_region_resolution(lai_dir, region, resolution, suffix=options.variable,
                                                     extensions=(".tif",))
    g = read_insitu(insitu, options, points=series_dir is None)
    if series_dir is not None:
        matched = match_series(g, series_dir, options=options)
        columns = [c for c in ("LAI Mean", "LAI Mean Adjusted") if c in matched.columns] or ["LAI Mean"]
        title = f"{series_dir.name}: field series vs in-situ"
    else:
        matched = match_points(g, lai_dir, region, resolution=resolution, options=options, stacks_dir=stacks_dir)
        columns = [options.variable]
        title = f"{region}: SL2P {options.variable} at the in-situ points"
    check_matches(matched, columns[0], insitu)
    paths = write_validation(matched, out_dir, columns=columns, title=title)

    stdout.print(metrics_markdown(agreement_tables(matched, columns)), markup=False)
    n = int(matched[columns[0]].notna().sum())
    stdout.print(f"validate: {n} of {len(matched)} measurement(s) matched -> "
                 f"{', '.join(p.name for p in paths.values())} in {out_dir}", markup=False)
