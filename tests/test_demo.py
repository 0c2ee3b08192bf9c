"""The demo end to end on the bundled real data, and the in-situ agreement arithmetic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner

from vercye_lai.cli.main import cli
from vercye_lai.validation import Agreement, agreement_table, pair_with_insitu

pytestmark = pytest.mark.slow  # the whole demo, twice


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    r = CliRunner().invoke(cli, ["-q", "demo", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out, r.output


def test_demo_writes_every_step(demo_run):
    out, output = demo_run
    stacks = sorted((out / "stacks").glob("strickhof_10m_*.tif"))
    lai = sorted((out / "lai").glob("strickhof_10m_*_LAI.tif"))
    assert len(stacks) == len(lai) == 34  # 37 files, 34 distinct dates
    with rasterio.open(lai[20]) as ds:
        values = ds.read(1)
    assert 0 < np.nanmean(values) < 8
    stats = sorted((out / "analysis").glob("*_STATS.csv"))
    assert [p.name.split("_")[3] for p in stats] == ["Bramenwies", "Fluegenrain", "Hohrueti"]
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 5 and all(p.stat().st_size > 20_000 for p in pngs)
    for p in stats + pngs:
        assert str(p) in output  # the CLI says where every output is


def test_demo_insitu_agreement_is_reported(demo_run):
    out, output = demo_run
    pairs = pd.read_csv(out / "strickhof_insitu_comparison.csv")
    # 34 field-days measured between 2022-03-11 and 06-17; the first date before the first image is dropped
    assert 25 <= len(pairs) <= 36 and set(pairs["field"]) == {"Bramenwies", "Fluegenrain", "Hohrueti"}
    a = Agreement.of(pairs["LAI Mean"], pairs["insitu_lai"])
    assert a.r > 0.7 and a.rmse < 2.0  # SL2P follows the season; the numbers are in the README
    assert f"| LAI Mean | {a.n} | {a.rmse:.2f} |" in output


def test_demo_rerun_redoes_nothing(demo_run):
    """A rerun goes through the same runner and finds every output up to date: no file is
    written again (stacks, products, analysis, quicklooks, maps, in-situ comparison)."""
    out, first = demo_run
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert len(files) > 3 * 34 + 10
    r = CliRunner().invoke(cli, ["-q", "demo", "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == files
    table = first[first.index("| estimate"):]
    assert table in r.output  # the same figures reported


def test_agreement_arithmetic():
    a = Agreement.of(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 3.0]))
    assert a.n == 3 and a.bias == pytest.approx(0.0) and a.rmse == pytest.approx(np.sqrt(2 / 3))
    pairs = pd.DataFrame({"insitu_lai": [1.0, 3.0, 3.0], "LAI Mean": [1.0, 2.0, 4.0]})
    assert "| LAI Mean | 3 | 0.82 | +0.00 |" in agreement_table(pairs, ("LAI Mean",))


def test_pairing_averages_measurements_of_a_day(tmp_path):
    import geopandas as gpd
    from shapely.geometry import Point

    gpd.GeoDataFrame(
        {"date": ["2022-05-01 10:00:00", "2022-05-01 11:00:00", "2022-05-09 10:00:00", "2022-05-02 10:00:00"],
         "lai": [2.0, 4.0, 5.0, 1.0], "parcel": ["A", "A", "A", "B"]},
        geometry=[Point(8.68, 47.44)] * 4, crs=4326,
    ).to_file(tmp_path / "m.geojson")
    (tmp_path / "a.csv").write_text(
        "Date,n_pixels,interpolated,LAI Mean,LAI Mean Adjusted\n"
        "2022-05-01,10,0,3.5,3.9\n2022-05-02,0,1,3.6,4.0\n2022-05-09,,,,\n"
    )
    pairs = pair_with_insitu({"A": tmp_path / "a.csv"}, tmp_path / "m.geojson")
    assert pairs.to_dict("records") == [{
        "field": "A", "date": "2022-05-01", "n_measurements": 2, "insitu_lai": 3.0, "interpolated": 0,
        "LAI Mean": 3.5, "LAI Mean Adjusted": 3.9}]
