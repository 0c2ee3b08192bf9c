"""``vercye-lai stack-bands``: input stacks from reflectance GeoTIFFs of named bands."""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path

import click

from vercye_lai.acquire import Region, bands
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar

log = logging.getLogger(__name__)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


@click.command("stack-bands", epilog=opts.ALIASES_EPILOG)
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@opts.region_source_options
@opts.option(
    "--resolution",
    "--res",
    "resolution",
    type=float,
    default=None,
    help="Output pixel size in metres [default: the input's own].",
)
@opts.stack_out_dir_option
@click.option(
    "--time",
    "when",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"]), metavar="YYYY-MM-DDTHH:MM[:SS]",
    default=None,
    help="Acquisition time in UTC (one FILE only) [default: from the Sentinel-2 product name "
    "in the file name, e.g. S2A_MSIL2A_20220305T102921_…].",
)
@opts.click_options(bands.Options)
@opts.overwrite_option
def command(files: tuple[Path, ...], region: str | None, library: str | None, shpfile: str | None,
            resolution: float | None, out_dir: Path, when: dt.datetime | None, overwrite: bool,
            **params) -> None:
    """Build 11-band stacks from reflectance GeoTIFFs written by other tools.

    Each FILE is a multi-band GeoTIFF of surface reflectance with named bands (band
    descriptions such as B02,B03,B04,B05,B06,B07,B8A,B11,B12,SCL; extra bands are
    ignored). Output: OUT_DIR/{region}_{res}m_{date}.tif with bands cosVZA, cosSZA, cosRAA,
    B3, B4, B5, B6, B7, B8A, B11, B12 (int16, scale 1e-4, nodata -32768).

    \b
    - Sun angles: computed (NOAA solar position) for the acquisition time and each
      pixel's position. View angles: assumed (--view-zenith, --view-azimuth).
    - Nodata and, when an SCL band exists, the --scl-mask classes become nodata.
    - --region NAME alone only names the outputs; with --library or --geometry the
      stack is also clipped to the region.
    - Several files of one date: the newest processing baseline, then the larger valid
      share (a reprocessing of one acquisition: the one processed last) is used.
    Existing outputs are kept unless --overwrite.

    \b
    Example:
      vercye-lai stack-bands srf/*.tif --region strickhof -o stacks
    """
    if when is not None and len(files) > 1:
        raise click.UsageError("--time applies to one FILE only")
    if not (region or shpfile):
        raise click.UsageError(
            "give --region NAME (with --library DIR to clip), or --geometry FILE"
        )
    geometry = None
    if library or shpfile:
        region, geometry = opts.resolve_region(region, library, shpfile)
    options = opts.from_cli(bands.Options, params, files=files)
    log.info(
        "view geometry assumed: zenith %g°, azimuth %g° (cosVZA = %.4f)",
        options.view_zenith,
        options.view_azimuth,
        math.cos(math.radians(options.view_zenith)),
    )
    with progress_bar() as progress:
        task = progress.add_task("dates", total=None)
        written = []
        out = bands.acquire(
            Region(region, geometry), options, out_dir, resolution=resolution, when=_utc(when),
            overwrite=overwrite, on_date=lambda d, w: (written.append(w), progress.advance(task)),
        )
    log.info("%d stack(s) written, %d kept, in %s", sum(written), len(out) - sum(written), out_dir)
