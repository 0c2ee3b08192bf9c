"""``vercye-lai stack-landsat``: input stacks from Landsat 8/9 Collection 2 Level-2 scenes (files or STAC)."""

from __future__ import annotations

import click

from vercye_lai.acquire.landsat import Options, find_scenes, search_scenes
from vercye_lai.cli import options as opts
from vercye_lai.cli.scenes import scene_source_options, stack_scene_source


@click.command("stack-landsat", epilog=opts.ALIASES_EPILOG)
@scene_source_options(Options)
def command(paths, region, library, shpfile, resolution, start_date, end_date, out_dir, overwrite, **params) -> None:
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
    where = dict(paths=paths, region=region, library=library, shpfile=shpfile, resolution=resolution,
                 start_date=start_date, end_date=end_date, out_dir=out_dir, overwrite=overwrite)

    stack_scene_source("stack-landsat", Options, params, **where,
                       local=lambda paths, o: find_scenes(paths, qa_bits=o.qa_bits),
                       catalogue=lambda catalog, o, **w: search_scenes(catalog, collection=o.collection,
                                                                      qa_bits=o.qa_bits, max_cloud=o.max_cloud, **w))
