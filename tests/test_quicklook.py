"""quicklook: a two-panel PNG from an analysis CSV and MAX.tif."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import pixel_box

from vercye_lai.analysis import analyze
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.analysis.quicklook import _title, quicklook, quicklook_path
from vercye_lai.cli.main import cli
from vercye_lai.errors import DataIOError, InputError


@pytest.fixture
def analysis(tmp_path, lai_writer, polygon_writer):
    rng = np.random.default_rng(1)
    for i, d in enumerate(["2022-05-01", "2022-05-06", "2022-05-12", "2022-05-20"]):
        data = (1 + i + rng.random((8, 8))).astype(np.float32)
        data[0, :3] = np.nan
        lai_writer(d, data)
    g = polygon_writer("plot.geojson", [pixel_box(1, 0, 7, 6)], FID=[4])
    return analyze(tmp_path / "lai", tmp_path / "out", "R", g, resolution=10, options=AnalysisOptions(adjustment="wheat", date_format="dmy")).zones[0], g


def test_png_written_beside_csv(analysis):
    zone, _ = analysis
    png = quicklook(zone.csv, zone.max_tif)
    assert png == quicklook_path(zone.csv)
    assert png.name == "R_plot_4_2022-05-01_2022-05-20_QUICKLOOK.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000


@pytest.mark.slow  # 1 s
def test_png_with_geometry_and_dpi(analysis, tmp_path):
    import matplotlib.image

    zone, geom = analysis
    small = quicklook(zone.csv, zone.max_tif, out=tmp_path / "a.png", geometry_path=geom, dpi=50)
    big = quicklook(zone.csv, zone.max_tif, out=tmp_path / "b.png", dpi=100)
    assert matplotlib.image.imread(big).shape[1] == pytest.approx(
        2 * matplotlib.image.imread(small).shape[1], abs=2)


def test_title_names_region_geometry_and_dates(analysis, tmp_path):
    zone, _ = analysis
    tags = {"REGION": "R", "GEOMETRY": "plot", "ZONE": "4", "MODE": "poly_iter",
            "START": "2022-05-01", "END": "2022-05-20"}
    assert _title(zone.csv, tags) == "R · plot · field 4 · 2022-05-01 to 2022-05-20"
    assert _title(zone.csv, {}) == "R_plot_4 · 2022-05-01 to 2022-05-20"


def test_bad_inputs(analysis, tmp_path):
    zone, _ = analysis
    bad = tmp_path / "x_STATS.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not an analysis _STATS.csv") as exc:
        quicklook(bad, zone.max_tif)
    assert exc.value.path == str(bad)
    with pytest.raises(DataIOError, match="does not exist"):
        quicklook(zone.csv, tmp_path / "missing.tif")
    res = CliRunner().invoke(cli, ["quicklook", str(bad), str(zone.max_tif)])
    assert res.exit_code == 1 and str(bad) in res.stderr


@pytest.mark.slow  # 0.7 s
def test_the_outline_is_read_as_every_vector_input(analysis, tmp_path):
    """A raster or a CRS-less file ended in a traceback; a GeoPackage of two layers was drawn
    from its first, silently."""
    import geopandas as gpd

    zone, geom = analysis
    fields = gpd.read_file(geom)
    two = tmp_path / "two.gpkg"
    fields.to_file(two, layer="plots")
    fields.translate(1000, 1000).to_file(two, layer="far")
    with pytest.raises(InputError, match="choose one with --layer"):
        quicklook(zone.csv, zone.max_tif, out=tmp_path / "a.png", geometry_path=two)
    assert quicklook(zone.csv, zone.max_tif, out=tmp_path / "a.png", geometry_path=two, layer="plots").exists()
    res = CliRunner().invoke(cli, ["quicklook", str(zone.csv), "-o", str(tmp_path / "b.png"),
                                   "--geometry", str(zone.max_tif)])
    assert res.exit_code == 1 and "Traceback" not in res.output and str(zone.max_tif) in res.output
    assert not (tmp_path / "b.png").exists()


@pytest.mark.slow  # 0.6 s
def test_a_folder_with_a_zone_without_a_max_map_draws_the_others(analysis, tmp_path):
    zone, _ = analysis
    lonely = zone.csv.with_name(zone.csv.name.replace("_4_", "_5_"))
    lonely.write_bytes(zone.csv.read_bytes())  # a zone that covers no pixel centre: a CSV, no map
    res = CliRunner().invoke(cli, ["quicklook", str(zone.csv.parent)])
    assert res.exit_code == 0, res.output
    assert quicklook_path(zone.csv).exists() and not quicklook_path(lonely).exists()
    assert f"{lonely.name}: no max-LAI map beside it, skipped" in " ".join(res.output.split())


def test_cli(analysis, tmp_path):
    zone, geom = analysis
    out = tmp_path / "ql.png"
    res = CliRunner().invoke(cli, ["quicklook", str(zone.csv), str(zone.max_tif), "-o", str(out),
                                   "--geometry", str(geom)])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 20_000 and str(out) in res.stderr


@pytest.mark.slow  # 0.7 s
def test_cli_finds_the_max_map_and_takes_a_folder(analysis, tmp_path):
    zone, _ = analysis
    res = CliRunner().invoke(cli, ["quicklook", str(zone.csv)])  # MAX found by name
    assert res.exit_code == 0, res.output
    assert quicklook_path(zone.csv).stat().st_size > 20_000
    quicklook_path(zone.csv).unlink()
    res = CliRunner().invoke(cli, ["quicklook", str(zone.csv.parent)])  # every analysis there
    assert res.exit_code == 0, res.output
    assert quicklook_path(zone.csv).exists()
    res = CliRunner().invoke(cli, ["quicklook", str(tmp_path)])
    assert res.exit_code == 1 and "no analysis (*_STATS.csv) in the folder" in res.output
    other = tmp_path / "table.csv"
    other.write_text("a\n1\n")
    res = CliRunner().invoke(cli, ["quicklook", str(other)])
    assert res.exit_code == 1 and "not an analysis _STATS.csv (give its _MAX.tif too)" in res.output


def test_rejected_outliers_are_drawn_as_crosses(tmp_path, lai_writer, polygon_writer, monkeypatch):
    import matplotlib.pyplot as plt

    for d, v in [("2022-05-01", 2.0), ("2022-05-06", 3.0), ("2022-05-12", 1.0), ("2022-05-20", 3.4)]:
        lai_writer(d, np.full((8, 8), v, np.float32))  # 05-12: a dip below both neighbours
    g = polygon_writer("plot.geojson", [pixel_box(1, 0, 7, 6)], FID=[4])
    zone = analyze(tmp_path / "lai", tmp_path / "out", "R", g, resolution=10).zones[0]
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    quicklook(zone.csv, zone.max_tif)
    lines = [ln for ax in figures[0].axes for ln in ax.get_lines() if ln.get_marker() == "x"]
    assert [ln.get_label() for ln in lines] == ["rejected as outlier (1)"]
    assert lines[0].get_ydata().tolist() == [1.0]


def test_each_sensor_has_its_own_marker(tmp_path, lai_writer, polygon_writer, monkeypatch):
    import matplotlib.pyplot as plt
    from conftest import write_raster
    from rasterio.transform import from_origin

    lai_writer("2022-05-01", np.full((8, 8), 2.0, np.float32))
    lai_writer("2022-05-09", np.full((8, 8), 3.0, np.float32))
    write_raster(tmp_path / "lai" / "R_30m_2022-05-05_L30_LAI.tif", np.full((3, 3), 2.5, np.float32),
                 nodata=np.nan, transform=from_origin(475780.0, 5255000.0, 30.0, 30.0))
    g = polygon_writer("plot.geojson", [pixel_box(1, 0, 7, 6)], FID=[4])
    zone = analyze(tmp_path / "lai", tmp_path / "out", "R", g, resolution=10).zones[0]
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    quicklook(zone.csv, zone.max_tif)
    labels = {ln.get_label(): ln.get_marker() for ax in figures[0].axes for ln in ax.get_lines()}
    assert labels["observed, S2 (2)"] == "o" and labels["observed, L30 (1)"] == "s"


def test_a_one_date_season_and_a_narrow_area_read_right(tmp_path, lai_writer, polygon_writer, monkeypatch):
    """One date: day ticks (never hours), 'observed (1 date)', its ±1 std as a bar. A tall
    narrow field: its map box at least 1:3, so the tick labels have room. A clipped colour
    range: arrows on the colour bar. No two filled bands that overlap into a colour no legend has."""
    import matplotlib.pyplot as plt

    v = np.full((40, 6), 2.0, np.float32)
    v[0, 0] = 9.0  # one hot pixel beyond the 98th percentile
    lai_writer("2022-05-01", v)
    g = polygon_writer("strip.geojson", [pixel_box(0, 0, 2, 40)], FID=[1])
    zone = analyze(tmp_path / "lai", tmp_path / "out", "R", g, resolution=10).zones[0]
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    quicklook(zone.csv, zone.max_tif)
    fig = figures[0]
    fig.canvas.draw()
    ax, axm = fig.axes[0], next(a for a in fig.axes if a.get_title().startswith("max LAI"))
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels and not any(":" in t for t in labels), labels
    assert "observed (1 date)" in [t.get_text() for t in ax.get_legend().get_texts()]
    (x0, x1), (y0, y1) = axm.get_xlim(), axm.get_ylim()
    assert (x1 - x0) >= (y1 - y0) / 3 - 1e-6
    assert axm.get_images()[0].colorbar.extend in ("max", "both")  # the hot pixel is beyond the bar
    assert len([c for c in ax.collections if type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")]) <= 1
