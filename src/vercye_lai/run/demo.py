"""The demo: the pipeline on bundled real Sentinel-2 data, offline, in about a minute.

Data: the Strickhof (Zurich) 2022 winter-wheat season, 34 dates of L2A surface
reflectance at 10 m and the three field polygons (see ``data/demo/strickhof/NOTICE.md``).
Steps: ``stack-bands`` (sun angles computed, nadir view assumed) → ``predict`` (SL2P
LAI) → ``analyze`` (each field alone, wheat adjustment, Akima gap filling) → ``quicklook``
per field → the field means against the in-situ LAI measurements, and a PNG of the maps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vercye_lai.acquire.bands import Options as BandsOptions
from vercye_lai.acquire.bands import newest_per_date
from vercye_lai.analysis.manifest import zone_csvs
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.errors import DependencyError
from vercye_lai.insitu.validate import (
    ValidateOptions,
    agreement_tables,
    match_series,
    metrics_markdown,
    read_insitu,
    write_validation,
)
from vercye_lai.io import atomic_output, read_values, up_to_date, write_text_atomic
from vercye_lai.naming import RasterName
from vercye_lai.outputs.apsim import export_apsim
from vercye_lai.outputs.catalog import write_catalog
from vercye_lai.outputs.cube import build_cube
from vercye_lai.outputs.report import write_report
from vercye_lai.predict import PredictOptions
from vercye_lai.run import run_pipeline
from vercye_lai.run.config import (
    DEMO_DATA,
    EXAMPLE_CONFIG,
    AnalysisConfig,
    Layout,
    RegionConfig,
    RunConfig,
    SourceConfig,
)
from vercye_lai.run.summary import RunSummary

log = logging.getLogger(__name__)

DEMO_REGION = "strickhof"
DEMO_RESOLUTION = 10

StepFn = Callable[[str, int, int], None]  # (step, done, total; 0: not known)


@dataclass
class DemoResult:
    """Where the demo put its outputs."""
    out_dir: Path
    summary: RunSummary | None = None
    stacks: list[Path] = field(default_factory=list)
    lai: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    stats: dict[str, Path] = field(default_factory=dict)  # field name -> _STATS.csv
    insitu_csv: Path | None = None
    insitu_table: str = ""
    #: what the ecosystem opens: cube, catalogue, APSIM table, report → path (or why not)
    products: dict[str, Path | str] = field(default_factory=dict)


def _ecosystem_products(out: Path, lai: list[Path], csvs: list[Path]) -> dict[str, Path | str]:
    """The season cube, the APSIM observed table, the STAC catalogue and the report of the
    demo (each made again only when its inputs changed); a missing extra is said, not fatal."""
    jobs = {
        "cube": (out / f"{DEMO_REGION}_{DEMO_RESOLUTION}m_LAI.nc", lai,
                 lambda p: build_cube(out / "lai", p, region=DEMO_REGION, resolution=DEMO_RESOLUTION)),
        "APSIM": (out / f"{DEMO_REGION}_apsim_observed.csv", csvs,
                  lambda p: export_apsim(out / "analysis", p, crop="Wheat", adjusted=False)),
        "catalogue": (out / "stac" / "catalog.json", lai, lambda p: write_catalog(out)),
    }
    done: dict[str, Path | str] = {}
    for name, (path, inputs, make) in jobs.items():
        try:
            if not up_to_date([path], inputs):
                make(path)
            done[name] = path
        except DependencyError as exc:
            done[name] = f"not written: {exc}"
    report = out / "report.html"
    try:  # last: it shows the others' figures
        if not up_to_date([report], [*csvs, *(out.glob("*_metrics.md"))]):
            write_report(out)
        done["report"] = report
    except DependencyError as exc:
        done["report"] = f"not written: {exc}"
    return done


def _write_run_config(out: Path) -> None:
    """``run.toml``: the demo's season as a run config to copy (written once, kept after)."""
    path = out / "run.toml"
    text = ("# The demo's season as a run config: `vercye-lai run run.toml` makes the same products under\n"
            "# run/ (stacks/, lai/, analysis/ by region, where the demo keeps flat folders). Copy it and put\n"
            "# your own region, source and fields in.\n"
            + EXAMPLE_CONFIG.replace('output_root = "vercye-lai-run"', 'output_root = "run"          ', 1))
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)


def demo_fields() -> Path:
    """The bundled field polygons (GeoJSON, EPSG:4326, columns FID and name)."""
    return Path(str(DEMO_DATA / "strickhof_fields.geojson"))


def demo_insitu() -> Path:
    """The bundled in-situ green-LAI measurements (GeoJSON, columns date, lai, parcel)."""
    return Path(str(DEMO_DATA / "insitu_glai_2022.geojson"))


