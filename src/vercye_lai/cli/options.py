"""Option decorators shared by several subcommands (one definition, one help text)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

resolution_option = click.option(
    "--resolution",
    "--res",
    "resolution",
    type=float,
    default=20,
    show_default=True,
    help="Pixel size in metres, as in the file names ({region}_{res}m_{date}).",
)

region_option = click.option(
    "--region", required=True, help="Region name, as in the file names ({region}_{res}m_{date})."
)

overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Recompute outputs that already exist (default: skip them)."
)

workers_option = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Parallel threads [default: number of CPU cores, at most 8].",
)


class DateType(click.ParamType):
    """An ISO date ``YYYY-MM-DD``."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date of the form YYYY-MM-DD", param, ctx)


DATE = DateType()


def date_options(*, required: bool = True):
    """``--start-date`` / ``--end-date`` (the seed's ``--start_date``/``--end_date`` accepted)."""

    def decorator(f):
        f = click.option(
            "--end-date", "--end_date", "end_date", type=DATE, required=required,
            help="Last date, inclusive (YYYY-MM-DD).",
        )(f)
        f = click.option(
            "--start-date", "--start_date", "start_date", type=DATE, required=required,
            help="First date, inclusive (YYYY-MM-DD).",
        )(f)
        return f

    return decorator


def region_source_options(f):
    """``--region NAME`` with ``--library DIR``, or ``--shpfile FILE`` (acquisition commands)."""
    f = click.option(
        "--shpfile", "--geometry", "shpfile", type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="Region geometry file (GeoJSON, shapefile, GeoPackage) instead of the library; "
        "the region name defaults to the file's stem.",
    )(f)
    f = click.option(
        "--library", type=click.Path(exists=True, file_okay=False), default=None,
        help="Region library folder: one {region}.geojson per region (see build-library).",
    )(f)
    f = click.option(
        "--region", default=None,
        help="Region name: {region}.geojson in --library, and the {region} of the file names.",
    )(f)
    return f


def resolve_region(region: str | None, library: str | None, shpfile: str | None):
    """The ``(name, geometry)`` chosen by :func:`region_source_options`.

    Returns
    -------
    tuple
        Region name and its (unioned) shapely geometry in EPSG:4326 (lon/lat degrees).
    """
    from ..regions import load_region, region_geometry, region_name

    if shpfile:
        return region or region_name(shpfile), region_geometry(load_region(shpfile))
    if not (region and library):
        raise click.UsageError("give --region NAME with --library DIR, or --shpfile FILE")
    return region, region_geometry(load_region(region, library))


def _default_scl() -> str:
    from ..acquire.scl import DEFAULT_SCL_MASK

    return ",".join(map(str, DEFAULT_SCL_MASK))


scl_mask_option = click.option(
    "--scl-mask", default=_default_scl(), show_default=True,
    help="SCL classes masked to nodata (comma-separated; '' masks none): 0 no data, "
    "1 defective, 3 cloud shadow, 8/9 cloud, 10 cirrus, 11 snow.",
)


stack_out_dir_option = click.option(
    "--out-dir", "--out_dir", "out_dir", required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder for the stacks {region}_{res}m_{date}.tif (created).",
)
