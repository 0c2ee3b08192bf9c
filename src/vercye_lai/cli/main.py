"""The ``vercye-lai`` click group.

Subcommands are imported lazily (``LazyGroup``): an optional extra is needed only by the
command that uses it, and a broken command module breaks that command alone.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from pathlib import Path

import click

from vercye_lai._version import __version__
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import console
from vercye_lai.errors import LaiError, error_text, printable
from vercye_lai.system import available_cores, limit_malloc_arenas

#: command name -> (module under vercye_lai.cli, one-line help shown by ``--help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "predict": ("predict", "Predict LAI (or another SL2P variable) for every date of a region."),
    "convert-weights": ("convert_weights", "Convert SL2P weights from their Earth Engine CSV form."),
    "models": ("models", "List the bundled SL2P models and their variables."),
    "demo": ("demo", "Run the pipeline on bundled real Sentinel-2 data."),
    "analyze": ("analyze", "Per-date statistics and max-LAI map of a field, fields or crop mask."),
    "quicklook": ("quicklook", "A PNG of an analysis: LAI curve and max-LAI map."),
    "reproject-mask": ("reproject_mask", "Align a crop mask to the grid of the LAI rasters."),
    "build-library": ("build_library", "Build a region library: one GeoJSON per admin unit."),
    "export-gee": ("export_gee", "Export per-date stacks from Google Earth Engine to Drive."),
    "download-gdrive": ("download_gdrive", "Download exported stacks from a Google Drive folder."),
    "mosaic": ("mosaic", "Mosaic the parts of each date into one VRT."),
    "stack-safe": ("stack_safe", "Build stacks from local Sentinel-2 L2A SAFE products."),
    "stack-stac": ("stack_stac", "Build stacks from a STAC catalogue (Earth Search, Planetary Computer)."),
    "stack-hls": ("stack_hls", "Build stacks from HLS L30/S30 granules, files or STAC (Landsat numbering for L30)."),
    "stack-landsat": ("stack_landsat", "Build stacks from Landsat 8/9 Collection 2 Level-2 scenes, files or STAC."),
    "stack-bands": ("stack_bands", "Build a stack from a reflectance GeoTIFF of named bands."),
    "run": ("run", "Run the whole pipeline from a config file."),
    "predict-stac": ("predict_stac", "Predict LAI straight from a STAC search (Dask chunks), no stacks written."),
    "predict-table": ("predict_table", "Predict LAI for the rows of a table (field spectra, samples)."),
    "validate": ("validate", "Match in-situ LAI to the products (points or field series); metrics and plot."),
    "report": ("report", "Write report.html: a self-contained page to look at a run (needs the 'report' extra)."),
    "catalog": ("catalog", "Write a static STAC catalogue of the products under a folder."),
    "cube": ("cube", "Write a region's season of LAI products as one NetCDF or Zarr datacube."),
    "export-apsim": ("export_apsim", "Write an analysis as APSIM NG observed data (SimulationName, Clock.Today, LAI)."),
    "calibrate": ("calibrate", "Fit a correction of SL2P to in-situ LAI, cross-validated by group."),
}

#: ``--help`` lists the commands by pipeline stage, as the packages are laid out
SECTIONS: dict[str, tuple[str, ...]] = {
    "Acquire (vercye_lai.acquire)": ("export-gee", "download-gdrive", "stack-safe", "stack-stac", "stack-hls",
                                     "stack-landsat", "stack-bands", "mosaic", "build-library"),
    "Predict (vercye_lai.predict, vercye_lai.model)": ("predict", "predict-stac", "predict-table", "models", "convert-weights"),
    "Analyze (vercye_lai.analysis)": ("analyze", "quicklook", "reproject-mask"),
    "In situ (vercye_lai.insitu)": ("validate", "calibrate"),
    "Outputs (vercye_lai.outputs)": ("cube", "catalog", "export-apsim", "report"),
    "Run (vercye_lai.run)": ("run", "demo"),
}


#: loggers of the libraries that see credentials (kept at INFO or above, see configure_logging)
SECRET_LOGGERS = ("urllib3", "requests", "requests_oauthlib", "oauthlib", "google", "google_auth_oauthlib",
                  "google_auth_httplib2", "googleapiclient", "httplib2", "botocore", "pystac_client")


class LazyGroup(click.Group):
    """A group whose subcommands live in ``vercye_lai.cli.<module>`` as ``command``."""

    def _module_exists(self, name: str) -> bool:
        return importlib.util.find_spec(f"{__package__}.{COMMANDS[name][0]}") is not None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if self._module_exists(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not self._module_exists(cmd_name):
            return None
        module = importlib.import_module(f"{__package__}.{COMMANDS[cmd_name][0]}")
        command = module.command
        if command.epilog == opts.ALIASES_EPILOG:  # the spellings this command keeps, said from its options
            command.epilog = opts.aliases_epilog(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table, without importing every module; by stage.
        present = set(self.list_commands(ctx))
        width = max(map(len, COMMANDS))  # one column for every section
        for title, names in SECTIONS.items():
            rows = [(n.ljust(width), COMMANDS[n][1]) for n in names if n in present]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM: main() says it in one line (click said "Aborted!" too)
            raise click.exceptions.Exit(130) from None
        # an OS or GDAL error, or a path GDAL cannot take, is reported like ours
        except (LaiError, OSError, UnicodeEncodeError) as exc:
            if ctx.obj and ctx.obj.get("verbosity", 0) > 0:
                raise
            click.secho(printable(f"Error: {error_text(exc)}"), err=True, fg="red")
            ctx.exit(1)


class OnceFilter(logging.Filter):
    """Drops a warning already emitted in this process (same logger, same text): a file
    listed by two steps is reported once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.levelno >= logging.ERROR:
            return True
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _route_warnings() -> None:
    """Python warnings of the libraries go through our logging, one line each, without the
    library's source line; rasterize's transient in-memory dataset warning (it warns before it
    sets the transform it was given, under threads) is not a problem of the user's data."""
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning, module="rasterio.features")
    libs = logging.getLogger("vercye_lai.warnings")

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001 - warnings' API
        where = Path(filename).parent.name if "site-packages" in filename else Path(filename).name
        libs.warning("%s (%s from %s)", str(message).strip(), category.__name__, where)

    warnings.showwarning = show


