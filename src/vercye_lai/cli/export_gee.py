"""``vercye-lai export-gee``: per-date stacks exported from Earth Engine to Google Drive."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vercye_lai.acquire import gee
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar
from vercye_lai.errors import ServiceError

log = logging.getLogger(__name__)


@click.command(name="export-gee", epilog=opts.ALIASES_EPILOG)
@opts.region_source_options
@opts.date_options()
@opts.resolution_option_of(20)
@opts.click_options(gee.Options, exclude=("timeout",))
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON record of submitted tasks [default: ./{region}_{res}m_gee_tasks.json].",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the plan (dates, names, skips) and submit nothing."
)
@click.option("--wait", is_flag=True, help="Poll the tasks until all have finished.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="With --wait: stop polling after this many seconds.",
)
@opts.overwrite_option
def command(region, library, shpfile, start_date, end_date, resolution, state_file, dry_run, wait,
            timeout, overwrite, **params):
    """Export one 11-band stack per date from Earth Engine to Google Drive.

    \b
    For every date with scenes over the region: the day's scenes are cloud-masked
    (SCL classes or Cloud Score+), mosaicked, and exported as
    {region}_{res}m_{date}.tif into the Drive folder {region}/ (Earth Engine splits big
    exports into -0000000000-0000000000 parts; join them with `vercye-lai mosaic`).
    Bands: cosVZA, cosSZA, cosRAA, B3, B4, B5, B6, B7, B8A, B11, B12 as int16 = value × 10000,
    nodata -32768 (the scale cannot be declared in Earth Engine's GeoTIFFs; readers
    assume ×1e-4 for integer stacks without a declared scale).

    \b
    Submitted tasks are recorded in --state-file: a rerun skips dates whose task is still
    READY/RUNNING or COMPLETED and retries FAILED ones. --wait polls until all are done.
    Needs the 'gee' extra (pip install 'vercye-lai[gee]') and an authenticated account:
    on a headless server run `earthengine authenticate --auth_mode=notebook` once.
    """
    name, geometry = opts.resolve_region(region, library, shpfile)
    options = opts.from_cli(gee.Options, params, timeout=timeout)
    resolution = options.export_resolution(resolution)  # Landsat and HLS: 30 m
    res = int(resolution) if float(resolution).is_integer() else resolution
    state_file = Path(state_file or f"{name}_{res}m_gee_tasks.json")
    with progress_bar() as progress:
        task = progress.add_task("submitting exports", total=None)
        plan = gee.export_gee(region=name, geometry=geometry, start=start_date, end=end_date,
                              resolution=resolution, state_file=state_file, options=options,
                              dry_run=dry_run, overwrite=overwrite,
                              on_submit=lambda item: progress.advance(task))
        progress.update(task, total=sum(p.action == "export" for p in plan))
    if dry_run:
        click.echo(gee.format_plan(plan), nl=False)
        return
    submitted = sum(p.action == "export" for p in plan)
    log.info(
        "%d export(s) submitted, %d skipped; state in %s",
        submitted,
        len(plan) - submitted,
        state_file,
    )
    if not wait:
        return
    ee = gee.import_ee()
    state = gee.ExportState(state_file)
    with progress_bar() as progress:
        task = progress.add_task("Earth Engine tasks", total=len(state.active()))
        states = gee.wait_for_tasks(
            ee,
            state,
            timeout=options.timeout,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    click.echo(gee.summarize_states(states))
    failed = {n: state.records[n].error for n, s in states.items() if s in gee.RETRY_STATES}
    for n, err in failed.items():
        log.error("%s: %s", n, err or "no error message")
    if failed:
        raise ServiceError(
            f"{len(failed)} export(s) did not complete; rerun the same command to retry them",
            path=state_file,
        )
