"""``vercye-lai export-apsim``: an analysis as APSIM NG observed data."""

from __future__ import annotations

from pathlib import Path

import click

from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import stdout
from vercye_lai.io import write_text_atomic
from vercye_lai.outputs.apsim import apsim_table


@click.command("export-apsim")
@click.argument("analysis_dir", metavar="ANALYSIS_DIR", type=click.Path(file_okay=False, path_type=Path))
@click.argument("out", metavar="OUT.csv", type=click.Path(dir_okay=False, path_type=Path))
@opts.option("--crop", required=True, help="APSIM crop model name, e.g. Wheat or Maize: the column is {Crop}.Leaf.LAI.")
@opts.option("--template", default="{zone}", show_default=True,
        help="SimulationName of each zone: {zone} (the zone's id as the geometry file gives it) and "
        "{region} are replaced; {zone} is needed when there are several zones.")
@opts.option("--region", default="",
             help="The {region} of --template [default: the analysis' region, from its LAI files' names].")
@opts.option("--statistic", type=click.Choice(["mean", "median"]), default="mean", show_default=True,
        help="Zone statistic.")
@opts.option("--adjusted", is_flag=True, help="The adjusted LAI (analyze --adjustment) instead of the estimate.")
def command(analysis_dir, out, crop, template, region, statistic, adjusted):
    """Write the observed LAI of ANALYSIS_DIR (an analyze or run output folder) as the table
    APSIM NG's PredictedObserved reads: SimulationName, Clock.Today, {Crop}.Leaf.LAI — one
    row per zone and observation date (never an interpolated, rejected or gap day).

    \b
    Example:
      vercye-lai export-apsim analysis/poltava/fields observed.csv --crop Wheat --template "{region}_{zone}" \\
          --region poltava --adjusted
    """
    table = apsim_table(analysis_dir, crop=crop, region=region, template=template, statistic=statistic,
                        adjusted=adjusted)
    write_text_atomic(out, table.to_csv(index=False))
    stdout.print(f"export-apsim: {len(table)} observation(s) of {table['SimulationName'].nunique()} zone(s) -> {out}")
