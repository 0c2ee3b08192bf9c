"""``vercye-lai run CONFIG``: the whole pipeline from one config file."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from vercye_lai.acquire import gdrive_auth
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar, stdout
from vercye_lai.run import EXAMPLE_CONFIG, LOG_NAME, STEPS, load_config, run_pipeline
from vercye_lai.run.executor import EXECUTORS

log = logging.getLogger(__name__)

_STYLE = {"done": "green", "skipped": "dim", "failed": "red", "planned": "cyan"}


class _LogFile(logging.FileHandler):
    """The run's log file: a write that fails (a full disk) must not print a traceback
    per record; the console still shows every message."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.failed = True


def _add_log_file(path: Path) -> logging.Handler:
    """Also log to ``path`` (every record at INFO and above, with times)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _LogFile(path, encoding="utf-8", errors="backslashreplace")  # any file name
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    if root.getEffectiveLevel() > logging.INFO:
        # the file wants INFO; the console keeps the verbosity asked for (-q)
        for h in root.handlers:
            if h.level == logging.NOTSET:
                h.setLevel(root.getEffectiveLevel())
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    return handler


def _print_summary(summary) -> None:
    from rich.table import Table
    from rich.text import Text

    title = "dry run: what would run" if summary.dry_run else f"run summary ({summary.seconds:.1f} s)"
    table = Table(title=title)
    for col, kw in (("step", {}), ("status", {}), ("done", {"justify": "right"}),
                    ("skipped", {"justify": "right"}), ("failed", {"justify": "right"}),
                    ("planned", {"justify": "right"}), ("seconds", {"justify": "right"})):
        table.add_column(col, **kw)
    for s in summary.steps:
        table.add_row(s.step, Text(s.status, style=_STYLE[s.status]), str(s.count("done")), str(s.count("skipped")),
                      str(s.count("failed")), str(s.count("planned")), f"{s.seconds:.1f}")
    stdout.print(table)
    for s in summary.steps:
        for u in s.units:
            if u.status == "failed" or (summary.dry_run and u.status == "planned"):
                stdout.print(f"  {u.step} {u.region} {u.item}: {u.status}" + (f" - {u.reason}" if u.reason else ""),
                             style=_STYLE[u.status])


@click.command("run")
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--example-config", is_flag=True,
              help="Print a commented example config (it runs as printed, on the bundled demo season) and exit.")
@click.option("--dry-run", is_flag=True, help="List what would run (and what is up to date); run nothing.")
@click.option("--only", "only", multiple=True, metavar="STEP",
              type=click.Choice(STEPS),
              help=f"Run only this step ({', '.join(STEPS)}); repeat for several (they run in "
              "pipeline order).")
@click.option("--executor", "executor", type=click.Choice(EXECUTORS), default=None,
              help="Override executor.kind of the config.")
@click.option("--scheduler-address", default=None, metavar="ADDRESS",
              help="Use a running Dask scheduler (implies --executor dask).")
@opts.no_input_option
def command(config, example_config, dry_run, only, executor, scheduler_address, no_input):
    """Run acquire -> mosaic -> predict -> analyze -> quicklook for every region of CONFIG.

    \b
    CONFIG is a TOML file (YAML with PyYAML installed); start from
      vercye-lai run --example-config > run.toml
    Work whose outputs are complete and newer than their inputs is skipped, so a run
    that was interrupted (even killed) is finished by running it again. A summary is
    written to {output_root}/run_summary.json and a log to {output_root}/run.log; the
    exit code is 1 if anything failed.
    """
    import dataclasses

    if example_config:
        click.echo(EXAMPLE_CONFIG, nl=False)
        return
    if config is None:
        raise click.UsageError("give a CONFIG file (or --example-config)")
    if no_input:  # for every sign-in of this run (the Drive download of a gee source)
        gdrive_auth.NO_INPUT = True
    cfg = load_config(config)
    if scheduler_address:
        executor = "dask"
        cfg = dataclasses.replace(cfg, dask=dataclasses.replace(cfg.dask, scheduler_address=scheduler_address))
    if executor:
        cfg = dataclasses.replace(cfg, executor=executor)
    handler = None if dry_run else _add_log_file(cfg.output_root / LOG_NAME)
    try:
        with progress_bar(transient=True) as bar:
            task = bar.add_task("", total=None)

            def on_step(name):
                bar.update(task, description=name, completed=0, total=None)

            def on_unit(unit):
                bar.advance(task)

            summary = run_pipeline(cfg, only=only or None, dry_run=dry_run, on_step=on_step, on_unit=on_unit)
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
    _print_summary(summary)
    if summary.stopped:
        stdout.print(f"run stopped: {summary.stopped}", style="red")
    if not dry_run:
        stdout.print(f"summary: {cfg.output_root / 'run_summary.json'}  log: {cfg.output_root / LOG_NAME}")
    if not summary.ok:
        raise SystemExit(1)