def configure_logging(verbosity: int) -> None:
    """Configure the root logger once, for the CLI only (the library never does).

    On a terminal, rich's handler; off one (a batch job, a pipe, a log file), plain lines
    that are never wrapped nor padded. A warning is printed once per process.
    """
    from rich.logging import RichHandler

    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_path=verbosity > 0, rich_tracebacks=True)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(console.file)
        fmt = "[%(asctime)s] %(levelname)s %(message)s" + (" (%(name)s)" if verbosity > 0 else "")
    handler.addFilter(OnceFilter())
    logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S", handlers=[handler], force=True)
    _route_warnings()
    # GDAL/rasterio chatter only when asked for
    logging.getLogger("rasterio").setLevel(logging.DEBUG if verbosity > 1 else logging.WARNING)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    if verbosity < 2:  # GDAL's and libtiff's own lines ("ERROR 1: _tiffSeekProc: ...", hundreds on a full
        # disk) only with -vv: what they say reaches the user in the tool's one-line error
        os.environ.setdefault("CPL_LOG", os.devnull)
    if verbosity <= 0:  # a Dask cluster's start/stop chatter (predict-stac, run) only with -v
        # distributed sets its loggers from dask's config when imported (later), in this process
        # and in the worker processes, which inherit the environment
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        logging.getLogger("distributed").setLevel(logging.WARNING)
    # HTTP and OAuth libraries log request bodies and headers at debug level: tokens, codes,
    # the Basic client_id:secret header. Never with -v or -vv; only -vvv lifts this.
    for name in SECRET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbosity >= 3 else max(level, logging.INFO))
    if verbosity >= 3:
        logging.getLogger(__name__).warning(
            "-vvv: HTTP and OAuth libraries log at debug level; the output may hold tokens and secrets")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="vercye-lai")
@click.option("-v", "--verbose", count=True,
              help="More log output (-vv also GDAL's); show tracebacks. HTTP/OAuth libraries stay at "
              "INFO (no token is ever logged) unless -vvv.")
@click.option("-q", "--quiet", count=True, help="Only warnings and errors; no progress bars.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int) -> None:
    """vercye-lai: Sentinel-2, Landsat 8/9 and HLS imagery to Leaf Area Index (LAI) for
    crop-yield modelling.

    \b
    The pipeline, by stage (the sections below):
      acquire   per-date stacks: export-gee + download-gdrive | stack-safe | stack-stac |
                stack-hls | stack-landsat | stack-bands; mosaic joins a date's parts
      predict   SL2P network -> {region}_{res}m_{date}_LAI.tif (predict-table: rows)
      analyze   per-field / crop-mask statistics, gap filling, _STATS.csv, _MAX.tif, quicklook
      in situ   validate against measurements; calibrate
      outputs   cube, STAC catalogue, APSIM observed data, report.html
      run       the whole pipeline from a config (threads, Dask, SLURM/PBS)

    Start with `vercye-lai demo`. Every command has --help.
    """
    verbosity = verbose - quiet
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = verbosity
    configure_logging(verbosity)
    limit_malloc_arenas(available_cores())  # bounded memory in threads (see its docstring)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a scheduler's cancel or time limit, a closed session): unwinds like
    Ctrl-C, so that partial outputs are removed, instead of dying where the signal found us."""


def main() -> None:  # console-script entry point
    stops: list[int] = []
    ends = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]  # no SIGHUP on Windows

    def stop(signum: int, _frame) -> None:
        stops.append(signum)
        if signum == signal.SIGINT:  # a second Ctrl-C interrupts the clean-up too, as users expect
            raise KeyboardInterrupt
        for sig in ends:  # a scheduler's repeated SIGTERM must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        raise Terminated(signum)

    for sig in (signal.SIGINT, *ends):
        # a signal ignored (nohup; SIGINT of a background job) stays so
        if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(sig, stop)
    try:
        cli(prog_name="vercye-lai")
    except SystemExit:
        if stops:  # the exit status says which signal, as the shell's would
            click.echo(f"stopped by {signal.Signals(stops[0]).name}: the outputs under way were removed, "
                       "the complete ones kept (run the command again to go on)", err=True)
            raise SystemExit(128 + stops[0]) from None
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
