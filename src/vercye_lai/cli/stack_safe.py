"""``vercye-lai stack-safe``: input stacks from local Sentinel-2 L2A SAFE products."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vercye_lai.acquire.safe import Options, group_by_date, open_safe, write_date_stack
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar
from vercye_lai.naming import stack_name

log = logging.getLogger(__name__)


@click.command("stack-safe", epilog=opts.ALIASES_EPILOG)
@click.argument("safes", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@opts.region_source_options
@opts.resolution_option_of(20)
@opts.stack_out_dir_option
@opts.click_options(Options)
@opts.overwrite_option
def command(
    safes: tuple[Path, ...],
    region: str | None,
    library: str | None,
    shpfile: str | None,
    resolution: float,
    out_dir: Path,
    overwrite: bool,
    **params,
) -> None:
    """Build one 11-band stack per date from Sentinel-2 L2A products.

    SAFES are .SAFE folders or .zip files, of any tiles and dates; the tiles of one date
    are mosaicked. Output: OUT_DIR/{region}_{res}m_{date}.tif with bands cosVZA, cosSZA,
    cosRAA, B3, B4, B5, B6, B7, B8A, B11, B12 (int16, scale 1e-4, nodata -32768),
    clipped to the region.

    \b
    - Reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE (MTD_MSIL2A.xml);
      DN 0 is nodata.
    - Bands come from the product resolution closest to --resolution from below:
      'average' when coarsening, 'bilinear' when refining (e.g. B11 at 10 m).
    - Angles: MTD_TL.xml sun and view grids (5 km), interpolated to the pixels; view
      angles averaged over detectors and over the 8 bands.
    - Pixels whose SCL class is in --scl-mask are nodata, and those within
      --cloud-buffer pixels of an SCL cloud or shadow (3, 8, 9, 10).
    Existing outputs are kept unless --overwrite.

    \b
    Example:
      vercye-lai stack-safe S2A_MSIL2A_*.SAFE --region Poltava --library lib \\
          --resolution 20 -o stacks
    """
    options = opts.from_cli(Options, params, safes=safes)
    name, geometry = opts.resolve_region(region, library, shpfile)
    by_date = group_by_date(open_safe(p) for p in safes)
    written = 0
    with progress_bar() as progress:
        task = progress.add_task("dates", total=len(by_date))
        for date, tiles in by_date.items():
            dst = out_dir / stack_name(name, resolution, date)
            written += write_date_stack(
                tiles, geometry, dst, resolution, scl_classes=options.scl_mask, overwrite=overwrite,
                cloud_buffer=options.cloud_buffer
            )
            progress.advance(task)
    log.info("%d stack(s) written, %d kept, in %s", written, len(by_date) - written, out_dir)
