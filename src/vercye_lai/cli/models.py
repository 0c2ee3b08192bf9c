"""``vercye-lai models``: the bundled SL2P models."""

from __future__ import annotations

import click
from rich.table import Table

from vercye_lai.cli.ui import console
from vercye_lai.model import DEFAULT_MODEL, MODELS, available_variables, load_network
from vercye_lai.model.registry import UNIT_MODELS, unit_members


@click.command("models")
def command():
    """List the bundled SL2P models, their inputs and variables."""
    table = Table(title="SL2P models (--model)")
    for col in ("model", "inputs", "variables"):
        table.add_column(col)
    for name in MODELS:
        member = unit_members(name)[-1]  # a per-unit model: its units' networks share inputs and variables
        net = load_network(member, "LAI")
        label = f"{name} (default)" if name == DEFAULT_MODEL else name
        if name in UNIT_MODELS:
            label += " (per stack: " + ", ".join(f"S2{u.upper()}→{m}" for u, m in UNIT_MODELS[name].items()) + ")"
        table.add_row(label, ", ".join(net.inputs), ", ".join(available_variables(member)))
    console.print(table)
