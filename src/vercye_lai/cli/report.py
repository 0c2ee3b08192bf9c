"""``vercye-lai report``: (re)build report.html of a run."""

from __future__ import annotations

from pathlib import Path

import click

from vercye_lai.cli.ui import stdout
from vercye_lai.outputs.report import write_report


@click.command("report")
@click.argument("root", metavar="OUTPUT_ROOT", type=click.Path(exists=True, file_okay=False, path_type=Path))
def command(root):
    """Write OUTPUT_ROOT/report.html: the run summary, a map of each analysis' fields coloured
    by max LAI (click one for its season curve), the fields that need a look first, and the
    in-situ validation found under the folder. One self-contained page (Bokeh, inlined):
    it opens from disk with no network. `run` writes it at its end; needs the 'report' extra.
    """
    path = write_report(root)
    stdout.print(f"report: -> {path} ({path.stat().st_size / 1e6:.1f} MB)")
