"""Convert SL2P weights from their Earth Engine CSV form (as the reference implementation's converter does).

``.npz`` holds the raw (unfolded) parameters with the LEAF names, loadable again as
``--model file.npz``; ``.pth`` holds the same arrays as torch tensors for existing tooling
(needs the optional ``torch`` extra).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from vercye_lai.errors import ModelError, require
from vercye_lai.io import atomic_output
from vercye_lai.model.registry import leaf_row, parse_leaf_csv, variable

log = logging.getLogger(__name__)

FORMATS = ("npz", "pth")


def convert_weights(
    csv_path: str | Path, variable_name: str, *, fmt: str = "npz", out: str | Path | None = None
) -> Path:
    """Write one variable's network from a LEAF/Earth Engine CSV as ``.npz`` or ``.pth``.

    Parameters
    ----------
    csv_path
        The CSV (header row, then LAI, fAPAR, fCOVER, CCC, CWC, … rows).
    variable_name
        ``LAI``, ``FAPAR``, ``FCOVER``, ``CCC`` or ``CWC``.
    fmt
        ``"npz"`` or ``"pth"``.
    out
        Output path; default ``{csv stem}_{VARIABLE}.{fmt}`` beside the CSV.
    """
    if fmt not in FORMATS:
        raise ModelError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    csv_path = Path(csv_path)
    var = variable(variable_name)
    raw = dict(leaf_row(parse_leaf_csv(csv_path), var, csv_path))
    raw.pop("id")
    out = Path(out) if out else csv_path.with_name(f"{csv_path.stem}_{var.name}.{fmt}")
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in raw.items()}
    if fmt == "npz":
        buf = io.BytesIO()
        np.savez(buf, variable=np.asarray(var.name), source=np.asarray(csv_path.name), **arrays)
        payload = buf.getvalue()
    else:
        torch = require("torch", "torch")
        buf = io.BytesIO()
        state = {k: torch.tensor(v, dtype=torch.float32) for k, v in arrays.items()}
        torch.save({"variable": var.name, "source": csv_path.name, "state_dict": state}, buf)
        payload = buf.getvalue()
    with atomic_output(out) as tmp:
        tmp.write_bytes(payload)
    log.debug("wrote %s network (%d inputs) to %s", var.name, arrays["in_scale"].size, out)
    return out
