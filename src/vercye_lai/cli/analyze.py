"""``vercye-lai analyze``: daily LAI statistics and max-LAI map of fields or a crop mask."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from ..analysis import ADJUSTMENTS, INTERPOLATIONS, MODES
from ..analysis.products import DATE_FORMATS, MAX_BAND_CHOICES
from .options import date_options, resolution_option
from .ui import console, progress_bar

log = logging.getLogger(__name__)


@click.command("analyze")
@click.argument("lai_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("region")
@click.argument("geometry_path", type=click.Path(dir_okay=False, path_type=Path))
@resolution_option
@click.option("--mode", type=click.Choice(MODES), default="poly_iter", show_default=True,
              help="raster: GEOMETRY_PATH is a crop mask (non-zero = crop); poly_agg: all polygons "
              "of a vector file together; poly_iter: each polygon alone.")
@click.option("--adjustment", type=click.Choice(list(ADJUSTMENTS)), default="none",
              show_default=True,
              help="Crop calibration per pixel: wheat 0.0482L²+0.9161L+0.0026, "
              "maize -0.078L²+1.4L-0.18.")
@date_options(required=False)
@click.option("--variable", default="LAI", show_default=True,
              help="Product suffix in the file names ({region}_{res}m_{date}_{variable}.tif).")
@click.option("--interpolation", type=click.Choice(INTERPOLATIONS), default="akima",
              show_default=True,
              help="Gap filling of the mean and adjusted mean between observations "
              "(never extrapolated; clipped at 0).")
@click.option("--smooth", type=click.Choice(["none", "savgol"]), default="none", show_default=True,
              help="Savitzky-Golay smoothing of the observed means before interpolation.")
@click.option("--smooth-window", type=click.IntRange(min=3), default=5, show_default=True,
              help="Savitzky-Golay window, in observations (odd; shrunk if fewer).")
@click.option("--max-cloud-percent", type=click.FloatRange(0, 100), default=None,
              help="Treat a date as a gap when more than this share (%) of the geometry's pixels "
              "is nodata [default: no limit].")
@click.option("--min-valid-fraction", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Treat a date as a gap when less than this fraction (0-1) of the geometry's "
              "pixels is valid.")
@click.option("--id-column", default="FID", show_default=True,
              help="poly_iter: attribute that names each polygon in the output names "
              "(the row index if absent or not unique).")
@click.option("--all-touched", is_flag=True,
              help="Count every pixel a polygon touches (default: pixels whose centre is inside).")
@click.option("--date-format", type=click.Choice(list(DATE_FORMATS)), default="iso",
              show_default=True,
              help="Date column of the CSV: iso YYYY-MM-DD, or dmy dd/mm/YYYY (the seed's, for "
              "existing APSIM set-ups).")
@click.option("--max-bands", type=click.Choice(list(MAX_BAND_CHOICES)), default="both",
              show_default=True,
              help="Bands of _MAX.tif: estimateLAImax and/or adjustedLAImax; none writes no map.")
def command(lai_dir, outdir, region, geometry_path, resolution, mode, adjustment, start_date,
            end_date, variable, interpolation, smooth, smooth_window, max_cloud_percent,
            min_valid_fraction, id_column, all_touched, date_format, max_bands):
    """Per-day LAI statistics of GEOMETRY_PATH from LAI_DIR/{REGION}_{res}m_{date}_LAI.tif.

    \b
    Writes to OUTDIR, for each zone (poly_iter: each polygon, named by --id-column):
      {REGION}_{geometry}[_{id}]_{start}_{end}_STATS.csv  one row per day
      {REGION}_{geometry}[_{id}]_{start}_{end}_MAX.tif    per-pixel max LAI
    Dates default to the first and last LAI file. Only the window of each raster that
    covers the geometry is read; geometries and crop masks may have any CRS, resolution
    and extent. Outputs replace existing ones only when the run completes.
    """
    from ..analysis import analyze

    with progress_bar(transient=True) as bar:
        task = bar.add_task("dates", total=None)
        result = analyze(
            lai_dir, outdir, region, geometry_path, resolution=resolution, mode=mode,
            adjustment=adjustment, start=start_date, end=end_date, variable=variable,
            interpolation=interpolation, smooth=smooth, smooth_window=smooth_window,
            max_cloud_percent=max_cloud_percent, min_valid_fraction=min_valid_fraction,
            id_column=id_column, all_touched=all_touched, date_format=date_format,
            max_bands=max_bands,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    lo, hi = min(z.n_observed for z in result.zones), max(z.n_observed for z in result.zones)
    obs = str(lo) if lo == hi else f"{lo}-{hi}"
    console.print(
        f"analyze: {len(result.zones)} zone(s), {result.start} to {result.end}, "
        f"{result.n_overlapping}/{result.n_files} LAI files over the geometry, "
        f"{obs} observed days per zone, {len(result.outputs)} files in {outdir}",
        highlight=False, soft_wrap=True,
    )
