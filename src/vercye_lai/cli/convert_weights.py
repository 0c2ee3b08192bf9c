"""``vercye-lai convert-weights``: SL2P CSV → .npz / .pth."""

from __future__ import annotations

from pathlib import Path

import click

from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import console
from vercye_lai.model import VARIABLES
from vercye_lai.model.convert import FORMATS, convert_weights


@click.command("convert-weights")
@click.argument("csv_path", metavar="CSV", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("variable", type=click.Choice(list(VARIABLES), case_sensitive=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="npz", show_default=True,
              help="npz (numpy, loadable with --model) or pth (torch; needs the 'torch' extra).")
@opts.output_option(help="Output file [default: {CSV stem}_{VARIABLE}.{format} beside the CSV].")
def command(csv_path, variable, fmt, output):
    """Convert one VARIABLE's network from an SL2P CSV in the Earth Engine/LEAF layout.

    The .npz keeps the raw parameters (input scale/offset, hidden and output layers,
    output de-scale) and can be passed back as `predict --model FILE.npz`.
    """
    path = convert_weights(csv_path, variable.upper(), fmt=fmt, out=output)
    console.print(f"wrote {path}")
