"""``vercye-lai analyze``: daily LAI statistics and max-LAI map of fields or a crop mask."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vercye_lai.analysis import analyze
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import console, progress_bar
from vercye_lai.naming import infer_region_resolution

log = logging.getLogger(__name__)


@click.command("analyze", epilog=opts.ALIASES_EPILOG)
@click.argument("paths", nargs=-1, metavar="LAI_DIR GEOMETRY_PATH [OUT_DIR]",
                type=click.Path(path_type=Path))
@opts.region_option(required=False)
@opts.out_dir_option(required=False, help="Output folder for the CSVs and max-LAI maps (created).")
@opts.resolution_option
@opts.date_options(required=False)
@opts.click_options(AnalysisOptions)
def command(paths, region, out_dir, resolution, start_date, end_date, **params):
    """Per-day LAI statistics of GEOMETRY_PATH from LAI_DIR/{REGION}_{res}m_{date}_LAI.tif.

    \b
    Writes to OUT_DIR, for each zone (poly_iter: each polygon, named by --id-column):
      {REGION}_{geometry}[_{id}]_{start}_{end}_STATS.csv  one row per day
      {REGION}_{geometry}[_{id}]_{start}_{end}_MAX.tif    per-pixel max LAI
    ({REGION}_ is left out when the geometry's name starts with it.)
    Dates default to the first and last LAI file. Only the window of each raster that
    covers the geometry is read; geometries and crop masks may have any CRS, resolution
    and extent. Outputs replace existing ones only when the run completes.

    \b
    Example:
      vercye-lai analyze lai/ fields.gpkg --region poltava -o analysis/ --adjustment wheat
    """
    if len(paths) == 4 and region is None and out_dir is None:  # LAI_DIR OUTDIR REGION GEOMETRY
        lai_dir, out_dir, region, geometry_path = paths[0], paths[1], str(paths[2]), paths[3]
    else:
        (lai_dir, geometry_path), out_dir = opts.resolve_inout(paths, out_dir, inputs=2, what="OUT_DIR")
    options = opts.from_cli(AnalysisOptions, params)
    region, resolution = infer_region_resolution(lai_dir, region, resolution, suffix=options.variable,
                                                 extensions=(".tif",))

    with progress_bar(transient=True) as bar:
        task = bar.add_task("dates", total=None)
        result = analyze(
            lai_dir, out_dir, region, geometry_path, resolution=resolution, start=start_date,
            end=end_date, options=options,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    lo, hi = min(z.n_observed for z in result.zones), max(z.n_observed for z in result.zones)
    obs = str(lo) if lo == hi else f"{lo}-{hi}"
    console.print(
        f"analyze: {len(result.zones)} zone(s), {result.start} to {result.end}, "
        f"{result.n_overlapping}/{result.n_files} LAI files over the geometry, "
        f"{obs} observed days per zone, {len(result.outputs)} files in {out_dir}",
        highlight=False, soft_wrap=True,
    )
    by_why: dict[str, list[str]] = {}
    for name, why in result.skipped.items():  # one line per reason (a national file skipped thousands)
        by_why.setdefault(why, []).append(name)
    for why, names in by_why.items():
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        console.print(f"  {len(names)} zone(s) skipped: each {why}: {shown}", highlight=False, soft_wrap=True,
                      style="yellow")


command.positional_output = True  # OUT as the last positional argument (resolve_inout)
