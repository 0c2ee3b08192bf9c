"""Terminal output for the CLI: one rich console (stderr) and progress bars."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from vercye_lai.errors import printable


class _Printable:
    """A text stream that never fails on a file name that is not UTF-8."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(printable(text))

    def __getattr__(self, name):
        return getattr(self._stream, name)


class CountColumn(MofNCompleteColumn):
    """``done/total``, or ``done`` alone while the total is not known (never ``34/?``)."""

    def render(self, task):
        if task.total is None:
            return Text(f"{int(task.completed)}", style="progress.download")
        return super().render(task)


class _Console(Console):
    """A console whose output stream (looked up at each write, as rich does, so tests
    can capture it) prints undecodable file-name bytes as ``\xff``."""

    @property
    def file(self):
        return _Printable(Console.file.fget(self))

    @file.setter
    def file(self, new_file) -> None:
        Console.file.fset(self, new_file)


# markup off: messages carry file names and errors, whose "[...]" rich would eat
console = _Console(stderr=True, markup=False)  # progress bars and logs
stdout = _Console(soft_wrap=True, markup=False)  # results and summaries: long paths stay whole


def quiet(ctx: click.Context | None = None) -> bool:
    """True when the user asked for no progress display (``-q``)."""
    ctx = ctx or click.get_current_context(silent=True)
    return bool(ctx and ctx.obj and ctx.obj.get("verbosity", 0) < 0)


@contextlib.contextmanager
def progress_bar(*, transient: bool = False) -> Iterator[Progress]:
    """A rich progress display on a terminal; none with ``-q`` or off a terminal (a batch
    job's log gets the log lines, not bars redrawn as static text at the end)."""
    progress = Progress(
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        CountColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=quiet() or not console.is_terminal,
    )
    with progress:
        yield progress
