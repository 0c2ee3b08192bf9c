"""APSIM NG observed data: one row per zone and observation date, read back against the STATS.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import cli_error_line, pixel_box

from vercye_lai.analysis import analyze
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, ["-q", *map(str, args)])


def test_observed_rows_only_with_the_template(tmp_path, lai_writer, polygon_writer):
    for d, v in [("2022-05-01", 2.0), ("2022-05-06", 3.0), ("2022-05-12", 1.0), ("2022-05-20", 3.4)]:
        lai_writer(d, np.full((8, 8), v, np.float32))  # 05-12: a dip the outlier test rejects
    g = polygon_writer("fields.geojson", [pixel_box(0, 0, 4, 4), pixel_box(4, 4, 8, 8)], FID=[10, 11])
    res = analyze(tmp_path / "lai", tmp_path / "out", "R", g, resolution=10,
                  options=AnalysisOptions(adjustment="wheat"))
    out = tmp_path / "obs.csv"
    r = run("export-apsim", tmp_path / "out", out, "--crop", "Wheat", "--template", "{region}_{zone}",
            "--region", "R", "--adjusted")
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["SimulationName", "Clock.Today", "Wheat.Leaf.LAI"]
    assert sorted(set(table["SimulationName"])) == ["R_10", "R_11"]
    for zone in res.zones:
        stats = pd.read_csv(zone.csv)
        observed = stats[(stats["interpolated"] == 0) & (stats["outlier"] == 0) & stats["LAI Mean Adjusted"].notna()]
        mine = table[table["SimulationName"] == f"R_{zone.name}"]
        assert mine["Clock.Today"].tolist() == observed["Date"].tolist() == ["2022-05-01", "2022-05-06",
                                                                              "2022-05-20"]
        np.testing.assert_allclose(mine["Wheat.Leaf.LAI"], observed["LAI Mean Adjusted"], atol=1e-4)
    line = cli_error_line(run("export-apsim", tmp_path / "lai", out, "--crop", "Wheat"))
    assert "not an analysis output folder" in line
    line = cli_error_line(run("export-apsim", tmp_path / "out", out, "--crop", "Wheat", "--template", "{field}"))
    assert "unknown field" in line


@pytest.mark.parametrize("fmt", ["netcdf", "parquet"])
def test_one_table_of_all_zones(tmp_path, lai_writer, polygon_writer, fmt):
    pytest.importorskip("xarray" if fmt == "netcdf" else "pyarrow")
    for d, v in [("2022-05-01", 2.0), ("2022-05-06", 3.0)]:
        lai_writer(d, np.full((8, 8), v, np.float32))
    g = polygon_writer("fields.geojson", [pixel_box(0, 0, 4, 4), pixel_box(4, 4, 8, 8)], FID=[10, 11])
    res = analyze(tmp_path / "lai", tmp_path / "out", "R", g, resolution=10, options=AnalysisOptions(table_format=fmt))
    (path,) = (tmp_path / "out").glob("*_ALL.*")
    if fmt == "parquet":
        table = pd.read_parquet(path)
    else:
        import xarray as xr

        table = xr.open_dataset(path).to_dataframe().reset_index()
    assert sorted(set(table["zone"].astype(str))) == ["10", "11"] and len(table) == 2 * 6
    for zone in res.zones:
        stats = pd.read_csv(zone.csv)
        mine = table[table["zone"].astype(str) == zone.name]
        np.testing.assert_allclose(mine["LAI Mean"].to_numpy(), stats["LAI Mean"].to_numpy())


@pytest.mark.slow  # 1 s: three commands (report imports bokeh)
def test_a_stats_csv_without_a_column_or_rows_is_named(tmp_path, lai_writer, polygon_writer):
    """Every reader of a _STATS.csv (export-apsim, report, quicklook, validate --series)
    checks its columns and rows and names the file: no KeyError, no IndexError."""
    lai_writer("2022-05-01", np.full((8, 8), 2.0, np.float32))
    g = polygon_writer("fields.geojson", [pixel_box(0, 0, 4, 4)], FID=[10])
    (zone,) = analyze(tmp_path / "lai", tmp_path / "out", "R", g, resolution=10).zones
    full = pd.read_csv(zone.csv)
    full.drop(columns=["interpolated"]).to_csv(zone.csv, index=False)
    line = cli_error_line(run("export-apsim", tmp_path / "out", tmp_path / "o.csv", "--crop", "Wheat"))
    assert zone.csv.name in line and "no column 'interpolated'" in line
    line = cli_error_line(run("report", tmp_path / "out"))
    assert zone.csv.name in line and "no column 'interpolated'" in line
    full.drop(columns=["LAI Mean"]).to_csv(zone.csv, index=False)
    line = cli_error_line(run("quicklook", zone.csv))
    assert zone.csv.name in line and "no column 'LAI Mean'" in line
    full.iloc[:0].to_csv(zone.csv, index=False)
    line = cli_error_line(run("export-apsim", tmp_path / "out", tmp_path / "o.csv", "--crop", "Wheat"))
    assert zone.csv.name in line and "has no rows" in line


def test_the_template_names_each_zone_and_finds_the_region(tmp_path, lai_writer, polygon_writer):
    for d, v in [("2022-05-01", 2.0), ("2022-05-06", 3.0)]:
        lai_writer(d, np.full((8, 8), v, np.float32), region="poltava")
    g = polygon_writer("fields.geojson", [pixel_box(0, 0, 4, 4), pixel_box(4, 4, 8, 8)], FID=[10, 11])
    analyze(tmp_path / "lai", tmp_path / "out", "poltava", g, resolution=10)
    out = tmp_path / "obs.csv"
    r = run("export-apsim", tmp_path / "out", out, "--crop", "Wheat", "--template", "{region}_{zone}")
    assert r.exit_code == 0, r.output
    assert sorted(set(pd.read_csv(out)["SimulationName"])) == ["poltava_10", "poltava_11"]
    line = cli_error_line(run("export-apsim", tmp_path / "out", out, "--crop", "Wheat", "--template", "season"))
    assert "gives the 2 zones one SimulationName: put {zone} in it" in line
    line = cli_error_line(run("export-apsim", tmp_path / "out", out, "--crop", "Wheat", "--template", "{zone"))
    assert "template '{zone'" in line
