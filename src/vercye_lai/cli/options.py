"""Option decorators shared by several subcommands (one definition, one help text)."""

from __future__ import annotations

import datetime as dt

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
