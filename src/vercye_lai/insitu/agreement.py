"""Agreement of estimates with measurements: the figures and the scatter plot that
``validate``, ``calibrate`` and the demo report (see :mod:`vercye_lai.insitu.validate`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vercye_lai.errors import InputError
from vercye_lai.io import atomic_output

log = logging.getLogger(__name__)

#: the values a measurement of each variable can take (in the products' units; a little below 0
#: for a noisy one near 0): beyond them, a unit mistake (percent for a fraction or an LAI,
#: another unit of chlorophyll or water) or a fill value (-1, -9999)
PLAUSIBLE = {"LAI": (-0.5, 15.0), "FAPAR": (-0.05, 1.1), "FCOVER": (-0.05, 1.1), "CCC": (-25.0, 1000.0),
             "CWC": (-0.05, 1.5)}


def check_measurements(values: pd.Series, variable: str, *, column: str, path: str | Path | None) -> None:
    """Refuse measurements of ``variable`` outside what it can be (:data:`PLAUSIBLE`): the
    metrics of percent against fractions, or a calibration fitted to them, are numbers that
    look right and are not.

    Raises
    ------
    InputError
        Naming the column, how many values, the range found and the one expected.
    """
    lo, hi = PLAUSIBLE.get(variable.upper(), (-np.inf, np.inf))
    v = pd.to_numeric(values, errors="coerce")
    bad = (v < lo) | (v > hi)
    if bad.any():
        raise InputError(f"column {column!r}: {int(bad.sum())} of {int(v.notna().sum())} {variable} value(s) outside "
                         f"{lo:g} to {hi:g} (found {v.min():g} to {v.max():g}): another unit (percent?) or a "
                         "fill value? convert or remove them", path=path)


@dataclass(frozen=True)
class Agreement:
    """Agreement of estimates with measurements (same units, LAI m² m⁻²)."""

    n: int
    rmse: float
    bias: float  # mean(estimate - measurement)
    r: float
    mae: float = float("nan")
    slope: float = float("nan")  # of the least-squares line estimate = a + slope · measurement

    @classmethod
    def of(cls, estimate: np.ndarray, measured: np.ndarray) -> Agreement:
        """Pairs where either value is NaN are left out."""
        e, m = np.asarray(estimate, float), np.asarray(measured, float)
        ok = np.isfinite(e) & np.isfinite(m)
        e, m = e[ok], m[ok]
        d = e - m
        if len(d) == 0:
            return cls(0, *(float("nan"),) * 5)
        spread = len(d) > 1 and np.ptp(m) > 0 and np.ptp(e) > 0
        r = float(np.corrcoef(e, m)[0, 1]) if spread else float("nan")
        slope = float(np.polyfit(m, e, 1)[0]) if spread else float("nan")
        return cls(len(d), float(np.sqrt(np.mean(d**2))), float(np.mean(d)), r,
                   float(np.mean(np.abs(d))), slope)

    def as_dict(self) -> dict[str, float]:
        return {"n": self.n, "rmse": self.rmse, "bias": self.bias, "mae": self.mae, "r": self.r,
                "slope": self.slope}


def plot_agreement(pairs: pd.DataFrame, png: str | Path, *, title: str,
                   columns: tuple[str, ...] = ("LAI Mean", "LAI Mean Adjusted"),
                   truth: str = "insitu_lai", group: str | None = "field") -> Path:
    """Scatter of estimates against in-situ LAI, one panel per estimate column, coloured
    by ``group``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(columns), figsize=(4.6 * len(columns), 4.6), squeeze=False,
                             layout="constrained")
    top = float(np.nanmax(pairs[[truth, *columns]].to_numpy(dtype=float))) * 1.08
    for ax, c in zip(axes[0], columns):
        a = Agreement.of(pairs[c].to_numpy(), pairs[truth].to_numpy())
        for name, g in (pairs.groupby(group) if group else [("", pairs)]):
            ax.scatter(g[truth], g[c], label=name or None, s=28, alpha=0.85)
        ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="1:1")
        ax.set(xlim=(0, top), ylim=(0, top), xlabel="in-situ green LAI (m² m⁻²)",
               ylabel=f"SL2P {c} (m² m⁻²)", aspect="equal")
        ax.set_title(f"{c}: n={a.n}, RMSE={a.rmse:.2f}, bias={a.bias:+.2f}, r={a.r:.2f}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    png = Path(png)
    with atomic_output(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return png
