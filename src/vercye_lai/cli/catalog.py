"""``vercye-lai catalog``: a static STAC catalogue of the products under a folder."""

from __future__ import annotations

from pathlib import Path

import click

from vercye_lai.cli.ui import stdout
from vercye_lai.outputs.catalog import write_catalog


@click.command("catalog")
@click.argument("root", metavar="OUTPUT_ROOT", type=click.Path(exists=True, file_okay=False, path_type=Path))
def command(root):
    """Write OUTPUT_ROOT/stac/catalog.json: one STAC collection per region, one item per region,
    date and sensor with its products (LAI and the other variables, flags, uncertainty, the
    input stack) as assets, with proj, raster:bands and classification:bitfields; relative
    links, so the folder can be moved or served. `run` writes it at its end.

    \b
    Load it with:  odc.stac.load(pystac.read_file("OUTPUT_ROOT/stac/catalog.json").get_items(recursive=True))
    """
    path = write_catalog(root)
    stdout.print(f"catalog: -> {path}")
