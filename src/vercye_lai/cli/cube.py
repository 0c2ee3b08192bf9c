"""``vercye-lai cube``: the LAI products of a region as one NetCDF or Zarr datacube."""

from __future__ import annotations

from pathlib import Path

import click

from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar, stdout
from vercye_lai.naming import infer_region_resolution
from vercye_lai.outputs.cube import NETCDF_CODECS, build_cube
from vercye_lai.regions import read_vector


@click.command("cube")
@click.argument("lai_dir", metavar="LAI_DIR", type=click.Path(file_okay=False, path_type=Path))
@click.argument("out", metavar="OUT.{nc,zarr}", type=click.Path(path_type=Path))
@opts.region_option(required=False)
@opts.resolution_option
@opts.date_options(required=False)
@opts.option("--geometry", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
        help="Cut the cube to the bounds of this vector file (any CRS).")
@opts.layer_option
@opts.option("--bbox", nargs=4, type=float, default=None, metavar="W S E N",
        help="Cut the cube to this lon/lat box (EPSG:4326).")
@opts.option("--like", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
        help="Put every date on this raster's grid (default: the first date's).")
@opts.option("--variable", "variables", multiple=True, default=("LAI",), show_default=True,
        help="Product variables to include (repeat); flags and uncertainty come along where they exist.")
@opts.option("--sensors", default="s2,s30,l30,l8,l9", show_default=True,
        help="Sensors whose products go in (one time step per product).")
@opts.option("--codec", type=click.Choice(list(NETCDF_CODECS)), default="zlib", show_default=True,
        help="NetCDF compression: zlib (deflate, every NetCDF-4 reader; chunks deflated on every core) or "
             "zstd (about twice as fast to write; readers need netCDF-C >= 4.9 with its filter plugins, e.g. "
             "netCDF4-python >= 1.6 wheels; older tools cannot read the data). Zarr: Blosc LZ4 always.")
def command(lai_dir, out, region, resolution, start_date, end_date, geometry, layer, bbox, like, variables, sensors,
            codec):
    """Write the season of REGION in LAI_DIR as one (time, y, x) dataset: NetCDF-4 (.nc) or
    Zarr (.zarr), CF conventions (leaf_area_index, units, _FillValue, a spatial_ref grid
    mapping rioxarray reads, time as dates), written one date at a time.

    \b
    Open it with:  xarray.open_dataset("OUT.nc", decode_coords="all")   (.zarr: engine="zarr")
    Example:
      vercye-lai cube lai/ strickhof.nc --geometry fields.geojson   (region, resolution: from the files)
    """
    region, resolution = infer_region_resolution(lai_dir, region, resolution, suffix=variables[0].upper(),
                                                 extensions=(".tif",))
    shape = None
    if geometry is not None:
        shape = read_vector(geometry, layer=layer).to_crs(4326).union_all()
    with progress_bar() as bar:
        task = bar.add_task("dates", total=None)
        path = build_cube(lai_dir, out, region=region, resolution=resolution, start=start_date, end=end_date,
                          geometry=shape, bbox=bbox, like=like, variables=tuple(v.upper() for v in variables),
                          sensors=tuple(s.strip() for s in sensors.split(",") if s.strip()), codec=codec,
                          progress=lambda i, n: bar.update(task, completed=i, total=n))
    stdout.print(f"cube {region}: -> {path}")
