"""Field-mean LAI against in-situ LAI measurements: how far to trust the numbers.

Each in-situ measurement day of a field is paired with that field's daily SL2P mean LAI
(observed or gap-filled) from the ``_STATS.csv`` of ``analyze --mode poly_iter``; several
measurements of one field and day are averaged first, as the field mean is one number.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .io import atomic_output, write_text_atomic

log = logging.getLogger(__name__)


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


def pair_with_insitu(
    stats_csvs: Mapping[str, str | Path], insitu: str | Path, *, field_column: str = "parcel",
    columns: tuple[str, ...] = ("LAI Mean", "LAI Mean Adjusted"),
) -> pd.DataFrame:
    """One row per (field, measurement day): the in-situ mean and the SL2P field means.

    Parameters
    ----------
    stats_csvs
        Field name → its ``_STATS.csv`` (ISO dates).
    insitu
        Vector file of measurements with columns ``date``, ``lai`` and ``field_column``.
    """
    import geopandas as gpd

    obs = gpd.read_file(insitu)
    obs["day"] = pd.to_datetime(obs["date"]).dt.date.astype(str)
    per_day = obs.groupby([field_column, "day"])["lai"].agg(["mean", "count"]).reset_index()
    rows = []
    for field_name, csv in stats_csvs.items():
        stats = pd.read_csv(csv, dtype={"Date": str}).set_index("Date")
        for _, m in per_day[per_day[field_column] == field_name].iterrows():
            if m["day"] not in stats.index:
                continue
            s = stats.loc[m["day"]]
            if not np.isfinite(s[columns[0]]):
                continue  # outside the first..last observation: no extrapolation
            rows.append({"field": field_name, "date": m["day"], "n_measurements": int(m["count"]),
                         "insitu_lai": float(m["mean"]), "interpolated": int(s["interpolated"]),
                         **{c: float(s[c]) for c in columns}})
    return pd.DataFrame(rows)


def agreement_table(pairs: pd.DataFrame, columns: tuple[str, ...] = ("LAI Mean", "LAI Mean Adjusted")) -> str:
    """A Markdown table of n, RMSE, bias and r per estimate column."""
    lines = ["| estimate | n | RMSE | bias | r |", "| --- | --- | --- | --- | --- |"]
    for c in columns:
        a = Agreement.of(pairs[c].to_numpy(), pairs["insitu_lai"].to_numpy())
        lines.append(f"| {c} | {a.n} | {a.rmse:.2f} | {a.bias:+.2f} | {a.r:.2f} |")
    return "\n".join(lines)


def plot_agreement(pairs: pd.DataFrame, png: str | Path, *, title: str,
                   columns: tuple[str, ...] = ("LAI Mean", "LAI Mean Adjusted")) -> Path:
    """Scatter of SL2P field means against in-situ LAI, one panel per estimate column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(columns), figsize=(4.6 * len(columns), 4.6), squeeze=False,
                             layout="constrained")
    top = float(np.nanmax(pairs[["insitu_lai", *columns]].to_numpy())) * 1.08
    for ax, c in zip(axes[0], columns):
        a = Agreement.of(pairs[c].to_numpy(), pairs["insitu_lai"].to_numpy())
        for name, g in pairs.groupby("field"):
            ax.scatter(g["insitu_lai"], g[c], label=name, s=28, alpha=0.85)
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


def write_pairs(pairs: pd.DataFrame, csv: str | Path) -> Path:
    write_text_atomic(csv, pairs.to_csv(index=False, float_format="%.4f"))
    return Path(csv)
