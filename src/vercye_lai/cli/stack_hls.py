"""``vercye-lai stack-hls``: input stacks from HLS L30/S30 granules (files or STAC)."""

from __future__ import annotations

import click

from vercye_lai.acquire.hls import Options, find_granules, search_granules
from vercye_lai.cli import options as opts
from vercye_lai.cli.scenes import scene_source_options, stack_scene_source


@click.command("stack-hls", epilog=opts.ALIASES_EPILOG)
@scene_source_options(Options)
def command(paths, region, library, shpfile, resolution, start_date, end_date, out_dir, overwrite, **params) -> None:
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
    where = dict(paths=paths, region=region, library=library, shpfile=shpfile, resolution=resolution,
                 start_date=start_date, end_date=end_date, out_dir=out_dir, overwrite=overwrite)

    stack_scene_source("stack-hls", Options, params, **where,
                       local=lambda paths, o: find_granules(paths, fmask=o.fmask, kinds=o.products),
                       catalogue=lambda catalog, o, **w: search_granules(catalog, products=o.products, fmask=o.fmask,
                                                                        max_cloud=o.max_cloud, **w))
