"""``vercye-lai predict``: SL2P over every date of a region."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar, stdout
from vercye_lai.naming import infer_region_resolution
from vercye_lai.predict import PredictOptions, PredictResult, predict_dir
from vercye_lai.system import default_workers

log = logging.getLogger(__name__)


@click.command("predict", epilog=opts.ALIASES_EPILOG)
@click.argument("paths", nargs=-1, metavar="S2_DIR [LAI_DIR]", type=click.Path(path_type=Path))
@opts.region_option(required=False, help="Region name: inputs are {region}_{res}m_{date}.{vrt,tif}.")
@opts.out_dir_option(required=False, help="Output folder of the products (created).")
@opts.resolution_option
@opts.date_options(required=False)
@opts.click_options(PredictOptions)
@opts.workers_option
@opts.overwrite_option
def command(paths, region, out_dir, resolution, start_date, end_date, workers, overwrite, **params):
    """Predict LAI for every date of REGION: S2_DIR/{region}_{res}m_{date}.{vrt,tif}
    -> LAI_DIR/{region}_{res}m_{date}_LAI.tif.

    \b
    Inputs: 11 bands cosVZA, cosSZA, cosRAA, B3, B4, B5, B6, B7, B8A, B11, B12 (7 bands
    cosVZA, cosSZA, cosRAA, B2, B3, B4, B8 for --model sl2p-10m). Reflectances as 0-1
    floats, or integers with the scale/offset declared in the file or given here;
    integer stacks that declare nothing are read as x 1e-4 (Earth Engine export form).
    Outputs: int16 with the step declared (LAI x 0.001, nodata -32768; --dtype), tiled,
    ZSTD-compressed COG with AVERAGE overviews. Existing complete outputs
    are skipped (--overwrite to redo); a failed date does not stop the others, and
    the exit code is 1 if any failed.

    \b
    Example:
      vercye-lai predict stacks/ --region poltava -o lai/ --variable LAI --variable FAPAR
    """
    (s2_dir,), lai_dir = opts.resolve_inout(paths, out_dir, inputs=1, what="LAI_DIR")
    region, resolution = infer_region_resolution(s2_dir, region, resolution)
    options = opts.from_cli(PredictOptions, params, workers=workers or default_workers(),
                       overwrite=overwrite)
    with progress_bar() as bar:
        overall = bar.add_task("dates", total=None)  # its total from predict_dir's plan, before any date
        block_task = bar.add_task("", total=None, visible=False)

        def on_plan(n_dates):
            bar.update(overall, total=n_dates)

        def on_start(date, src):
            bar.update(block_task, description=f"  {src.name}", completed=0, total=None, visible=True)

        def progress(done, total):
            bar.update(block_task, completed=done, total=total)

        def on_done(res: PredictResult):
            bar.update(block_task, visible=False)
            bar.advance(overall)
            if res.status == "done":
                log.info("%s: %s valid px in %.1f s", res.source.name, f"{res.n_valid:,}", res.seconds)
            elif res.status == "skipped":
                log.info("%s: already complete, skipped", res.source.name)

        results = predict_dir(
            s2_dir, lai_dir, region=region, resolution=resolution, start=start_date, end=end_date, options=options, on_plan=on_plan, on_start=on_start, progress=progress,
            on_done=on_done,
        )
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    secs = sum(r.seconds for r in results)
    stdout.print(
        f"predict {region}: {len(results)} dates - {counts['done']} done, {counts['skipped']} skipped, "
        f"{counts['failed']} failed ({secs:.1f} s) -> {lai_dir}",
        style="red" if counts["failed"] else None,
    )
    for r in results:
        if r.status == "failed":
            stdout.print(f"  failed: {r.error}", style="red")
    if counts["failed"]:
        raise SystemExit(1)


command.positional_output = True  # OUT as the last positional argument (resolve_inout)
