"""APSIM NG observed data from an analysis: the table its PredictedObserved reads.

One row per zone and *observation* date (interpolated, rejected and gap days are not
observations): ``SimulationName`` (from a template such as ``{zone}`` or
``{region}_{zone}``), ``Clock.Today`` (ISO date, no time) and ``{Crop}.Leaf.LAI``, the
zone's mean LAI (or median; adjusted or not, as chosen). APSIM matches observed rows to
simulations by ``SimulationName`` and to days by ``Clock.Today``.
"""

from __future__ import annotations

import logging
import string
from pathlib import Path

import pandas as pd

from vercye_lai.analysis.manifest import read_manifest, zone_csvs
from vercye_lai.analysis.products import STATS_CORE, read_stats_csv
from vercye_lai.errors import InputError
from vercye_lai.io import write_text_atomic
from vercye_lai.naming import RasterName

log = logging.getLogger(__name__)

STATISTICS = {("mean", False): "LAI Mean", ("mean", True): "LAI Mean Adjusted",
              ("median", False): "LAI Median", ("median", True): "LAI Median Adjusted"}


def analysis_zones(analysis_dir: str | Path) -> dict[str, Path]:
    """Zone name → ``_STATS.csv`` of an analysis folder (from its ``MANIFEST.json``).

    Raises
    ------
    InputError
        No readable manifest (not an analysis output folder).
    """
    zones = zone_csvs(Path(analysis_dir))
    if zones is None:
        raise InputError("not an analysis output folder (no readable MANIFEST.json)", path=analysis_dir)
    return zones


def analysis_region(analysis_dir: str | Path) -> str:
    """The region of an analysis, from the names of the LAI files its manifest lists.

    Raises
    ------
    InputError
        The manifest names no LAI file of one region (give ``--region``).
    """
    inputs = ((read_manifest(Path(analysis_dir)) or {}).get("fingerprint") or {}).get("inputs") or []
    regions = set()
    for name, *_ in inputs:
        try:
            regions.add(RasterName.parse(name).region)
        except InputError:
            continue
    if len(regions) != 1:
        raise InputError("the analysis does not name one region (give --region for the template's {region})",
                         path=analysis_dir)
    return regions.pop()


def apsim_table(analysis_dir: str | Path, *, crop: str, region: str = "", template: str = "{zone}",
                statistic: str = "mean", adjusted: bool = False) -> pd.DataFrame:
    """The observed-LAI table of an analysis (see the module docstring).

    Raises
    ------
    InputError
        A template with an unknown field or without ``{zone}`` for several zones (APSIM would
        take every zone's rows for one simulation), an unknown statistic, or a CSV without the column.
    """
    if (statistic, adjusted) not in STATISTICS:
        raise InputError(f"statistic {statistic!r}: choose mean or median")
    column = STATISTICS[(statistic, adjusted)]
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise InputError(f"template {template!r}: {exc}") from None
    if fields - {"zone", "region"}:
        raise InputError(f"template {template!r}: unknown field {sorted(fields - {'zone', 'region'})[0]!r}; "
                         "use {zone} and {region}")
    zones = analysis_zones(analysis_dir)
    if "zone" not in fields and len(zones) > 1:  # APSIM would take all their rows for one simulation
        raise InputError(f"template {template!r} gives the {len(zones)} zones one SimulationName: put {{zone}} in it")
    if "region" in fields and not region:
        region = analysis_region(analysis_dir)
    rows = []
    for zone, csv in zones.items():
        name = template.format(zone=zone, region=region)
        df = read_stats_csv(csv, need=(*STATS_CORE, column))
        observed = (df["interpolated"] == 0) & df[column].notna()
        if "outlier" in df.columns:
            observed &= df["outlier"] == 0
        dates = df.loc[observed, "Date"]
        rows.append(pd.DataFrame({"SimulationName": name, "Clock.Today": dates.dt.strftime("%Y-%m-%d"),
                                  f"{crop}.Leaf.LAI": df.loc[observed, column].round(4)}))
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["SimulationName", "Clock.Today", f"{crop}.Leaf.LAI"])
    return out


def export_apsim(analysis_dir: str | Path, out: str | Path, **kw) -> Path:
    """Write :func:`apsim_table` as a CSV (atomically); ``kw`` as there."""
    table = apsim_table(analysis_dir, **kw)
    if table.empty:
        log.warning("%s: no observation to export", analysis_dir)
    return write_text_atomic(Path(out), table.to_csv(index=False))
