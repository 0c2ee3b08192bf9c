"""``vercye-lai quicklook``: a PNG of one analysis (LAI curve and max-LAI map)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import console

log = logging.getLogger(__name__)


@click.command("quicklook")
@click.argument("csv", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("max_tif", metavar="MAX", type=click.Path(dir_okay=False, path_type=Path))
@opts.output_option(help="PNG to write [default: {stem}_QUICKLOOK.png beside CSV].")
@click.option("--geometry", "geometry_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None,
              help="Vector file to outline on the map [default: the outline of the map's "
              "valid pixels].")
@click.option("--dpi", type=click.IntRange(min=30), default=130, show_default=True,
              help="Resolution of the PNG.")
def command(csv, max_tif, output, geometry_path, dpi):
    """Draw CSV (an analyze _STATS.csv) and MAX (its _MAX.tif) into one PNG.

    Left: mean LAI over the season (observed dates as dots, the gap-filled daily line,
    a ±1 std band, the adjusted mean when an adjustment was applied, and the daily
    cloud/no-data share as light bars). Right: the max-LAI map with a colour bar and
    the geometry outline.
    """
    from vercye_lai.analysis.quicklook import quicklook

    png = quicklook(csv, max_tif, out=output, geometry_path=geometry_path, dpi=dpi)
    console.print(f"quicklook: {png}", highlight=False, soft_wrap=True)
