"""Region library: build-library and load_region."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
from click.testing import CliRunner
from conftest import DATA, cli_error_line, shared_data
from shapely.geometry import box

from vercye_lai.cli.main import cli
from vercye_lai.errors import DataIOError, InputError
from vercye_lai.regions import (
    build_library,
    load_region,
    plan_library,
    region_geometry,
    region_name,
    safe_name,
)

POLTAVA = DATA / "naturalearth" / "poltava_oblast_ne10m.geojson"


def units(tmp_path, names, *, crs="EPSG:32636", level=None, name="units.gpkg"):
    """A small boundary file of unit squares in UTM 36N."""
    data = {
        "NAME_1": names,
        "geometry": [box(i * 1000, 0, i * 1000 + 900, 900) for i in range(len(names))],
    }
    if level is not None:
        data["admin_level"] = level
    path = tmp_path / name
    gpd.GeoDataFrame(data, crs=crs).to_file(path)
    return path


def test_safe_name():
    assert safe_name("Ivano-Frankivs'k") == "Ivano-Frankivsk"
    assert safe_name(" Kiev City ") == "Kiev_City"
    assert safe_name("a/b\\c:d") == "a_b_c_d"
    assert safe_name("Полтавська область") == "Полтавська_область"


def test_build_library_writes_one_geojson_per_feature_in_wgs84(tmp_path):
    src = units(tmp_path, ["North Field", "L'viv", "Kiev City"])
    paths = build_library(src, tmp_path / "lib", name_col="NAME_1")
    assert sorted(p.name for p in paths) == [
        "Kiev_City.geojson",
        "Lviv.geojson",
        "North_Field.geojson",
    ]
    g = gpd.read_file(tmp_path / "lib" / "Lviv.geojson")
    assert g.crs.to_epsg() == 4326 and len(g) == 1
    assert g["original_name"][0] == "L'viv" and g["region_name"][0] == "Lviv"
    # the square is back where it was, after the round trip through EPSG:4326
    assert g.to_crs("EPSG:32636").geometry[0].centroid.x == pytest.approx(1450, abs=0.01)


def test_build_library_is_resumable(tmp_path):
    src = units(tmp_path, ["A", "B"])
    lib = tmp_path / "lib"
    build_library(src, lib, name_col="NAME_1")
    (lib / "A.geojson").write_text("kept")
    build_library(src, lib, name_col="NAME_1")
    assert (lib / "A.geojson").read_text() == "kept"
    build_library(src, lib, name_col="NAME_1", overwrite=True)
    assert json.loads((lib / "A.geojson").read_text())["type"] == "FeatureCollection"
    assert not list(lib.glob(".*"))  # no temporary files left


def test_bad_inputs(tmp_path):
    src = units(tmp_path, ["A", "B"], level=[1, 2])
    with pytest.raises(InputError, match="mixes administrative levels") as e:
        plan_library(src, name_col="NAME_1")
    assert str(src) in str(e.value)
    with pytest.raises(InputError, match="no column 'name'.*NAME_1"):
        plan_library(units(tmp_path, ["A"], name="x.gpkg"), name_col="name")
    with pytest.raises(InputError, match="both named 'A_B'"):
        plan_library(units(tmp_path, ["A B", "A/B"], name="dup.gpkg"), name_col="NAME_1")
    nocrs = tmp_path / "nocrs.geojson"
    nocrs.write_text('{"type":"FeatureCollection","features":[]}')
    with pytest.raises(InputError):
        plan_library(nocrs, name_col="NAME_1")
    with pytest.raises(DataIOError, match="does not exist"):
        plan_library(tmp_path / "missing.shp", name_col="NAME_1")


def test_real_poltava_and_close_matches(tmp_path):
    lib = tmp_path / "lib"
    build_library(POLTAVA, lib, name_col="name")
    g = load_region("Poltava", lib)
    assert g["iso_3166_2"][0] == "UA-53" and g.crs.to_epsg() == 4326
    area_km2 = region_geometry(g, "EPSG:6933").area / 1e6
    assert area_km2 == pytest.approx(28379, rel=0.01)
    # a path works too, and names the region after the file's stem
    assert len(load_region(POLTAVA)) == 1
    assert region_name(POLTAVA) == "poltava_oblast_ne10m" and region_name("Poltava") == "Poltava"
    with pytest.raises(InputError, match="unknown region 'Poltav'.*did you mean Poltava") as e:
        load_region("Poltav", lib)
    assert str(lib) in str(e.value)


@pytest.mark.slow  # 0.9 s: every oblast of the country
def test_full_ukraine_file(tmp_path):
    src = shared_data("admin_boundaries_ukraine_naturalearth", "ukraine_admin1_ne10m.geojson")
    lib = tmp_path / "lib"
    paths = build_library(src, lib, name_col="name")
    assert len(paths) == 27
    assert gpd.read_file(lib / "Poltava.geojson")["iso_3166_2"][0] == "UA-53"
    with pytest.raises(InputError, match="did you mean.*Kharkiv"):
        load_region("Kharkov", lib)
    # name_en has 'Kyiv' twice (oblast and city): refused, naming the column
    with pytest.raises(InputError, match="both named 'Kyiv'"):
        plan_library(src, name_col="name_en")


def test_cli(tmp_path):
    runner = CliRunner()
    lib = tmp_path / "lib"
    r = runner.invoke(
        cli,
        ["-q", "build-library", str(POLTAVA), "--output-dir", str(lib), "--admin-name-col", "name"],
    )
    assert r.exit_code == 0, r.output
    assert (lib / "Poltava.geojson").exists()
    r = runner.invoke(
        cli,
        [
            "build-library",
            str(POLTAVA),
            "--output-dir",
            str(lib),
            "--admin-name-col",
            "name",
            "--verbose",
        ],
    )
    assert r.exit_code == 0 and "Poltava.geojson" in r.output
    r = runner.invoke(
        cli,
        ["-q", "build-library", str(POLTAVA), "--output-dir", str(lib), "--admin-name-col", "nom"],
    )
    line = cli_error_line(r)
    assert str(POLTAVA) in line and "no column 'nom'" in line


def test_a_region_of_points_is_refused(tmp_path):
    """A region is the area to acquire: points (the in-situ file given by mistake) made a
    one-pixel stack, silently; the stack commands and a run say so, naming the file."""
    pts = tmp_path / "sites.geojson"
    gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=gpd.points_from_xy([8.6, 8.7], [47.4, 47.5]),
                     crs=4326).to_file(pts)
    with pytest.raises(InputError, match=r"a region must be polygons \(the area to acquire\); found Point \(2\)") as e:
        load_region(pts)
    assert str(pts) in str(e.value)
    line = cli_error_line(CliRunner().invoke(cli, ["stack-stac", "--geometry", str(pts), "--start-date", "2022-06-01",
                                                   "--end-date", "2022-06-02", "-o", str(tmp_path / "o")]))
    assert "sites.geojson: a region must be polygons" in line
