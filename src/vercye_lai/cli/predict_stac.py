"""``vercye-lai predict-stac``: LAI straight from a STAC search, no stacks written."""

from __future__ import annotations

import logging

import click

from vercye_lai.acquire import Region
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar, stdout
from vercye_lai.predict import PredictOptions, PredictResult, direct
from vercye_lai.run.executor import DaskExecutor, DaskSettings
from vercye_lai.system import default_workers

log = logging.getLogger(__name__)


@click.command("predict-stac", epilog=opts.ALIASES_EPILOG)
@opts.region_source_options
@opts.date_options()
@opts.resolution_option_of(20)
@opts.out_dir_option(help="Output folder of the products {region}_{res}m_{date}_{VAR}.tif (created).")
@opts.click_options(direct.Options)
@opts.click_options(PredictOptions, exclude=("landsat_model", "scale", "offset", "calibration", "block_size"))
@opts.workers_option
@opts.option("--scheduler", default=None, metavar="ADDRESS",
             help="A running Dask scheduler to compute on (default: a LocalCluster of --workers processes).")
@opts.overwrite_option
def command(region, library, shpfile, start_date, end_date, resolution, out_dir, workers, scheduler, overwrite,
            **params):
    """Predict LAI for every date of a region straight from Sentinel-2 L2A items of a STAC
    catalogue: search -> stack-stac's windows as lazy Dask chunks (SCL mask, --cloud-buffer) -> SL2P ->
    OUT_DIR/{region}_{res}m_{date}_{VAR}.tif (+ _flags, _uncertainty), the products of
    `stack-stac` + `predict`, equal to the bit, without writing the stacks.

    \b
    The chunks of each date are computed on Dask (a LocalCluster by default, or --scheduler)
    and written as they complete: memory is bounded by --chunk, not by the region. Dates whose
    products are complete are skipped (--overwrite to redo). Needs the 'direct' extra:
    pip install 'vercye-lai[direct]'.

    \b
    Example:
      vercye-lai predict-stac --geometry field.geojson --start-date 2024-04-01 --end-date 2024-09-30 -o lai/
    """
    name, geometry = opts.resolve_region(region, library, shpfile)
    source = opts.from_cli(direct.Options, params)
    workers = workers or default_workers()
    options = opts.from_cli(PredictOptions, params, workers=workers, overwrite=overwrite)
    with DaskExecutor(DaskSettings(scheduler_address=scheduler, n_workers=workers)) as ex, progress_bar() as bar:
        task = bar.add_task("dates", total=None)

        def on_done(res: PredictResult):
            bar.advance(task)
            if res.status == "skipped":
                log.info("%s: already complete, skipped", res.source.name)

        results = direct.predict_region(Region(name, geometry, start_date, end_date), source, out_dir,
                                        resolution=resolution, predict=options, client=ex.client,
                                        on_plan=lambda n: bar.update(task, total=n), on_done=on_done)
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped")}
    stdout.print(f"predict-stac {name}: {len(results)} date(s) - {counts['done']} done, {counts['skipped']} "
                 f"skipped ({sum(r.seconds for r in results):.1f} s) -> {out_dir}")
