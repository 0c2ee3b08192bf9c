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
from importlib import resources
from pathlib import Path

import numpy as np

from .naming import stack_name
from .predict import PredictOptions, PredictResult, predict_dir

log = logging.getLogger(__name__)

DEMO_REGION = "strickhof"
DEMO_RESOLUTION = 10
DEMO_DATA = resources.files(__package__) / "data" / "demo" / "strickhof"

StepFn = Callable[[str, int, int], None]  # (step, done, total)


@dataclass
class DemoResult:
    """Where the demo put its outputs."""

    out_dir: Path
    stacks: list[Path] = field(default_factory=list)
    predictions: list[PredictResult] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    stats: dict[str, Path] = field(default_factory=dict)  # field name -> _STATS.csv
    insitu_csv: Path | None = None
    insitu_table: str = ""

    @property
    def lai(self) -> list[Path]:
        return [p for r in self.predictions for p in r.outputs]


def demo_fields() -> Path:
    """The bundled field polygons (GeoJSON, EPSG:4326, columns FID and name)."""
    return Path(str(DEMO_DATA / "strickhof_fields.geojson"))


def demo_insitu() -> Path:
    """The bundled in-situ green-LAI measurements (GeoJSON, columns date, lai, parcel)."""
    return Path(str(DEMO_DATA / "insitu_glai_2022.geojson"))


def build_stacks(out_dir: Path, *, step: StepFn | None = None) -> list[Path]:
    """Bundled reflectance files → ``strickhof_10m_{date}.tif`` stacks (skips existing)."""
    from .acquire.bands import newest_per_date, write_band_stack

    srf = sorted(Path(str(DEMO_DATA / "srf")).glob("*.tif"))
    by_date = newest_per_date(srf)
    out = []
    for i, (date, src) in enumerate(by_date.items(), start=1):
        dst = out_dir / stack_name(DEMO_REGION, DEMO_RESOLUTION, date)
        write_band_stack(src, dst)
        out.append(dst)
        if step:
            step("stack-bands", i, len(by_date))
    return out


def plot_lai_maps(lai_paths: list[Path], png: Path, *, fields: Path | None = None, max_panels: int = 12) -> Path:
    """Small multiples of LAI maps (evenly spaced dates) with one colour bar, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    from rasterio.plot import plotting_extent

    from .io import atomic_output
    from .naming import RasterName

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
    for ax, path in zip(axes.flat, paths):
        with rasterio.open(path) as ds:
            lai = ds.read(1, masked=True)
            extent = plotting_extent(ds)
            if fields is not None and outlines is None:
                import geopandas as gpd

                outlines = gpd.read_file(fields).to_crs(ds.crs)
        image = ax.imshow(lai, extent=extent, cmap="YlGn", vmin=0, vmax=6, interpolation="nearest")
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


def run_demo(out_dir: str | Path = "vercye-lai-demo", *, workers: int | None = None,
             step: StepFn | None = None) -> DemoResult:
    """Run the demo pipeline into ``out_dir`` (rerunning skips finished steps).

    Returns
    -------
    DemoResult
        The stacks, LAI products and figures written.
    """
    out = Path(out_dir)
    res = DemoResult(out)
    res.stacks = build_stacks(out / "stacks", step=step)
    options = PredictOptions() if workers is None else PredictOptions(workers=workers)
    res.predictions = predict_dir(
        out / "stacks", out / "lai", region=DEMO_REGION, resolution=DEMO_RESOLUTION, options=options,
        on_done=(lambda r: res.predictions.append(r) or step("predict", len(res.predictions), len(res.stacks)))
        if step else None,
    )
    failed = [r for r in res.predictions if r.status == "failed"]
    if failed:
        raise RuntimeError(f"demo predict failed: {failed[0].error}")
    lai = sorted(p for p in res.lai if p.name.endswith("_LAI.tif"))
    res.figures.append(plot_lai_maps(lai, out / f"{DEMO_REGION}_{DEMO_RESOLUTION}m_LAI_maps.png", fields=demo_fields()))

    from .analysis import AnalysisOptions, analyze
    from .quicklook import quicklook
    from .validation import agreement_table, pair_with_insitu, plot_agreement, write_pairs

    analysis = analyze(out / "lai", out / "analysis", DEMO_REGION, demo_fields(), resolution=DEMO_RESOLUTION, progress=(lambda d, t: step("analyze", d, t)) if step else None, options=AnalysisOptions(mode="poly_iter", adjustment="wheat", id_column="name"))
    for zone in analysis.zones:
        res.stats[zone.name] = zone.csv
        res.figures.append(quicklook(zone.csv, zone.max_tif, geometry_path=demo_fields()))
    pairs = pair_with_insitu(res.stats, demo_insitu())
    res.insitu_csv = write_pairs(pairs, out / f"{DEMO_REGION}_insitu_comparison.csv")
    res.insitu_table = agreement_table(pairs)
    res.figures.append(plot_agreement(
        pairs, out / f"{DEMO_REGION}_insitu_comparison.png",
        title="Strickhof 2022 winter wheat: SL2P (sl2p, 10 m) field means vs destructive in-situ green LAI"))
    return res