def plot_lai_maps(lai_paths: list[Path], png: Path, *, fields: Path | None = None, max_panels: int = 12) -> Path:
    """Small multiples of LAI maps (evenly spaced dates) with one colour bar, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    from rasterio.plot import plotting_extent

    if not lai_paths:
        raise ValueError("no LAI rasters to plot")
    pick = np.unique(np.linspace(0, len(lai_paths) - 1, min(max_panels, len(lai_paths))).round().astype(int))
    paths = [lai_paths[i] for i in pick]
    ncols = min(6, len(paths))
    nrows = -(-len(paths) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols + 1, 2.5 * nrows + 0.8), squeeze=False,
                             layout="constrained")
    outlines = None
    image = None
    top = 0.0  # one colour scale for every panel, up to the highest pixel: none is clipped
    for path in paths:
        with rasterio.open(path) as ds:
            band = read_values(ds)
            top = max(top, float(np.nanmax(band)) if np.isfinite(band).any() else 0.0)
    vmax = max(1.0, float(np.ceil(top)))
    for ax, path in zip(axes.flat, paths):
        with rasterio.open(path) as ds:
            lai = np.ma.masked_invalid(read_values(ds))
            extent = plotting_extent(ds)
            if fields is not None and outlines is None:
                import geopandas as gpd

                outlines = gpd.read_file(fields).to_crs(ds.crs)
        image = ax.imshow(lai, extent=extent, cmap="YlGn", vmin=0, vmax=vmax, interpolation="nearest")
        if outlines is not None:
            outlines.boundary.plot(ax=ax, color="black", linewidth=0.8)
        rn = RasterName.parse(path)
        ax.set_title(f"{rn.date:%d %b}  mean {float(lai.mean()):.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
    for ax in axes.flat[len(paths):]:
        ax.set_axis_off()
    fig.colorbar(image, ax=axes, shrink=0.8, label="LAI (m² m⁻²)")
    rn = RasterName.parse(paths[0])
    fig.suptitle(f"{rn.region}: SL2P LAI, {rn.resolution:g} m, {len(lai_paths)} dates "
                 f"({RasterName.parse(lai_paths[0]).date} to {RasterName.parse(lai_paths[-1]).date})")
    with atomic_output(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return png


def demo_config(out_dir: str | Path, *, workers: int | None = None) -> RunConfig:
    """The demo as a run config: the bundled reflectance files (source ``bands``, no
    clipping) → SL2P LAI → each field alone with the wheat adjustment → quicklooks, in
    the demo's flat folders (``stacks/``, ``lai/``, ``analysis/``)."""
    files = sorted(Path(str(DEMO_DATA / "srf")).glob("*.tif"))
    dates = list(newest_per_date(files))  # the season: first to last date with a file
    return RunConfig(
        output_root=Path(out_dir), resolution=DEMO_RESOLUTION,
        regions=(RegionConfig(DEMO_REGION, dates[0], dates[-1]),),
        sources=(SourceConfig("bands", BandsOptions(files=tuple(files))),),
        predict=PredictOptions(),
        analyses=(AnalysisConfig("fields", demo_fields(), AnalysisOptions(
            mode="poly_iter", adjustment="wheat", id_column="name")),),
        executor="threads", workers=workers,
        layout=Layout(stacks="stacks", lai="lai", analysis="analysis", state="state"),
    )


def _outputs(summary: RunSummary, step: str) -> list[Path]:
    return [Path(p) for s in summary.steps if s.step == step for u in s.units for p in u.outputs]


def run_demo(out_dir: str | Path = "vercye-lai-demo", *, workers: int | None = None,
             step: StepFn | None = None) -> DemoResult:
    """Run the demo pipeline into ``out_dir`` through :func:`vercye_lai.run.run_pipeline`
    (so a rerun skips what is done), then its figures and the in-situ comparison.

    Returns
    -------
    DemoResult
        The stacks, LAI products and figures written.
    """
    out = Path(out_dir)
    res = DemoResult(out)
    counts: dict[str, int] = {}

    def on_unit(unit) -> None:
        counts[unit.step] = counts.get(unit.step, 0) + 1
        if step:
            step(unit.step, counts[unit.step], 0)

    res.summary = run_pipeline(demo_config(out, workers=workers), on_unit=on_unit,
                               write_summary=False)  # the demo publishes its own products (below)
    res.summary.write()  # run_summary.json: what this run did (the report shows it)
    _write_run_config(out)
    failed = [u for s in res.summary.steps for u in s.units if u.status == "failed"]
    if failed:
        raise RuntimeError(f"demo {failed[0].step} failed: {failed[0].reason}")
    res.stacks = _outputs(res.summary, "acquire")
    res.lai = sorted(p for p in _outputs(res.summary, "predict") if p.name.endswith("_LAI.tif"))
    maps = out / f"{DEMO_REGION}_{DEMO_RESOLUTION}m_LAI_maps.png"
    if not up_to_date([maps], res.lai):
        plot_lai_maps(res.lai, maps, fields=demo_fields())
    res.figures.append(maps)
    res.stats = dict(sorted((zone_csvs(out / "analysis") or {}).items()))  # the zones by name (the record)
    csvs = list(res.stats.values())
    res.figures += sorted(_outputs(res.summary, "quicklook"))
    # the same as: vercye-lai validate INSITU --series OUT/analysis --zone-column parcel
    options = ValidateOptions(zone_column="parcel")
    pairs = match_series(read_insitu(demo_insitu(), options, points=False), out / "analysis", options=options)
    columns = ("LAI Mean", "LAI Mean Adjusted")
    res.insitu_csv = out / f"{DEMO_REGION}_insitu_matched.csv"
    png = out / f"{DEMO_REGION}_insitu_scatter.png"
    if not up_to_date([res.insitu_csv, png], csvs):
        write_validation(pairs, out, columns=columns, prefix=f"{DEMO_REGION}_insitu",
                         title="Strickhof 2022 winter wheat: SL2P (sl2p, 10 m) field means vs "
                               "destructive in-situ green LAI")
    metrics = agreement_tables(pairs, columns)
    res.insitu_table = metrics_markdown(metrics[metrics["group"] == "all"])
    res.products = _ecosystem_products(out, res.lai, csvs)
    res.figures.append(png)
    return res
