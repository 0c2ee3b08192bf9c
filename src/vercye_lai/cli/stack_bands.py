"""``vercye-lai stack-bands``: input stacks from reflectance GeoTIFFs of named bands."""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path

import click

from .options import (
    overwrite_option,
    region_source_options,
    resolve_region,
    scl_mask_option,
    stack_out_dir_option,
)
from .ui import progress_bar

log = logging.getLogger(__name__)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


@click.command("stack-bands")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@region_source_options
@click.option(
    "--resolution",
    "--res",
    "resolution",
    type=float,
    default=None,
    help="Output pixel size in metres [default: the input's own].",
)
@stack_out_dir_option
@click.option(
    "--time",
    "when",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"]),
    default=None,
    help="Acquisition time in UTC (one FILE only) [default: from the Sentinel-2 product name "
    "in the file name, e.g. S2A_MSIL2A_20220305T102921_…].",
)
@click.option(
    "--band-names",
    default=None,
    help="Band names in file order, comma-separated, for files without band descriptions.",
)
@click.option(
    "--scale",
    type=float,
    default=None,
    help="Reflectance = value × scale + offset [default: the file's declared scale, else 1 "
    "for float data, 1e-4 for integers].",
)
@click.option("--offset", type=float, default=None, help="See --scale [default: 0].")
@click.option(
    "--view-zenith",
    type=float,
    default=0.0,
    show_default=True,
    help="Assumed view zenith, degrees (0 = nadir, cosVZA = 1); such files carry no view angles.",
)
@click.option(
    "--view-azimuth",
    type=float,
    default=0.0,
    show_default=True,
    help="Assumed view azimuth, degrees.",
)
@scl_mask_option
@overwrite_option
def command(
    files: tuple[Path, ...],
    region: str | None,
    library: str | None,
    shpfile: str | None,
    resolution: float | None,
    out_dir: Path,
    when: dt.datetime | None,
    band_names: str | None,
    scale: float | None,
    offset: float | None,
    view_zenith: float,
    view_azimuth: float,
    scl_mask: str,
    overwrite: bool,
) -> None:
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
    - Several files of one date: the one processed last (product name) is used.
    Existing outputs are kept unless --overwrite.

    \b
    Example:
      vercye-lai stack-bands srf/*.tif --region strickhof --out-dir stacks
    """
    from ..acquire.bands import newest_per_date, write_band_stack
    from ..acquire.scl import parse_scl_classes
    from ..io import open_raster
    from ..naming import stack_name

    if when is not None and len(files) > 1:
        raise click.UsageError("--time applies to one FILE only")
    if not (region or shpfile):
        raise click.UsageError(
            "give --region NAME (with --library DIR to clip), or --geometry FILE"
        )
    geometry = None
    if library or shpfile:
        region, geometry = resolve_region(region, library, shpfile)
    names = [b.strip() for b in band_names.split(",")] if band_names else None
    classes = parse_scl_classes(scl_mask)
    log.info(
        "view geometry assumed: zenith %g°, azimuth %g° (cosVZA = %.4f)",
        view_zenith,
        view_azimuth,
        math.cos(math.radians(view_zenith)),
    )
    by_date = newest_per_date(files, _utc(when))
    written = 0
    with progress_bar() as progress:
        task = progress.add_task("dates", total=len(by_date))
        for date, src in by_date.items():
            res = resolution
            if res is None:
                with open_raster(src) as ds:
                    res = abs(ds.transform.a)
            dst = out_dir / stack_name(region, res, date)
            written += write_band_stack(
                src,
                dst,
                overwrite=overwrite,
                when=_utc(when),
                resolution=res,
                geometry=geometry,
                band_names=names,
                scale=scale,
                offset=offset,
                view_zenith=view_zenith,
                view_azimuth=view_azimuth,
                scl_classes=classes,
            )
            progress.advance(task)
    log.info("%d stack(s) written, %d kept, in %s", written, len(by_date) - written, out_dir)
