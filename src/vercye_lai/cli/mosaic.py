"""``vercye-lai mosaic``: one VRT per region and date over the date's parts."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .options import overwrite_option
from .ui import progress_bar

log = logging.getLogger(__name__)


@click.command("mosaic")
@click.argument("region")
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("vrt_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("resolution", type=float)
@overwrite_option
def command(region: str, in_dir: Path, vrt_dir: Path, resolution: float, overwrite: bool) -> None:
    """Mosaic the parts of each date into VRT_DIR/{REGION}_{RESOLUTION}m_{date}.vrt.

    Parts are the files IN_DIR/{REGION}_{RESOLUTION}m_{date}.tif and the pieces Earth
    Engine splits large exports into, {REGION}_{RESOLUTION}m_{date}-0000000000-0000000000.tif
    etc. A date with a single part gets a VRT pointing at it. Parts must share CRS,
    pixel size and grid, data type, nodata and band count; otherwise the command stops
    naming the file. Source paths are stored relative to the VRT. Up-to-date VRTs are
    kept; a VRT whose parts changed is rewritten. No GDAL programs are needed.

    \b
    Example:
      vercye-lai mosaic Poltava downloads/Poltava vrt 20
    """
    from ..mosaic import build_vrt, find_parts
    from ..naming import stack_name

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
