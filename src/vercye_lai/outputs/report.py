"""``report.html``: one self-contained page to look at a run before trusting it.

Built with Bokeh, whose JavaScript and CSS ship inside the Python package and are inlined
(``bokeh.resources.INLINE``): the page opens from disk with no network, no CDN. Bokeh
rather than folium/Leaflet (Leaflet's JS comes from a CDN unless bundled by hand, and a
basemap needs tiles from the network anyway) or plotly (a 3.5 MB bundle per page): fields
are drawn in their own map coordinates, coloured by their max LAI, and a click on one
shows its season from data embedded in the page.

The page shows the run summary (``run_summary.json``), per analysis a map of its fields
coloured by the mean of their max-LAI raster and, for the field clicked, its season:
observed points, the filled curve, the adjusted curve, the uncertainty band, rejected
outliers and the cloud share; the fields that need a look first (few observations, many
outliers, much cloud); and the in-situ validation tables and scatter plots found under
the root. Curves are decimated to every ``step`` days between observations (observations
are all kept) so 1,000 fields stay a few megabytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio

from vercye_lai._version import __version__
from vercye_lai.analysis.fields import known_zone, read_geometries, zone_ids
from vercye_lai.analysis.manifest import MANIFEST_NAME, read_manifest
from vercye_lai.analysis.products import read_stats_csv
from vercye_lai.errors import NoDataFoundError, require
from vercye_lai.io import files_under, write_text_atomic

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
#: what makes a field worth a look first
FEW_OBSERVATIONS, MANY_OUTLIERS, MUCH_CLOUD = 5, 2, 60.0


def _analyses(root: Path) -> list[tuple[Path, dict]]:
    found = ((m.parent, read_manifest(m.parent)) for m in files_under(root, MANIFEST_NAME) if m.name == MANIFEST_NAME)
    return [(folder, manifest) for folder, manifest in found if manifest]


def _max_maps(folder: Path, manifest: dict) -> tuple[Any, dict[str, Any], dict[str, float]]:
    """One read of each zone's max-LAI map: their CRS, each map's footprint and mean."""
    from shapely.geometry import box

    crs, footprints, means = None, {}, {}
    for z in manifest["zones"]:
        path = folder / z["max_tif"] if z.get("max_tif") else None
        if path is None or not path.exists():
            means[str(z["name"])] = float("nan")
            continue
        with rasterio.open(path) as ds:
            crs = crs or ds.crs
            footprints[str(z["name"])] = box(*ds.bounds)
            a = ds.read(1, masked=True)
        means[str(z["name"])] = float(a.mean()) if a.count() else float("nan")
    return crs, footprints, means


def _zone_geometries(manifest: dict, names: list[str], crs, footprints: dict[str, Any]) -> dict[str, Any]:
    """Zone name → shapely geometry in metres: from the geometry file the analysis read (in
    the max maps' CRS, else its UTM zone); else the max maps' ``footprints``."""
    out = dict(footprints)
    fp = manifest.get("fingerprint") or {}
    geometry = (fp.get("geometry") or [None])[0]
    if geometry and Path(geometry).exists() and Path(geometry).suffix.lower() not in (".tif", ".tiff", ".vrt"):
        try:
            options = fp.get("options") or {}
            # read and named as the analysis did (empty geometries dropped, FID = the file's ids)
            g = read_geometries(geometry, layer=options.get("layer"))
            ids = zone_ids(g, options.get("id_column"), path=geometry)
            g = g.to_crs(crs if crs is not None else g.estimate_utm_crs())
            if len(names) == 1 and len(g) > 1:  # poly_agg: one zone of all polygons
                out[names[0]] = g.geometry.union_all()
            else:
                known = set(names)
                for n, geom in zip(ids, g.geometry, strict=True):
                    if (key := known_zone(n, known)) in known:
                        out[key] = geom
        except Exception as exc:  # noqa: BLE001 - the footprints will do
            log.info("%s: fields drawn as the max maps' footprints (%s)", geometry, exc)
    return out


def _series(csv: Path, step: int) -> dict[str, Any]:
    """One zone's season for the page: decimated filled curves, all observations."""
    df = read_stats_csv(csv)
    days = df["Date"]
    ms = ((days - pd.Timestamp("1970-01-01")) // pd.Timedelta(milliseconds=1)).to_numpy(np.int64)
    obs = (df["interpolated"] == 0) & df["LAI Mean"].notna()
    keep = obs | (np.arange(len(df)) % step == 0)

    def page(values: np.ndarray) -> list:  # JSON for the page: null for a gap, 3 decimals
        return [None if x != x else round(float(x), 3) for x in values]

    def col(name: str, mask=None) -> list:
        return page(df[name].to_numpy(float)[keep if mask is None else mask]) if name in df else []

    rejected = (df["outlier"] == 1) if "outlier" in df else pd.Series(False, index=df.index)
    unc = df["LAI Uncertainty"].to_numpy(float) if "LAI Uncertainty" in df else None
    mean = df["LAI Mean"].to_numpy(float)
    # ±1 std: between the observed days, linear (as the quicklook's band joins them); none outside
    std = np.full(len(df), np.nan)
    if "LAI Stddev" in df:
        seen = np.flatnonzero(obs.to_numpy() & df["LAI Stddev"].notna().to_numpy())
        if len(seen):
            std = np.interp(np.arange(len(df)), seen, df["LAI Stddev"].to_numpy(float)[seen], left=np.nan, right=np.nan)
    return {
        "t": ms[keep].tolist(), "mean": col("LAI Mean"), "adj": col("LAI Mean Adjusted"),
        "lo": [] if unc is None else page(np.clip(mean - unc, 0, None)[keep]),
        "hi": [] if unc is None else page((mean + unc)[keep]),
        # ±1 std of the observed days (as the quicklook draws it)
        "slo": page(np.clip(mean - std, 0, None)[keep]), "shi": page((mean + std)[keep]),
        "cloud": col("Cloud or Snow Percentage"),
        "ot": ms[obs.to_numpy()].tolist(), "om": col("LAI Mean", obs.to_numpy()),
        "rt": ms[rejected.to_numpy()].tolist(), "rm": col("LAI Mean Rejected", rejected.to_numpy()),
        "n_obs": int(obs.sum()), "n_outliers": int(rejected.sum()),
        "cloud_mean": float(np.nanmean(df["Cloud or Snow Percentage"])) if df["Cloud or Snow Percentage"].notna().any()
        else float("nan"),
    }


def _flags(s: dict) -> list[str]:
    out = []
    if s["n_obs"] < FEW_OBSERVATIONS:
        out.append(f"{s['n_obs']} observation(s)")
    if s["n_outliers"] > MANY_OUTLIERS:
        out.append(f"{s['n_outliers']} outliers")
    if s["cloud_mean"] == s["cloud_mean"] and s["cloud_mean"] > MUCH_CLOUD:
        out.append(f"{s['cloud_mean']:.0f} % cloud")
    return out


def _analysis_figure(folder: Path, manifest: dict, step: int):
    from bokeh.layouts import column, row
    from bokeh.models import (
        ColorBar,
        ColumnDataSource,
        CustomJS,
        DataRange1d,
        HoverTool,
        LinearAxis,
        LinearColorMapper,
        NumeralTickFormatter,
        Range1d,
        TapTool,
        VBar,
    )
    from bokeh.palettes import YlGn9
    from bokeh.plotting import figure

    names = [str(z["name"]) for z in manifest["zones"]]
    crs, footprints, maxes = _max_maps(folder, manifest)
    geoms = _zone_geometries(manifest, names, crs, footprints)
    series = {n: _series(folder / z["csv"], step) for n, z in zip(names, manifest["zones"])}
    xs, ys, shown = [], [], []
    for n in names:
        g = geoms.get(n)
        if g is None:
            continue
        poly = max(getattr(g, "geoms", [g]), key=lambda p: p.area)  # the largest part of a multipolygon
        x, y = poly.exterior.coords.xy
        xs.append(list(np.round(x, 1)))
        ys.append(list(np.round(y, 1)))
        shown.append(n)
    values = [maxes[n] for n in shown]
    finite = [v for v in values if v == v]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if high - low < 0.5:  # one field (or all alike): a scale with room for ticks around it
        low, high = max(0.0, (low + high) / 2 - 0.5), (low + high) / 2 + 0.5
    # YlGn as the PNGs (quicklook, the demo's maps): light = low LAI, dark green = high
    mapper = LinearColorMapper(palette=list(reversed(YlGn9)), low=low, high=high, nan_color="lightgrey")
    fields = ColumnDataSource({"xs": xs, "ys": ys, "name": shown, "maxlai": values,
                               "n_obs": [series[n]["n_obs"] for n in shown],
                               "look": ["; ".join(_flags(series[n])) or "-" for n in shown]})
    fmap = figure(title=f"{folder.name}: fields by max LAI (click one)", match_aspect=True, width=430, height=430,
                  name="fieldmap",
                  tools="pan,wheel_zoom,box_zoom,reset,tap", x_axis_label="x (m)", y_axis_label="y (m)")
    fmap.patches("xs", "ys", source=fields, fill_color={"field": "maxlai", "transform": mapper},
                 line_color="black", line_width=0.6, selection_line_width=2.5, selection_line_color="red")
    fmap.add_tools(HoverTool(tooltips=[("field", "@name"), ("max LAI", "@maxlai{0.00}"), ("observations", "@n_obs"),
                                       ("look", "@look")]))
    fmap.add_layout(ColorBar(color_mapper=mapper, title="max LAI"), "right")

    first = shown[0] if shown else names[0]
    s0 = series[first]
    # a missing value is a gap (NaN): JSON's null would become 0 in the browser's number arrays
    n0 = len(s0["t"])
    curve = ColumnDataSource({"t": s0["t"], **{k: np.array(s0[k] or [None] * n0, dtype=float)
                                              for k in ("mean", "adj", "lo", "hi", "slo", "shi", "cloud")}})
    points = ColumnDataSource({"t": s0["ot"], "m": s0["om"]})
    rejected = ColumnDataSource({"t": s0["rt"], "m": s0["rm"]})
    # at least a week wide: a one-date season has day ticks, not hours
    fig = figure(title=f"field {first}", x_axis_type="datetime", width=640, height=430, y_axis_label="LAI (m²/m²)",
                 x_range=DataRange1d(min_interval=7 * 86_400_000, range_padding=0.02),
                 name="curve",
                 tools="pan,wheel_zoom,box_zoom,reset,save")
    fig.extra_y_ranges = {"cloud": Range1d(0, 100)}
    fig.add_layout(LinearAxis(y_range_name="cloud", axis_label="cloud, snow or no data (%)"), "right")
    fig.add_glyph(curve, VBar(x="t", top="cloud", width=86400000 * 0.9, fill_color="lightgrey", fill_alpha=0.5,
                              line_alpha=0), y_range_name="cloud")
    # bands as glyphs, so that the legend names them
    fig.varea("t", "slo", "shi", source=curve, fill_color="green", fill_alpha=0.15, legend_label="±1 std (observed)")
    if any(series[n]["lo"] for n in shown):  # predict --uncertainty: named only where it exists
        fig.varea("t", "lo", "hi", source=curve, fill_color="orange", fill_alpha=0.25,
                  legend_label="± mean per-pixel uncertainty")
    lai = [fig.line("t", "mean", source=curve, color="green", line_width=2, legend_label="mean LAI (filled)"),
           fig.line("t", "adj", source=curve, color="purple", line_dash="dashed", legend_label="adjusted"),
           fig.scatter("t", "m", source=points, size=7, color="darkgreen", legend_label="observed"),
           fig.scatter("t", "m", source=rejected, size=9, marker="x", color="red", line_width=2,
                       legend_label="rejected")]
    fig.y_range = DataRange1d(start=0, renderers=lai)  # the cloud bars have their own axis
    for ax in (fmap.xaxis, fmap.yaxis):
        ax.formatter = NumeralTickFormatter(format="0")
    fmap.xaxis.ticker.desired_num_ticks = 3
    fig.legend.location = "top_left"
    fig.legend.click_policy = "hide"
    data = {n: series[n] for n in shown}
    js = CustomJS(args={"fields": fields, "curve": curve, "points": points, "rejected": rejected, "fig": fig,
                        "data": data}, code="""
        const i = fields.selected.indices[0];
        if (i === undefined) { return; }
        const name = fields.data.name[i];
        const s = data[name];
        const n = s.t.length;
        // null (a day without a value) must stay a gap: as a number it would be drawn at 0
        const fill = (a) => (a.length ? a.map((v) => (v === null ? NaN : v)) : new Array(n).fill(NaN));
        curve.data = {t: s.t, mean: fill(s.mean), adj: fill(s.adj), lo: fill(s.lo), hi: fill(s.hi),
                      slo: fill(s.slo), shi: fill(s.shi), cloud: fill(s.cloud)};
        points.data = {t: s.ot, m: s.om};
        rejected.data = {t: s.rt, m: s.rm};
        fig.title.text = "field " + name;
        document.title = "vercye-lai report - field " + name;
    """)
    fields.selected.js_on_change("indices", js)
    fmap.select_one(TapTool).behavior = "select"
    look = sorted(((n, _flags(series[n])) for n in names), key=lambda kv: (-len(kv[1]), kv[0]))
    look = [(n, f) for n, f in look if f]
    return row(fmap, column(fig)), look, len(names)


def _summary_html(root: Path) -> str:
    path = root / "run_summary.json"
    if not path.exists():
        return "<p>No run_summary.json (not written by <code>vercye-lai run</code>).</p>"
    s = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    failed = []
    for step in s.get("steps", []):
        units = step.get("units", [])
        c = {k: sum(u["status"] == k for u in units) for k in ("done", "skipped", "failed", "planned")}
        # the step's wall time (as the command printed it), not the sum of units run in parallel
        secs = step.get("seconds", sum(u.get("seconds", 0) for u in units))
        rows.append(f"<tr><td>{html.escape(step['step'])}</td><td>{c['done']}</td><td>{c['skipped']}</td>"
                    f"<td class='{'bad' if c['failed'] else ''}'>{c['failed']}</td><td>{secs:.1f}</td></tr>")
        failed += [f"<li>{html.escape(step['step'])} {html.escape(u['region'])} {html.escape(str(u['item']))}: "
                   f"{html.escape(u.get('reason', ''))}</li>" for u in units if u["status"] == "failed"]
    head = (f"<p>Started {html.escape(str(s.get('started', '')))}, {s.get('seconds', 0):.1f} s, executor "
            f"{html.escape(str(s.get('executor', '')))}; {'<b>all done</b>' if s.get('ok') else '<b class=bad>not all done</b>'}"
            + (f"; {html.escape(s['stopped'])}" if s.get("stopped") else "") + "</p>")
    table = ("<table><tr><th>step</th><th>done</th><th>skipped</th><th>failed</th><th>seconds</th></tr>"
             + "".join(rows) + "</table>")
    return head + table + (f"<h3>Failures</h3><ul>{''.join(failed)}</ul>" if failed else "")


def _validation_html(root: Path) -> str:
    parts = []
    for md in files_under(root, "_metrics.md"):
        png = md.with_name(md.name.replace("_metrics.md", "_scatter.png"))
        lines = [ln for ln in md.read_text(encoding="utf-8").splitlines() if ln.startswith("|")]
        cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines if not set(ln) <= set("|- ")]
        table = "<table>" + "".join("<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c)}</{'th' if i == 0 else 'td'}>"
                                                    for c in row) + "</tr>" for i, row in enumerate(cells)) + "</table>"
        img = ""
        if png.exists():
            img = f"<img alt='{html.escape(png.name)}' src='data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}'>"
        parts.append(f"<h3>{html.escape(md.name)}</h3>{table}{img}")
    return "".join(parts) or "<p>No in-situ validation under this folder (<code>vercye-lai validate</code>).</p>"


