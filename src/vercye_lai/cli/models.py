"""``vercye-lai models``: the bundled SL2P models."""

from __future__ import annotations

import click
from rich.table import Table

from vercye_lai.cli.ui import console
from vercye_lai.model import DEFAULT_MODEL, MODELS, available_variables, load_network


@click.command("models")
def command():
    """List the bundled SL2P models, their inputs and variables."""
    table = Table(title="SL2P models (--model)")
    for col in ("model", "inputs", "variables"):
        table.add_column(col)
    for name in MODELS:
        net = load_network(name, "LAI")
        label = f"{name} (default)" if name == DEFAULT_MODEL else name
        table.add_row(label, ", ".join(net.inputs), ", ".join(available_variables(name)))
    console.print(table)
