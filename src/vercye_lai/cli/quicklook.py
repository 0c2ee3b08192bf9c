"""``vercye-lai quicklook``: a PNG of one analysis (LAI curve and max-LAI map)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vercye_lai.analysis.quicklook import max_path_for, quicklook
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import console
from vercye_lai.errors import NoDataFoundError

log = logging.getLogger(__name__)


@click.command("quicklook")
@click.argument("paths", nargs=-1, required=True, metavar="CSV [MAX] | FOLDER",
                type=click.Path(path_type=Path))
@opts.output_option(help="PNG to write [default: {stem}_QUICKLOOK.png beside CSV].")
@click.option("--geometry", "geometry_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None,
              help="Vector file to outline on the map [default: the outline of the map's "
              "valid pixels].")
@opts.layer_option
@click.option("--dpi", type=click.IntRange(min=30), default=130, show_default=True,
              help="Resolution of the PNG.")
def command(paths, output, geometry_path, layer, dpi):
    """Draw an analysis' CSV (a _STATS.csv) and its MAX (the _MAX.tif beside it, found by
    name when not given) into one PNG; given a FOLDER, every analysis in it.

    Left: mean LAI over the season (observed dates as dots, the gap-filled daily line,
    a ±1 std band, the adjusted mean when an adjustment was applied, and the daily
    cloud/no-data share as light bars). Right: the max-LAI map with a colour bar and
    the geometry outline.

    \b
    Examples:
      vercye-lai quicklook analysis/R_fields_A_2022-03-01_2022-07-31_STATS.csv
      vercye-lai quicklook analysis/            (every _STATS.csv there)
    """
    if len(paths) > 2:
        raise click.UsageError("give CSV [MAX], or one FOLDER")
    if len(paths) == 1 and paths[0].is_dir():
        pairs = [(c, max_path_for(c)) for c in sorted(paths[0].glob("*_STATS.csv")) if not c.name.startswith(".")]
        if not pairs:
            raise NoDataFoundError("no analysis (*_STATS.csv) in the folder", path=paths[0])
        # a zone without a max-LAI map (it covers no pixel centre; --max-bands none) has nothing to draw
        for csv, max_tif in pairs:
            if not max_tif.exists():
                console.print(f"quicklook: {csv.name}: no max-LAI map beside it, skipped", highlight=False,
                              soft_wrap=True)
        pairs = [(c, m) for c, m in pairs if m.exists()]
        if output is not None:
            raise click.UsageError("-o names one PNG: with a FOLDER, each PNG goes beside its CSV")
    else:
        csv = paths[0]
        pairs = [(csv, paths[1] if len(paths) == 2 else max_path_for(csv))]
    for csv, max_tif in pairs:
        png = quicklook(csv, max_tif, out=output, geometry_path=geometry_path, layer=layer, dpi=dpi)
        console.print(f"quicklook: {png}", highlight=False, soft_wrap=True)
