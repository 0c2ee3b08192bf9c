"""``vercye-lai demo``: the pipeline on bundled real data."""

from __future__ import annotations

import time
from pathlib import Path

import click

from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar, stdout
from vercye_lai.run.demo import run_demo


@click.command("demo", epilog=opts.ALIASES_EPILOG)
@opts.out_dir_option(required=False, default=Path("vercye-lai-demo"), help="Output folder.")
@opts.workers_option
def command(out_dir, workers):
    """Run the pipeline on bundled real Sentinel-2 data (no network, about a minute).

    \b
    Strickhof (Zurich) 2022 winter-wheat season: 34 dates of L2A surface reflectance,
    10 m, and three field polygons.
      1. stack-bands  reflectance + computed sun angles -> OUT/stacks/
      2. predict      SL2P LAI                          -> OUT/lai/
      3. analyze      each field alone, wheat adjustment -> OUT/analysis/
      4. quicklook    LAI curve + max-LAI map per field  -> OUT/analysis/*.png
      5. field-mean LAI vs 115 in-situ measurements      -> OUT/*_insitu_{matched,metrics,scatter}.*
         (the same as: vercye-lai validate INSITU --series OUT/analysis --zone-column parcel)
      6. for other tools: a NetCDF season cube, the APSIM observed-LAI table, a STAC
         catalogue and report.html (cube: extra 'cube', report: extra 'report')
    Rerunning skips what is already done.
    """
    t0 = time.perf_counter()
    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def step(name, done, total):
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total or None)
            bar.update(tasks[name], completed=done, total=total or None)

        res = run_demo(out_dir, workers=workers, step=step)
    stdout.print("demo done", style="bold green", end="")
    stdout.print(f" in {time.perf_counter() - t0:.0f} s -> {res.out_dir}")
    stdout.print(f"  stacks : {len(res.stacks)} x {res.out_dir / 'stacks'}")
    stdout.print(f"  LAI    : {len(res.lai)} x {res.out_dir / 'lai'}")
    for name, csv in res.stats.items():
        stdout.print(f"  stats  : {csv}")
    for fig in res.figures:
        stdout.print(f"  figure : {fig}")
    stdout.print(f"  in-situ: {res.insitu_csv}")
    for name, path in res.products.items():
        stdout.print(f"  {name:9}: {path}", markup=False)
    stdout.print("\nSL2P field-mean LAI against in-situ green LAI (m2 m-2):")
    stdout.print(res.insitu_table, markup=False, highlight=False)
