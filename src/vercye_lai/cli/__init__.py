"""The ``vercye-lai`` command line: a click group with one module per subcommand."""

from vercye_lai.cli.main import cli

__all__ = ["cli"]
