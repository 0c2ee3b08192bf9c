"""The ``vercye-lai`` command line: a click group with one module per subcommand."""

from .main import cli

__all__ = ["cli"]
