"""``vercye-lai stack-hls``: input stacks from local HLS L30/S30 granules."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from ..acquire.hls import Options
from .options import (
    ALIASES_EPILOG,
    click_options,
    from_cli,
    overwrite_option,
    region_source_options,
    check_source,
    date_options,
    resolution_option_of,
    resolve_region,
    stack_out_dir_option,
)
from .ui import progress_bar, stdout


log = logging.getLogger(__name__)


@click.command("stack-hls", epilog=ALIASES_EPILOG)
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@region_source_options
@resolution_option_of(30)
@date_options(required=False)
@stack_out_dir_option
@click_options(Options)
@overwrite_option
def command(paths, region, library, shpfile, resolution, start_date, end_date, out_dir, overwrite,
            **params) -> None:
    """Build one stack per date and product from HLS v2.0 (or v1.5) granules.

    PATHS are granule COGs or folders of them (HLS.{L30|S30}.T{tile}.{YYYYDOY}T{HHMMSS}.v2.0.{band}.tif,
    searched recursively); or, with --catalog and the dates, the granules of a STAC catalogue
    (planetary-computer; nasa: CMR-STAC, reading needs EARTHDATA_TOKEN or ~/.netrc, never
    logged). The tiles of one date are mosaicked.

    \b
    Output: OUT_DIR/{region}_{res}m_{date}_L30.tif with cosVZA, cosSZA, cosRAA, B3, B4, B5,
    B6, B7 in Landsat numbering (for --model sl2p-l8), and _S30.tif with the 11 Sentinel-2
    bands (for the Sentinel-2 networks); int16 x 1e-4, nodata -32768, clipped to the region.
    - Reflectance = DN x 1e-4; fill -9999 (v2.0) or -1000 (v1.5).
    - Pixels with an Fmask bit of --fmask set (default cirrus, cloud, adjacent, shadow,
      snow/ice) are nodata.
    - Angles from the SZA/SAA/VZA/VAA bands (degrees x 100); without them the sun is
      computed from the acquisition time and the view assumed nadir (logged, and tagged).
    Existing outputs are kept unless --overwrite.

    \b
    Example:
      vercye-lai stack-hls hls/ --geometry fields.geojson --region kansas -o stacks/
    """
    from ..acquire.hls import stack_hls

    from ..acquire.hls import stac_hls

    o = from_cli(Options, params, paths=paths)
    name, geometry = resolve_region(region, library, shpfile)
    check_source(paths, o.catalog, start_date, end_date)
    with progress_bar() as bar:
        task = bar.add_task("dates", total=None)
        step = lambda i, n: bar.update(task, completed=i, total=n)  # noqa: E731
        if o.catalog:
            written = stac_hls(o.catalog, region=name, geometry=geometry, start=start_date, end=end_date,
                               resolution=resolution, out_dir=out_dir, products=o.products, fmask=o.fmask,
                               max_cloud=o.max_cloud, overwrite=overwrite, progress=step)
        else:
            written = stack_hls(paths, geometry, name, resolution, out_dir, fmask=o.fmask, kinds=o.products,
                                overwrite=overwrite, progress=step)
    stdout.print(f"stack-hls {name}: {len(written)} stack(s) in {out_dir}")
