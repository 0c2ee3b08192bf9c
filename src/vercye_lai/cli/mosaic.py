"""``vercye-lai mosaic``: one VRT per region and date over the date's parts."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vercye_lai.acquire.mosaic import build_vrt, find_parts, parts_region
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar
from vercye_lai.naming import stack_name

log = logging.getLogger(__name__)


@click.command("mosaic", epilog=opts.ALIASES_EPILOG)
@click.argument("paths", nargs=-1, metavar="IN_DIR [VRT_DIR]")
@opts.region_option(required=False)
@opts.out_dir_option(required=False, help="Output folder of the VRTs (created).")
@opts.resolution_option_of(20)
@opts.overwrite_option
def command(paths, region, out_dir, resolution: float, overwrite: bool) -> None:
    """Mosaic the parts of each date into VRT_DIR/{REGION}_{RESOLUTION}m_{date}.vrt.

    Parts are the files IN_DIR/{REGION}_{RESOLUTION}m_{date}.tif and the pieces Earth
    Engine splits large exports into, {REGION}_{RESOLUTION}m_{date}-0000000000-0000000000.tif
    etc. A date with a single part gets a VRT pointing at it. Parts must share CRS,
    pixel size and grid, data type, nodata and band count; otherwise the command stops
    naming the file. Source paths are stored relative to the VRT. Up-to-date VRTs are
    kept; a VRT whose parts changed is rewritten. No GDAL programs are needed.

    \b
    Example:
      vercye-lai mosaic downloads/Poltava --region Poltava --resolution 20 -o vrt
    """
    if len(paths) == 4 and region is None and out_dir is None:  # REGION IN_DIR VRT_DIR RESOLUTION
        region, res, out_dir, paths = paths[0], paths[3], Path(paths[2]), paths[1:2]
        resolution = click.FLOAT.convert(res, None, click.get_current_context())
    (in_dir,), vrt_dir = opts.resolve_inout(paths, out_dir, inputs=1, what="VRT_DIR")
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        raise click.UsageError(f"IN_DIR {in_dir} is not a folder")
    if region is None:  # the only region of the parts there
        region = parts_region(in_dir, resolution)

    plan = find_parts(in_dir, region, resolution)
    written = 0
    with progress_bar() as progress:
        task = progress.add_task("dates", total=len(plan))
        for date, parts in plan.items():
            dst = vrt_dir / stack_name(region, resolution, date, ".vrt")
            written += build_vrt(parts, dst, overwrite=overwrite)
            log.debug("%s: %d part(s)", dst.name, len(parts))
            progress.advance(task)
    log.info("%d VRT(s) written, %d up to date, in %s", written, len(plan) - written, vrt_dir)


command.positional_output = True  # OUT as the last positional argument (resolve_inout)
