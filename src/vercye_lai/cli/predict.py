"""``vercye-lai predict``: SL2P over every date of a region."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from ..model import DEFAULT_MODEL, MODELS, VARIABLES
from ..predict import PredictOptions, PredictResult, default_workers, predict_dir
from .options import date_options, overwrite_option, resolution_option, workers_option
from .ui import progress_bar, stdout

log = logging.getLogger(__name__)


@click.command("predict")
@click.argument("s2_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("lai_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--region", required=True, help="Region name: inputs are {region}_{res}m_{date}.{vrt,tif}.")
@resolution_option
@click.option(
    "--model", default=DEFAULT_MODEL, show_default=True, metavar="NAME|PATH",
    help=f"SL2P coefficients: {', '.join(MODELS)}, or a SNAP auxdata folder / LEAF CSV / .npz.",
)
@click.option(
    "--variable", "variables", multiple=True, default=("LAI",), show_default=True,
    type=click.Choice(list(VARIABLES), case_sensitive=False),
    help="Variable to predict; repeat for several (one read of the input serves all).",
)
@date_options(required=False)
@click.option("--scale", type=float, default=None,
              help="Reflectance = (DN + offset) x scale, overriding the file (L2A >= 04.00: 1e-4).")
@click.option("--offset", type=float, default=None, help="See --scale (L2A >= 04.00: -1000).")
@click.option("--flags/--no-flags", default=True, show_default=True,
              help="Write SNAP-style quality bits to {..}_{VAR}_flags.tif beside each product.")
@click.option("--cog/--no-cog", default=True, show_default=True,
              help="Cloud-optimised layout with overviews (else a plain tiled GeoTIFF).")
@click.option("--block-size", type=click.IntRange(min=64), default=1024, show_default=True,
              help="Pixels a side of each processing block (rounded to the input's tiles).")
@workers_option
@overwrite_option
def command(s2_dir, lai_dir, region, resolution, model, variables, start_date, end_date, scale, offset,
            flags, cog, block_size, workers, overwrite):
    """Predict LAI for every date of REGION: S2_DIR/{region}_{res}m_{date}.{vrt,tif}
    -> LAI_DIR/{region}_{res}m_{date}_LAI.tif.

    \b
    Inputs: 11 bands cosVZA, cosSZA, cosRAA, B3, B4, B5, B6, B7, B8A, B11, B12 (7 bands
    cosVZA, cosSZA, cosRAA, B2, B3, B4, B8 for --model sl2p-10m). Reflectances as 0-1
    floats, or integers with the scale/offset declared in the file or given here;
    integer stacks that declare nothing are read as x 1e-4 (Earth Engine export form).
    Outputs: float32, NaN nodata, tiled, ZSTD-compressed COG. Existing complete outputs
    are skipped (--overwrite to redo); a failed date does not stop the others, and
    the exit code is 1 if any failed.
    """
    variables = tuple(dict.fromkeys(v.upper() for v in variables))
    options = PredictOptions(
        block_size=block_size, workers=workers or default_workers(), scale=scale, offset=offset,
        flags=flags, cog=cog, overwrite=overwrite,
    )
    with progress_bar() as bar:
        overall = bar.add_task("dates", total=None)
        block_task = bar.add_task("", total=None, visible=False)

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
            s2_dir, lai_dir, region=region, resolution=resolution, model=model, variables=variables,
            start=start_date, end=end_date, options=options, on_start=on_start, progress=progress,
            on_done=on_done,
        )
        bar.update(overall, total=len(results))
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
