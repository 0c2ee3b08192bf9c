"""``vercye-lai stack-stac``: per-date stacks from a STAC catalogue."""

from __future__ import annotations

import click

from vercye_lai.acquire import Region, stac
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar


@click.command(name="stack-stac", epilog=opts.ALIASES_EPILOG)
@opts.region_source_options
@opts.date_options()
@opts.resolution_option_of(20)
@opts.stack_out_dir_option
@opts.click_options(stac.Options)
@opts.overwrite_option
def command(region, library, shpfile, start_date, end_date, resolution, out_dir, overwrite,
            **params):
    """Build one 11-band stack per date from Sentinel-2 L2A items of a STAC catalogue.

    \b
    Each item's B3 B4 B5 B6 B7 B8A B11 B12 and SCL assets are read onto a common grid
    (UTM of the region, --resolution m), converted to reflectance with the item's
    scale/offset (raster:bands, or the BOA offset of processing baseline >= 04.00),
    masked with the SCL classes, and given cosVZA/cosSZA/cosRAA from the granule
    metadata (MTD_TL.xml angle grids) or, failing that, the item's angle properties.
    Items of one date are mosaicked (least cloudy first), clipped to the region and
    written as {region}_{res}m_{date}.tif in -o OUT_DIR; existing dates are skipped.
    Needs the 'stac' extra: pip install 'vercye-lai[stac]'.
    """
    name, geometry = opts.resolve_region(region, library, shpfile)
    options = opts.from_cli(stac.Options, params)
    with progress_bar() as progress:
        bar = progress.add_task("searching STAC", total=None)
        written = stac.acquire(
            Region(name, geometry, start_date, end_date), options, out_dir,
            resolution=resolution, state_dir=None, overwrite=overwrite,
            on_plan=lambda by_date: progress.update(bar, description="dates", total=len(by_date)),
            on_date=lambda date, path: progress.advance(bar),
        )
    click.echo(f"{len(written)} stack(s) in {out_dir}")
