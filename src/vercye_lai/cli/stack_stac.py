"""``vercye-lai stack-stac``: per-date stacks from a STAC catalogue."""

from __future__ import annotations

import click
from rasterio.enums import Resampling

from ..acquire import stac
from ..acquire.scl import parse_scl_classes
from .options import (
    date_options,
    overwrite_option,
    region_source_options,
    resolution_option,
    resolve_region,
    scl_mask_option,
)
from .ui import progress_bar


@click.command(name="stack-stac")
@click.option(
    "--catalog",
    default="earth-search",
    show_default=True,
    help="'earth-search' (Element 84), 'planetary-computer' (signed; needs the "
    "planetary-computer package), a STAC API URL, or a static catalogue "
    "(catalog.json path or URL).",
)
@click.option(
    "--collection", default="sentinel-2-l2a", show_default=True, help="STAC collection id."
)
@region_source_options
@date_options()
@resolution_option
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder for {region}_{res}m_{date}.tif (created if missing).",
)
@click.option(
    "--crs", default=None, help="Output CRS, e.g. EPSG:32629 [default: UTM zone of the region]."
)
@click.option(
    "--max-cloud",
    type=click.FloatRange(0, 100),
    default=None,
    help="Skip items whose eo:cloud_cover is above this (percent).",
)
@scl_mask_option
@click.option(
    "--resampling",
    type=click.Choice(["nearest", "bilinear", "cubic", "average"]),
    default="bilinear",
    show_default=True,
    help="Resampling of the reflectance bands to the output grid (SCL always nearest).",
)
@overwrite_option
def command(
    catalog,
    collection,
    region,
    library,
    shpfile,
    start_date,
    end_date,
    resolution,
    out_dir,
    crs,
    max_cloud,
    scl_mask,
    resampling,
    overwrite,
):
    """Build one 11-band stack per date from Sentinel-2 L2A items of a STAC catalogue.

    \b
    Each item's B3 B4 B5 B6 B7 B8A B11 B12 and SCL assets are read onto a common grid
    (UTM of the region, --resolution m), converted to reflectance with the item's
    scale/offset (raster:bands, or the BOA offset of processing baseline >= 04.00),
    masked with the SCL classes, and given cosVZA/cosSZA/cosRAA from the granule
    metadata (MTD_TL.xml angle grids) or, failing that, the item's angle properties.
    Items of one date are mosaicked (least cloudy first), clipped to the region and
    written as {region}_{res}m_{date}.tif in --out-dir; existing dates are skipped.
    Needs the 'stac' extra: pip install 'vercye-lai[stac]'.
    """
    name, geometry = resolve_region(region, library, shpfile)
    with progress_bar() as progress:
        bar = progress.add_task("searching STAC", total=None)
        written = stac.stack_stac(
            catalog=catalog,
            collection=collection,
            region=name,
            geometry=geometry,
            start=start_date,
            end=end_date,
            resolution=resolution,
            out_dir=out_dir,
            crs=crs,
            max_cloud=max_cloud,
            scl_classes=parse_scl_classes(scl_mask),
            resampling=Resampling[resampling],
            overwrite=overwrite,
            on_plan=lambda by_date: progress.update(bar, description="dates", total=len(by_date)),
            on_date=lambda date, path: progress.advance(bar),
        )
    click.echo(f"{len(written)} stack(s) in {out_dir}")
