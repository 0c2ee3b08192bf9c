"""Option decorators shared by the subcommands: one definition, one spelling, one help text.

The conventions are rasterio's: inputs are positional arguments, the output folder is
``-o/--out-dir`` (or, where a command always took one, the last positional argument),
the region is ``--region``. The options of each step come from its options type
(:func:`click_options`), so the CLI, the run config and the library share one definition.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import click

from vercye_lai.naming import resolution_problem
from vercye_lai.options import MISSING, allowed_values, default_of, fields_of
from vercye_lai.regions import load_region, region_geometry, region_name


class AliasedOption(click.Option):
    """An option whose first short and first long spelling are shown in ``--help``; the
    others are hidden aliases (older spellings, the reference implementation's), accepted
    all the same."""

    @property
    def shown_opts(self) -> list[str]:
        """The spellings ``--help`` shows: the first short and the first long one."""
        return [o for o in self.opts if not o.startswith("--")][:1] + [o for o in self.opts if o.startswith("--")][:1]

    @property
    def hidden_opts(self) -> list[str]:
        """The spellings accepted and not shown (older ones, the reference implementation's),
        but those its help names (``--res for short``)."""
        return [o for o in self.opts if o not in self.shown_opts and not re.search(rf"{re.escape(o)}\b", self.help or "")]

    def get_help_record(self, ctx):
        shown, self.opts = self.opts, self.shown_opts
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


def option(*decls, **kw):
    """``click.option`` with :class:`AliasedOption`: later spellings are hidden aliases."""
    return click.option(*decls, cls=AliasedOption, **kw)


def _metres(ctx, param, value):
    """A resolution (:func:`~vercye_lai.naming.resolution_problem`)."""
    if value is not None and (why := resolution_problem(value)):
        raise click.BadParameter(why)
    return value


def resolution_option_of(default: float):
    """``--resolution/--res M`` of a command that writes stacks (HLS and Landsat: 30 m)."""
    return option("--resolution", "--res", "resolution", type=float, default=default, show_default=True,
                  callback=_metres,
                  help="Pixel size in metres, as in the file names ({region}_{res}m_{date}); --res for short.")


#: ``--resolution/--res M`` of a command that reads conventionally named files: by default
#: the only resolution of the region's Sentinel-2 files (:func:`vercye_lai.naming.infer_region_resolution`)
resolution_option = option(
    "--resolution", "--res", "resolution", type=float, default=None, callback=_metres,
    help="Pixel size in metres, as in the file names ({region}_{res}m_{date}); --res for short. "
         "[default: the only one of the region's Sentinel-2 files there, else 20]")


#: ``--layer NAME`` of a command with a ``--geometry`` vector file
layer_option = option("--layer", default=None, help="The layer of --geometry, when the file has several.")


#: a command's epilog that :func:`aliases_epilog` replaces by the older spellings it takes
ALIASES_EPILOG = "(older spellings)"


def aliases_epilog(command: click.Command) -> str | None:
    """What ``--help`` says of the spellings a command keeps for existing scripts: its own
    (a fixed list named spellings some commands reject: reproject-mask listed --outdir and
    --start_date), and positional outputs where it takes them (``positional_output``)."""
    said = ["; ".join(f"{', '.join(p.hidden_opts)} for {'/'.join(p.shown_opts)}" for p in command.params
                      if isinstance(p, AliasedOption) and p.hidden_opts)]
    if getattr(command, "positional_output", False):
        said.append("a positional output folder as in the reference implementation")
    said = [x for x in said if x]
    return f"Older spellings still work for existing scripts: {'; '.join(said)}." if said else None


def region_option(*, required: bool = True, help: str | None = None):
    """``--region NAME``: the region of the file names (one spelling in every command); a
    command that reads named files does not require it (the only region there is taken)."""
    default = "" if required else " [default: the only region of the files there]"
    return option("--region", required=required, default=None,
                  help=(help or "Region name, as in the file names ({region}_{res}m_{date}).") + default)


def out_dir_option(*, required: bool = True, default=None, help: str = "Output folder (created)."):
    """``-o/--out-dir DIR``: the output folder of every command that writes several files.

    ``required`` counts only when no positional output is allowed (see :func:`resolve_inout`).
    """
    return option(
        "-o", "--out-dir", "--out_dir", "--outdir", "--output-dir", "--output_dir", "--out",
        "out_dir", type=click.Path(file_okay=False, path_type=Path), required=required,
        default=default, show_default=default is not None, help=help)


def output_option(*, help: str, required: bool = False):
    """``-o/--output FILE``: the output file of a command that writes one."""
    return option("-o", "--output", "--out", "output", type=click.Path(dir_okay=False, path_type=Path),
                  default=None, required=required, help=help)


def resolve_inout(args: tuple, output, *, inputs: int, what: str = "OUTPUT"):
    """rio's convention: the output is ``-o`` or, without it, the last positional argument.

    Returns
    -------
    tuple
        The ``inputs`` input arguments and the output.
    """
    args = tuple(args)
    if output is None and len(args) == inputs + 1:
        args, output = args[:-1], Path(args[-1])
    if len(args) != inputs or output is None:
        raise click.UsageError(f"expected {inputs} input argument(s) and -o {what} (or {what} "
                               f"as the last argument), got {len(args)} argument(s)")
    return args, output

overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Recompute outputs that already exist (default: skip them)."
)

no_input_option = click.option(
    "--no-input", is_flag=True,
    help="Never wait for a person (a sign-in): fail instead. Implied when stdin is not a terminal.")

workers_option = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Parallel threads [default: the CPU cores this process may use: affinity and cgroup quota].",
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
    """``--start-date`` / ``--end-date`` (``--start_date``/``--end_date`` accepted, hidden)."""

    def decorator(f):
        f = option(
            "--end-date", "--end_date", "end_date", type=DATE, required=required,
            help="Last date, inclusive (YYYY-MM-DD).",
        )(f)
        f = option(
            "--start-date", "--start_date", "start_date", type=DATE, required=required,
            help="First date, inclusive (YYYY-MM-DD).",
        )(f)
        return f

    return decorator


def region_source_options(f):
    """``--region NAME`` with ``--library DIR``, or ``--geometry FILE`` (acquisition commands)."""
    f = option(
        "--geometry", "--shpfile", "shpfile", type=click.Path(exists=True, dir_okay=False),
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
    if shpfile:
        return region or region_name(shpfile), region_geometry(load_region(shpfile))
    if not (region and library):
        raise click.UsageError("give --region NAME with --library DIR, or --geometry FILE")
    return region, region_geometry(load_region(region, library))


def check_source(paths, catalog, start, end) -> None:
    """Files, or a catalogue with dates: one of the two."""
    if bool(paths) == bool(catalog):
        raise click.UsageError("give PATHS (local files) or --catalog (STAC), not both or neither")
    if catalog and not (start and end):
        raise click.UsageError("--catalog needs --start-date and --end-date")


stack_out_dir_option = out_dir_option(
    help="Output folder for the stacks {region}_{res}m_{date}.tif (created).")


# ------------------------------------------------------------------ options from the options types


class SeparatedType(click.ParamType):
    """Items of one type in one value, separated by ``sep`` (``0,1,3``; ``''``: none)."""

    def __init__(self, base: type, sep: str) -> None:
        self.base, self.sep = base, sep
        self.name = f"{base.__name__.upper()}[{sep}...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return tuple(self.base(v) for v in str(value).replace(" ", "").split(self.sep) if v)
        except ValueError:
            self.fail(f"{value!r} is not a {self.sep!r}-separated list of {self.base.__name__} "
                      "values", param, ctx)


class ChoiceOrFile(click.ParamType):
    """One of ``choices``, or the path of an existing file ending in ``suffix``."""

    def __init__(self, choices: list[str], suffix: str) -> None:
        self.choices, self.suffix = choices, suffix
        self.name = f"[{'|'.join(choices)}|FILE{suffix}]"

    def get_metavar(self, param, ctx=None):
        return self.name

    def convert(self, value, param, ctx):
        v = str(value)
        if v in self.choices:
            return v
        if v.lower().endswith(self.suffix):
            if not Path(v).is_file():
                self.fail(f"file {v!r} does not exist", param, ctx)
            return v
        self.fail(f"{v!r} is not one of {', '.join(self.choices)}, nor a {self.suffix} file", param, ctx)


def _click_type(s, k):
    if k.many and s.sep:
        return SeparatedType(k.base, s.sep)
    allowed = allowed_values(s)
    if allowed is not None and s.or_file:
        return ChoiceOrFile([str(a) for a in allowed], s.or_file)
    if allowed is not None:
        return click.Choice([str(a) for a in allowed], case_sensitive=s.case_sensitive)
    bounded = (s.min, s.max) != (None, None)
    if k.base is int:
        return click.IntRange(min=s.min, max=s.max) if bounded else int
    if k.base is float:
        return click.FloatRange(min=s.min, max=s.max) if bounded else float
    if k.base is Path:
        return click.Path(path_type=Path)
    if k.base is dt.date:
        return DATE
    return str


def click_options(cls: type, *, exclude=(), helps: dict[str, str] | None = None):
    """A decorator adding one click option per command-line field of the options type ``cls``.

    Spelling ``--field-name`` (or the field's ``cli``) with its ``aliases`` hidden; a
    boolean defaulting to true is a ``--x/--no-x`` pair, one defaulting to false a flag;
    choices, ranges, defaults and help come from the field. ``helps`` gives a field the help
    of this command where its meaning differs (one text per meaning). The parameters keep
    the field names, for :func:`from_cli`.
    """
    skip = set(exclude)

    def decorator(fn):
        for f, s, k in reversed(fields_of(cls)):
            if s.cli is None or f.name in skip:
                continue
            spelling = s.cli or "--" + f.name.replace("_", "-")
            default = default_of(f)
            help_text = (helps or {}).get(f.name, s.help) + (f" [default: {s.default_help}]" if s.default_help else "")
            if k.base is bool:
                pair = f"{spelling}/--no-{spelling[2:]}" if default else spelling
                fn = option(pair, *s.aliases, f.name, is_flag=True, default=default,
                            show_default=bool(default), help=help_text)(fn)
                continue
            kw = dict(type=_click_type(s, k), multiple=k.many and not s.sep, metavar=s.metavar,
                      help=help_text)
            if default is MISSING:
                kw["required"] = True
            else:
                if s.sep:  # the default as the user would type it (click converts it back)
                    default = s.sep.join(map(str, default))
                kw.update(default=default, show_default=default is not None and not s.default_help)
            fn = option(spelling, *s.aliases, f.name, **kw)(fn)
        return fn

    return decorator


def from_cli(cls: type, params: dict, **given):
    """Build the options type ``cls`` from the parameters :func:`click_options` added
    (popped from ``params``); ``given`` supplies the rest (e.g. ``workers``)."""
    kw = {}
    for f, s, k in fields_of(cls):
        if s.cli is not None and f.name in params:
            v = params.pop(f.name)
            kw[f.name] = tuple(v) if k.many else v
    return cls(**(kw | given))
