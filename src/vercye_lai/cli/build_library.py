"""``vercye-lai build-library``: one GeoJSON per administrative unit."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar
from vercye_lai.regions import plan_library, write_library

log = logging.getLogger(__name__)


@click.command("build-library", epilog=opts.ALIASES_EPILOG)
@click.argument("shpfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@opts.out_dir_option(help="Library folder; one {name}.geojson per feature is written here.")
@click.option(
    "--admin-name-col",
    "--admin_name_col",
    "name_col",
    required=True,
    help="Column with the unit names (e.g. 'name', 'NAME_1', 'ADM1_EN').",
)
@click.option(
    "--level-col",
    default=None,
    help="Column giving the administrative level; a file mixing levels is refused "
    "[default: the first of admin_level, adm_level, level, gadm_level that exists].",
)
@opts.overwrite_option
@click.option("--verbose", is_flag=True, help="List each region as it is written or kept.")
def command(
    shpfile: Path,
    out_dir: Path,
    name_col: str,
    level_col: str | None,
    overwrite: bool,
    verbose: bool,
) -> None:
    """Split SHPFILE (shapefile, GeoPackage, GeoJSON…) into a region library.

    Each feature becomes OUTPUT_DIR/{name}.geojson in EPSG:4326, where {name} is a
    file-system-safe form of its --admin-name-col value (spaces become '_', apostrophes
    are dropped); the original name is kept in the 'original_name' property. Other
    commands then take --region {name} --library OUT_DIR. Existing files are kept
    unless --overwrite. --verbose lists each region with its original name.

    \b
    Example:
      vercye-lai build-library ukraine_admin1.geojson -o library --admin-name-col name
    """
    plan = plan_library(shpfile, name_col=name_col, level_col=level_col)
    with progress_bar() as progress:
        task = progress.add_task("regions", total=len(plan))

        def advance(name: str) -> None:
            if verbose:
                original = plan[name]["original_name"].iloc[0]
                log.info("%s.geojson  (%s = %r)", name, name_col, original)
            progress.advance(task)

        paths = write_library(plan, out_dir, overwrite=overwrite, progress=advance)
    log.info("%d regions in %s", len(paths), out_dir)
