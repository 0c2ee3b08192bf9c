"""A zone keeps its name as the geometry file gives it ("Field 1"); only its files' names are
made safe ("…_Field_1_…_STATS.csv"). Validate, export-apsim and the report find it by that name."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import cli_error_line, pixel_box
from shapely.geometry import Point

from vercye_lai.analysis import analyze
from vercye_lai.analysis.manifest import read_manifest
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.cli.main import cli
from vercye_lai.errors import InputError
from vercye_lai.insitu.validate import ValidateOptions, match_series, read_insitu
from vercye_lai.outputs.apsim import apsim_table


def run(*args):
    return CliRunner().invoke(cli, ["-q", *map(str, args)])


@pytest.fixture
def season(lai_writer):
    for day, v in [("2022-05-01", 2.0), ("2022-05-06", 3.0), ("2022-05-12", 4.0)]:
        a = np.full((8, 8), v, np.float32)
        a[4:, 4:] += 1.0  # the second field is denser
        lai_writer(day, a)


def test_names_are_kept_and_files_are_safe(tmp_path, season, polygon_writer):
    g = polygon_writer("f.geojson", [pixel_box(0, 0, 4, 4), pixel_box(4, 4, 8, 8)], field=["Field 1", "Feld 2/Ä"])
    res = analyze(tmp_path / "lai", tmp_path / "out", "R", g, resolution=10,
                  options=AnalysisOptions(id_column="field"))
    assert [z.name for z in res.zones] == ["Field 1", "Feld 2/Ä"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*_STATS.csv")) == [
        "R_f_Feld_2_Ä_2022-05-01_2022-05-12_STATS.csv", "R_f_Field_1_2022-05-01_2022-05-12_STATS.csv"]
    assert [z["name"] for z in read_manifest(tmp_path / "out")["zones"]] == ["Field 1", "Feld 2/Ä"]

    # in-situ measurements name their field as the geometry file does
    gpd.GeoDataFrame({"date": ["2022-05-06", "2022-05-06"], "lai": [2.5, 4.5], "parcel": ["Field 1", "Feld 2/Ä"]},
                     geometry=[Point(8.68, 47.44)] * 2, crs=4326).to_file(tmp_path / "m.geojson")
    options = ValidateOptions(zone_column="parcel")
    pairs = match_series(read_insitu(tmp_path / "m.geojson", options, points=False), tmp_path / "out",
                         options=options)
    assert pairs[["zone", "insitu", "LAI Mean"]].to_dict("records") == [
        {"zone": "Field 1", "insitu": 2.5, "LAI Mean": 3.0}, {"zone": "Feld 2/Ä", "insitu": 4.5, "LAI Mean": 4.0}]

    table = apsim_table(tmp_path / "out", crop="Wheat")
    assert sorted(set(table["SimulationName"])) == ["Feld 2/Ä", "Field 1"]


def test_ids_that_would_share_a_file_name_are_refused(tmp_path, season, polygon_writer):
    boxes = [pixel_box(0, 0, 2, 2), pixel_box(2, 2, 4, 4), pixel_box(4, 4, 6, 6)]
    for ids in (["A/B", "A B", "C"], ["a", "A", "C"], [".", "..", "C"]):
        g = polygon_writer("f.geojson", boxes, field=ids)
        with pytest.raises(InputError, match="ids that would share a file name") as e:
            analyze(tmp_path / "lai", tmp_path / "out", "R", g, resolution=10,
                    options=AnalysisOptions(id_column="field"))
        assert repr(ids[0]) in str(e.value) and repr(ids[1]) in str(e.value) and "'C'" not in str(e.value)
    line = cli_error_line(run("analyze", tmp_path / "lai", g, "--id-column", "field", "--res", "10",
                              "--region", "R", "-o", tmp_path / "out2"))
    assert "f.geojson" in line and "--id-column" in line
    assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").glob("*STATS.csv"))


def test_an_older_analysis_named_by_its_files_still_matches(tmp_path):
    gpd.GeoDataFrame({"date": ["2022-05-01"], "lai": [2.0], "parcel": ["Field 1"]},
                     geometry=[Point(8.68, 47.44)], crs=4326).to_file(tmp_path / "m.geojson")
    series = tmp_path / "series"
    series.mkdir()
    (series / "a.csv").write_text("Date,n_pixels,interpolated,LAI Mean\n2022-05-01,10,0,3.5\n")
    (series / "MANIFEST.json").write_text('{"zones": [{"name": "Field_1", "csv": "a.csv"}]}')
    options = ValidateOptions(zone_column="parcel")
    pairs = match_series(read_insitu(tmp_path / "m.geojson", options, points=False), series, options=options,
                         columns=("LAI Mean",))
    assert pairs[["zone", "LAI Mean"]].to_dict("records") == [{"zone": "Field_1", "LAI Mean": 3.5}]


def test_the_report_draws_each_zone_with_its_own_geometry(tmp_path, season):
    """A GeoPackage's feature ids start at 1 (FID, the default id column): the report drew
    zone "1" with the second feature."""
    from vercye_lai.outputs.report import _zone_geometries

    boxes = [pixel_box(0, 0, 4, 4), pixel_box(4, 4, 8, 8)]
    path = tmp_path / "fields.gpkg"
    gpd.GeoDataFrame({"crop": ["wheat", "maize"]}, geometry=boxes, crs="EPSG:32632").to_file(path, driver="GPKG")
    res = analyze(tmp_path / "lai", tmp_path / "out", "R", path, resolution=10)
    assert [z.name for z in res.zones] == ["1", "2"]
    drawn = _zone_geometries(read_manifest(tmp_path / "out"), ["1", "2"], "EPSG:32632", {})
    assert drawn["1"].equals(boxes[0]) and drawn["2"].equals(boxes[1])
    assert pd.read_csv(res.zones[1].csv)["LAI Mean"].max() == pytest.approx(5.0)
