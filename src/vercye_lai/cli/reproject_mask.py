"""``vercye-lai reproject-mask``: align a crop mask to the grid of a region's LAI rasters."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vercye_lai.analysis import largest_grid, reproject_mask
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import console
from vercye_lai.naming import find_rasters, infer_region_resolution

log = logging.getLogger(__name__)


@click.command("reproject-mask", epilog=opts.ALIASES_EPILOG)
@click.argument("paths", nargs=-1, metavar="MASK [OUT]", type=click.Path(dir_okay=False, path_type=Path))
@opts.output_option(help="The aligned mask to write (or OUT, the last argument).")
@click.option("--lai-path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="An LAI raster whose grid the mask takes.")
@click.option("--lai-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of {region}_{res}m_{date}_LAI.tif: the mask takes the grid of the "
              "largest one (--region: which one, when it holds several).")
@opts.option("--region", "--lai-region", "lai_region", default=None,
        help="Region name of the files in --lai-dir.")
@opts.resolution_option
@click.option("--variable", default="LAI", show_default=True,
              help="Product suffix of the files in --lai-dir.")
def command(paths, output, lai_path, lai_dir, lai_region, resolution, variable):
    """Resample MASK (non-zero = crop; any CRS, resolution, extent) onto the LAI grid
    (nearest neighbour) and write it to -o OUT.

    \b
    Give either --lai-path P, or --lai-dir D (with --region R when it holds several). analyze --mode raster
    aligns masks on the fly, so this is only needed to inspect or reuse the aligned mask.
    """
    (mask,), out = opts.resolve_inout(paths, output, inputs=1, what="OUT")
    if (lai_path is None) == (lai_dir is None):
        raise click.UsageError("give --lai-path P, or --lai-dir D")
    if lai_dir is not None:
        lai_region, resolution = infer_region_resolution(lai_dir, lai_region, resolution, suffix=variable,
                                                         extensions=(".tif",))
    paths = ([lai_path] if lai_path is not None else
             list(find_rasters(lai_dir, lai_region, resolution, suffix=variable,
                               extensions=(".tif",)).values()))
    ref, grid = largest_grid(paths)
    reproject_mask(mask, out, grid)
    console.print(f"reproject-mask: {out} on the {grid.width}×{grid.height} grid of {ref.name} "
                  f"({grid.crs.to_string()})", highlight=False, soft_wrap=True)


command.positional_output = True  # OUT as the last positional argument (resolve_inout)
