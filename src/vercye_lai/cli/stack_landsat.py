"""``vercye-lai stack-landsat``: input stacks from local Landsat 8/9 Collection 2 Level-2 scenes."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from ..acquire.landsat import Options
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


@click.command("stack-landsat", epilog=ALIASES_EPILOG)
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@region_source_options
@resolution_option_of(30)
@date_options(required=False)
@stack_out_dir_option
@click_options(Options)
@overwrite_option
def command(paths, region, library, shpfile, resolution, start_date, end_date, out_dir, overwrite,
            **params) -> None:
    """Build one stack per date from Landsat 8/9 Collection 2 Level-2 scenes.

    PATHS are scene files or folders of them (L?0{8|9}_L2SP_..._SR_B{n}.TIF, _QA_PIXEL.TIF,
    _MTL.txt or _MTL.xml; searched recursively); or, with --catalog and the dates, the
    landsat-c2-l2 items of a STAC catalogue (planetary-computer, earth-search, a URL). The
    scenes of one date are mosaicked.

    \b
    Output: OUT_DIR/{region}_{res}m_{date}_{L8|L9}.tif with cosVZA, cosSZA, cosRAA, B3, B4,
    B5, B6, B7 (Landsat numbering, for --model sl2p-l8); int16 x 1e-4, nodata -32768.
    - Reflectance = DN x REFLECTANCE_MULT_BAND_n + REFLECTANCE_ADD_BAND_n of the MTL's
      Level-2 group (x 2.75e-5 - 0.2); DN 0 is fill.
    - Pixels with a QA_PIXEL bit of --qa-bits set (default fill, dilated cloud, cirrus,
      cloud, shadow, snow) are nodata.
    - Angles from _SZA/_SAA/_VZA/_VAA bands where present; else the sun per pixel from the
      acquisition time (DATE_ACQUIRED, SCENE_CENTER_TIME) and a nadir view (at most 7.5
      degrees off at the swath edge; logged, and tagged).
    Existing outputs are kept unless --overwrite.

    \b
    Example:
      vercye-lai stack-landsat LC09_L2SP_*/ --geometry fields.geojson --region kansas -o stacks/
    """
    from ..acquire.landsat import stack_landsat

    from ..acquire.landsat import stac_landsat

    o = from_cli(Options, params, paths=paths)
    name, geometry = resolve_region(region, library, shpfile)
    check_source(paths, o.catalog, start_date, end_date)
    with progress_bar() as bar:
        task = bar.add_task("dates", total=None)
        step = lambda i, n: bar.update(task, completed=i, total=n)  # noqa: E731
        if o.catalog:
            written = stac_landsat(o.catalog, region=name, geometry=geometry, start=start_date, end=end_date,
                                   resolution=resolution, out_dir=out_dir, collection=o.collection,
                                   qa_bits=o.qa_bits, max_cloud=o.max_cloud, overwrite=overwrite, progress=step)
        else:
            written = stack_landsat(paths, geometry, name, resolution, out_dir, qa_bits=o.qa_bits,
                                    overwrite=overwrite, progress=step)
    stdout.print(f"stack-landsat {name}: {len(written)} stack(s) in {out_dir}")