def write_report(root: str | Path, *, step: int = 7) -> Path:
    """Write ``{root}/report.html`` (see the module docstring), atomically.

    Raises
    ------
    NoDataFoundError
        No analysis (``MANIFEST.json``) under ``root``.
    DependencyError
        Bokeh missing (the ``report`` extra).
    """
    require("bokeh", "report")
    from bokeh.embed import components
    from bokeh.resources import INLINE

    root = Path(root)
    analyses = _analyses(root)
    if not analyses:
        raise NoDataFoundError("no analysis (MANIFEST.json) under the folder", path=root)
    figures, sections = [], []
    for folder, manifest in analyses:
        fig, look, n = _analysis_figure(folder, manifest, step)
        figures.append(fig)
        items = "".join(f"<li><b>{html.escape(name)}</b>: {html.escape('; '.join(f))}</li>" for name, f in look[:50])
        more = f"<li>… and {len(look) - 50} more</li>" if len(look) > 50 else ""
        sections.append((folder, n, f"<ul>{items}{more}</ul>" if look else "<p>No field needs a look.</p>"))
    script, divs = components(figures)
    body = []
    for (folder, n, look), div in zip(sections, divs if isinstance(divs, (list, tuple)) else [divs]):
        rel = folder.relative_to(root) if folder != root else Path(".")
        body.append(f"<h2>{html.escape(str(rel))} — {n} field(s)</h2><h3>Fields that need a look</h3>{look}{div}")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vercye-lai report</title>
{INLINE.render()}
{script}
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1200px}} table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #bbb;padding:.2em .6em;text-align:right}} .bad{{color:#b00}} img{{max-width:900px}}</style>
</head><body>
<h1>vercye-lai report: {html.escape(root.resolve().name)}</h1>
<p>vercye-lai {__version__}, written {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}. Opens offline:
everything is in this file.</p>
<h2>Run summary</h2>{_summary_html(root)}
{''.join(body)}
<h2>In-situ validation</h2>{_validation_html(root)}
</body></html>
"""
    return write_text_atomic(root / REPORT_NAME, page)
