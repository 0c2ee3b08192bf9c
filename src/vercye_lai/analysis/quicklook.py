"""A PNG to check an analysis at a glance: the season's LAI curve and the max-LAI map."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import numpy as np

from vercye_lai.analysis.products import STATS_CORE, read_stats_csv
from vercye_lai.errors import InputError
from vercye_lai.io import atomic_output, open_raster
from vercye_lai.regions import read_vector

log = logging.getLogger(__name__)

#: Above this many map pixels the valid-pixel outline is skipped (too many vertices to draw).
_MAX_OUTLINE_PIXELS = 4_000_000
_DATE = r"\d{4}-\d{2}-\d{2}"
_STEM_RE = re.compile(rf"^(?P<name>.+)_(?P<start>{_DATE})_(?P<end>{_DATE})_STATS$")


#: the observed points of each sensor on the curve (a series of several sensors)
SENSOR_MARKERS = {"s2": ("o", "darkgreen"), "s30": ("D", "tab:olive"), "l30": ("s", "tab:blue"),
                  "l8": ("^", "tab:cyan"), "l9": ("v", "tab:purple")}

def quicklook_path(csv_path: str | Path) -> Path:
    """``…_STATS.csv`` → ``…_QUICKLOOK.png`` beside it."""
    csv_path = Path(csv_path)
    stem = csv_path.stem.removesuffix("_STATS")
    return csv_path.with_name(f"{stem}_QUICKLOOK.png")


def max_path_for(csv_path: str | Path) -> Path:
    """``…_STATS.csv`` → its max-LAI map ``…_MAX.tif`` beside it (as ``analyze`` names them)."""
    csv_path = Path(csv_path)
    if not csv_path.name.endswith("_STATS.csv"):
        raise InputError("not an analysis _STATS.csv (give its _MAX.tif too)", path=csv_path)
    return csv_path.with_name(csv_path.name.removesuffix("_STATS.csv") + "_MAX.tif")


def _read_stats(csv_path: Path):
    return read_stats_csv(csv_path, need=(*STATS_CORE, "LAI Stddev", "Cloud or Snow Percentage"))


def _title(csv_path: Path, tags: dict[str, str]) -> str:
    if {"REGION", "GEOMETRY", "START", "END"} <= tags.keys():
        what = tags["GEOMETRY"]
        if tags.get("MODE") == "poly_iter":
            what += f" · field {tags.get('ZONE', '?')}"
        elif tags.get("MODE") == "raster":
            what += " (crop mask)"
        return f"{tags['REGION']} · {what} · {tags['START']} to {tags['END']}"
    m = _STEM_RE.match(csv_path.stem)  # a MAX.tif without our tags: fall back to the name
    if m:
        return f"{m['name']} · {m['start']} to {m['end']}"
    return csv_path.stem


def quicklook(
    csv_path: str | Path,
    max_path: str | Path,
    *,
    out: str | Path | None = None,
    geometry_path: str | Path | None = None,
    layer: str | None = None,
    dpi: int = 130,
) -> Path:
    """Draw the LAI curve and the max-LAI map of one analysis zone into a PNG.

    Parameters
    ----------
    csv_path
        A ``_STATS.csv`` written by :func:`vercye_lai.analysis.analyze`.
    max_path
        The matching ``_MAX.tif`` (band 1 is drawn; LAI in m²/m², in its own CRS).
    out
        PNG to write; default ``{stem}_QUICKLOOK.png`` beside the CSV.
    geometry_path
        Vector file to outline on the map (reprojected to the map's CRS; ``layer``: its
        layer, as :func:`vercye_lai.regions.read_vector` reads it); default: the outline of
        the map's valid pixels.
    dpi
        Resolution of the PNG.

    Returns
    -------
    Path
        The PNG written (atomically).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.ticker import MaxNLocator

    csv_path = Path(csv_path)
    out = Path(out) if out is not None else quicklook_path(csv_path)
    df = _read_stats(csv_path)
    with open_raster(max_path) as ds:
        lai_max = ds.read(1, masked=True).filled(np.nan).astype(np.float32)
        band = ds.descriptions[0] or "band 1"
        tags = ds.tags()
        bounds, crs, transform = ds.bounds, ds.crs, ds.transform
    title = _title(csv_path, tags)
    adjustment = tags.get("ADJUSTMENT", "none")

    fig, (ax, axm) = plt.subplots(1, 2, figsize=(13, 5.2),
                                  gridspec_kw={"width_ratios": [1.7, 1]}, layout="constrained")
    fig.suptitle(title, fontsize=13, fontweight="bold")

    # --- the season: cloud share (light, behind), ±1 std band, filled line, observations
    axc = ax.twinx()
    axc.set_zorder(ax.get_zorder() - 1)
    ax.patch.set_visible(False)  # let the secondary axis show through
    has_file = df["Cloud or Snow Percentage"].notna()
    axc.bar(df.loc[has_file, "Date"], df.loc[has_file, "Cloud or Snow Percentage"], width=1.0,
            color="0.75", alpha=0.5, label="cloud/snow/no data (%)")
    axc.set_ylim(0, 100)
    axc.set_ylabel("cloud, snow or no data (% of pixels)", color="0.45")
    axc.tick_params(axis="y", colors="0.45")

    obs = (df["interpolated"] == 0) & df["LAI Mean"].notna()
    d_obs, m_obs, s_obs = df.loc[obs, "Date"], df.loc[obs, "LAI Mean"], df.loc[obs, "LAI Stddev"]
    if obs.sum() > 1:
        ax.fill_between(d_obs, (m_obs - s_obs).clip(lower=0), m_obs + s_obs, color="tab:green",
                        alpha=0.18, lw=0, label="±1 std (observed)")
    else:  # a band needs two dates: one observation gets its bar
        ax.errorbar(d_obs, m_obs, yerr=s_obs, fmt="none", ecolor="tab:green", alpha=0.5, capsize=4,
                    label="±1 std (observed)")
    if "LAI Uncertainty" in df and df["LAI Uncertainty"].notna().any():  # predict --uncertainty
        # its bounds as lines: a second filled band over the std band would mix into a colour
        # that is in no legend
        u = df["LAI Uncertainty"]
        ax.plot(df["Date"], (df["LAI Mean"] - u).clip(lower=0), color="tab:orange", lw=0.9, ls=":",
                label="± mean per-pixel uncertainty")
        ax.plot(df["Date"], df["LAI Mean"] + u, color="tab:orange", lw=0.9, ls=":")
    ax.plot(df["Date"], df["LAI Mean"], color="tab:green", lw=1.6, label="mean LAI (filled daily)")
    if adjustment != "none" and "LAI Mean Adjusted" in df:
        ax.plot(df["Date"], df["LAI Mean Adjusted"], color="tab:purple", lw=1.4, ls="--",
                label=f"adjusted mean ({adjustment})")
    if "sensor" in df and df.loc[obs, "sensor"].notna().any():  # several sensors: one marker each
        for sensor, (marker, colour) in SENSOR_MARKERS.items():
            mine = obs & (df["sensor"] == sensor)
            if mine.any():
                ax.plot(df.loc[mine, "Date"], df.loc[mine, "LAI Mean"], marker, ms=5, color=colour, mec="white",
                        mew=0.6, ls="none", label=f"observed, {sensor.upper()} ({int(mine.sum())})")
    else:
        n_obs = int(obs.sum())
        ax.plot(d_obs, m_obs, "o", ms=4.5, color="darkgreen", mec="white", mew=0.6,
                label=f"observed ({n_obs} date{'' if n_obs == 1 else 's'})")
    rejected = df["outlier"] == 1 if "outlier" in df else pd.Series(False, index=df.index)
    if rejected.any():  # what the outlier test took for a missed cloud or shadow
        ax.plot(df.loc[rejected, "Date"], df.loc[rejected, "LAI Mean Rejected"], "x", ms=6.5, mew=1.6,
                color="tab:red", label=f"rejected as outlier ({int(rejected.sum())})")
    ax.set_ylabel("LAI (m²/m²)")
    top = np.nanmax([(m_obs + s_obs).max(), df["LAI Mean"].max(), 0.5]) if obs.any() else 1.0
    ax.set_ylim(0, top * 1.1)
    ax.set_xlim(df["Date"].min() - dt.timedelta(days=1), df["Date"].max() + dt.timedelta(days=1))
    # months for a season, days for a short one (never hours, nor 'Oct 2022' twice)
    span = (df["Date"].max() - df["Date"].min()).days
    if span <= 45:
        ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, -(-(span + 2) // 6))))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b %Y" if span <= 3 else "%d %b"))
    else:
        ax.xaxis.set_major_locator(mdates.MonthLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))
    ax.grid(alpha=0.3)
    handles = [h for a in (ax, axc) for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.85)
    ax.set_title("LAI over the season", fontsize=11)
    if not obs.any():
        ax.text(0.5, 0.5, "no observation", transform=ax.transAxes, ha="center", color="0.4")

    # --- the map, in the raster's CRS, with the geometry outline
    extent = (bounds.left, bounds.right, bounds.bottom, bounds.top)
    finite = np.isfinite(lai_max)
    # robust colour range: one hot pixel must not wash out the field's contrast
    lo, hi = np.nanpercentile(lai_max, [2, 98]) if finite.any() else (0.0, 1.0)
    hi = max(hi, lo + 0.1)
    im = axm.imshow(lai_max, extent=extent, cmap="YlGn", vmin=float(lo), vmax=float(hi), interpolation="nearest")
    # the colour bar says when pixels lie beyond its range (arrows), e.g. one hot pixel
    clipped = (finite.any() and np.nanmin(lai_max) < lo, finite.any() and np.nanmax(lai_max) > hi)
    extend = {(True, True): "both", (True, False): "min", (False, True): "max"}.get(clipped, "neither")
    axm.set_facecolor("0.93")
    if geometry_path is not None:  # read as every vector input is (layers, CRS: clear errors)
        read_vector(geometry_path, layer=layer).to_crs(crs).boundary.plot(ax=axm, color="black", lw=1.0)
        axm.set_xlim(extent[:2])
        axm.set_ylim(extent[2:])
    elif finite.any() and finite.size <= _MAX_OUTLINE_PIXELS:
        from rasterio.features import shapes

        # outline of the valid pixels, along pixel edges: the outer edge only (the holes a
        # cloud left in the map are no boundary of the area)
        for geom, _ in shapes(finite.astype(np.uint8), mask=finite, transform=transform):
            for ring in geom["coordinates"][:1]:
                xy = np.asarray(ring)
                axm.plot(xy[:, 0], xy[:, 1], color="black", lw=0.9)
    # an inset colour bar follows the map's box, which the equal aspect may shrink
    cb = fig.colorbar(im, cax=axm.inset_axes((1.04, 0.0, 0.05, 1.0)), extend=extend)
    cb.set_label(f"{band} (m²/m²)")
    axm.set_title(f"max LAI ({band})", fontsize=11)
    unit = crs.linear_units if crs and crs.is_projected else "°"
    axm.set_xlabel(f"x ({unit}, {crs.to_string() if crs else '?'})", fontsize=8)
    axm.set_ylabel(f"y ({unit})", fontsize=8)
    axm.tick_params(labelsize=7)
    axm.ticklabel_format(useOffset=False, style="plain")
    # a tall narrow (or flat wide) area is shown in a box of at least 1:3, so the map and its
    # tick labels keep room: the margin is the grey background
    width, height = extent[1] - extent[0], extent[3] - extent[2]
    if width < height / 3:
        cx = (extent[0] + extent[1]) / 2
        axm.set_xlim(cx - height / 6, cx + height / 6)
    elif height < width / 3:
        cy = (extent[2] + extent[3]) / 2
        axm.set_ylim(cy - width / 6, cy + width / 6)
    axm.xaxis.set_major_locator(MaxNLocator(3))
    axm.yaxis.set_major_locator(MaxNLocator(5))

    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    log.debug("wrote %s", out)
    return out
