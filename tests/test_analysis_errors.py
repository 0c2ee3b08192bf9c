"""Bad inputs to analyze: the right error with a clear message, and one CLI line naming the file."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import cli_error_line, pixel_box

from vercye_lai.analysis import analyze
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.cli.main import cli
from vercye_lai.errors import DataIOError, InputError, NoDataFoundError

EMPTY_GEOJSON = '{"type": "FeatureCollection", "features": []}'


@pytest.fixture
def lai(lai_writer):
    for d in ("2022-06-01", "2022-06-04"):
        lai_writer(d, np.ones((6, 6), np.float32))


@pytest.fixture
def field(polygon_writer):
    return polygon_writer("field.geojson", [pixel_box(1, 1, 3, 3)], FID=[1])


def cli_error(tmp_path, geom, *extra) -> str:
    """Run ``vercye-lai -q analyze``; assert it failed with one output line; return it."""
    args = ["-q", "analyze", str(tmp_path / "lai"), str(tmp_path / "out"), "R", str(geom),
            "--res", "10", *extra]
    line = cli_error_line(CliRunner().invoke(cli, args))
    assert line.startswith("Error: ")
    return line


def test_empty_geometry_file(tmp_path, lai):
    geom = tmp_path / "empty.geojson"
    geom.write_text(EMPTY_GEOJSON)
    with pytest.raises(InputError, match="no features") as exc:
        analyze(tmp_path / "lai", tmp_path / "out", "R", geom, resolution=10)
    assert exc.value.path == str(geom)
    assert str(geom) in cli_error(tmp_path, geom)


def test_only_null_geometries(tmp_path, lai):
    geom = tmp_path / "nulls.geojson"
    geom.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", '
                    '"properties": {"FID": 1}, "geometry": null}]}')
    with pytest.raises(InputError, match="no non-empty geometry"):
        analyze(tmp_path / "lai", tmp_path / "out", "R", geom, resolution=10)
    assert str(geom) in cli_error(tmp_path, geom)


def test_missing_or_unreadable_geometry(tmp_path, lai):
    bad = tmp_path / "fields.geojson"
    bad.write_text("this is not json")
    with pytest.raises(DataIOError, match="cannot read vector file"):
        analyze(tmp_path / "lai", tmp_path / "out", "R", bad, resolution=10)
    assert "does not exist" in cli_error(tmp_path, tmp_path / "nope.gpkg")


def test_no_overlap(tmp_path, lai, polygon_writer):
    far = polygon_writer("far.geojson", [pixel_box(500, 500, 502, 502)], FID=[1])
    with pytest.raises(InputError, match="does not overlap any of the 2 'R' LAI raster") as exc:
        analyze(tmp_path / "lai", tmp_path / "out", "R", far, resolution=10)
    assert exc.value.path == str(far)
    assert str(far) in cli_error(tmp_path, far)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_start_after_end(tmp_path, lai, field):
    with pytest.raises(InputError, match="start date 2022-06-05 is after end date 2022-06-01"):
        analyze(tmp_path / "lai", tmp_path / "out", "R", field, resolution=10,
                start=dt.date(2022, 6, 5), end=dt.date(2022, 6, 1))
    line = cli_error(tmp_path, field, "--start_date", "2022-06-05", "--end_date", "2022-06-01")
    assert "is after end date" in line


def test_no_lai_files_in_range(tmp_path, lai, field):
    with pytest.raises(NoDataFoundError, match="between 2023-01-01 and 2023-02-01") as exc:
        analyze(tmp_path / "lai", tmp_path / "out", "R", field, resolution=10,
                start=dt.date(2023, 1, 1), end=dt.date(2023, 2, 1))
    assert exc.value.path == str(tmp_path / "lai")
    line = cli_error(tmp_path, field, "--start-date", "2023-01-01", "--end-date", "2023-02-01")
    assert str(tmp_path / "lai") in line
    # wrong resolution: no file at all
    assert "R_20m_<date>_LAI" in cli_error(tmp_path, field, "--res", "20")


def test_all_zero_mask(tmp_path, lai, raster_writer):
    mask = raster_writer("zeros.tif", np.zeros((6, 6), np.uint8))
    with pytest.raises(InputError, match="no non-zero pixel") as exc:
        analyze(tmp_path / "lai", tmp_path / "out", "R", mask, resolution=10, options=AnalysisOptions(mode="raster"))
    assert exc.value.path == str(mask)
    assert str(mask) in cli_error(tmp_path, mask, "--mode", "raster")


def test_corrupt_lai_file(tmp_path, lai, field):
    bad = tmp_path / "lai" / "R_10m_2022-06-02_LAI.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(DataIOError) as exc:
        analyze(tmp_path / "lai", tmp_path / "out", "R", field, resolution=10)
    assert exc.value.path == str(bad)
    assert bad.name in cli_error(tmp_path, field)


def test_geometry_covering_no_pixel(tmp_path, lai, polygon_writer):
    tiny = polygon_writer("tiny.geojson", [pixel_box(1.1, 1.1, 1.3, 1.3)], FID=[1])
    with pytest.raises(InputError, match="covers no pixel"):
        analyze(tmp_path / "lai", tmp_path / "out", "R", tiny, resolution=10)
    res = analyze(tmp_path / "lai", tmp_path / "out", "R", tiny, resolution=10, options=AnalysisOptions(all_touched=True))
    assert res.zones[0].n_pixels == 1


def test_cli_success_summary(tmp_path, lai, field):
    args = ["analyze", str(tmp_path / "lai"), str(tmp_path / "out"), "R", str(field), "--res",
            "10", "--adjustment", "wheat", "--interpolation", "linear"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "analyze: 1 zone(s), 2022-06-01 to 2022-06-04" in res.stderr
    assert len(list((tmp_path / "out").glob("R_field_1_2022-06-01_2022-06-04_*"))) == 2


def test_two_lai_files_for_one_date_are_an_error_naming_both(tmp_path, lai, field):
    src = tmp_path / "lai" / "R_10m_2022-06-01_LAI.tif"
    (tmp_path / "lai" / "R_10.0m_2022-06-01_LAI.tif").write_bytes(src.read_bytes())
    with pytest.raises(InputError, match="two files for R on 2022-06-01") as exc:
        analyze(tmp_path / "lai", tmp_path / "out", "R", field, resolution=10)
    assert "R_10.0m_2022-06-01_LAI.tif" in str(exc.value) and "R_10m_2022-06-01_LAI.tif" in str(exc.value)
    assert "R_10.0m_2022-06-01_LAI.tif" in cli_error(tmp_path, field)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_zone_no_raster_meets_is_skipped_by_name_and_none_is_an_error(tmp_path, lai, polygon_writer,
                                                                        caplog):
    far = pixel_box(1000, 1000, 1002, 1002)  # 10 km away
    geom = polygon_writer("fields.geojson", [pixel_box(1, 1, 3, 3), far], FID=[1, 7])
    res = analyze(tmp_path / "lai", tmp_path / "out", "R", geom, resolution=10)
    assert [z.name for z in res.zones] == ["1"] and list(res.skipped) == ["7"]
    assert "meets no LAI raster" in res.skipped["7"] and "skipped: 7" in caplog.text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "MANIFEST.json", "R_fields_1_2022-06-01_2022-06-04_MAX.tif", "R_fields_1_2022-06-01_2022-06-04_STATS.csv"]
    only_far = polygon_writer("far.geojson", [far], FID=[7])
    with pytest.raises(InputError, match="overlap|meets no LAI raster") as exc:
        analyze(tmp_path / "lai", tmp_path / "out2", "R", only_far, resolution=10, options=AnalysisOptions(
            mode="poly_agg"))
    assert exc.value.path == str(only_far)


def test_min_zone_pixels_skips_small_zones_with_the_reason(tmp_path, lai, polygon_writer):
    geom = polygon_writer("fields.geojson", [pixel_box(0, 0, 3, 3), pixel_box(4, 4, 5, 5)], FID=[1, 2])
    res = analyze(tmp_path / "lai", tmp_path / "out", "R", geom, resolution=10,
                  options=AnalysisOptions(min_zone_pixels=4))
    assert [z.name for z in res.zones] == ["1"]
    assert res.skipped == {"2": "has fewer than --min-zone-pixels 4 pixels on the LAI grid"}
    line = CliRunner().invoke(cli, ["analyze", str(tmp_path / "lai"), str(geom), "--region", "R", "-o",
                                    str(tmp_path / "o2"), "--res", "10", "--min-zone-pixels", "4"]).output
    # one line per reason, naming the zones (one line per zone was thousands for a national file)
    assert "1 zone(s) skipped: each has fewer than --min-zone-pixels 4 pixels on the LAI grid: 2" in " ".join(
        line.split())


def test_multi_layer_geopackage_needs_a_layer_and_polygons(tmp_path, lai):
    import geopandas as gpd
    from conftest import ORIGIN
    from shapely.geometry import LineString, Point

    gpkg = tmp_path / "mixed.gpkg"
    x, y = ORIGIN
    gpd.GeoDataFrame({"FID": [1]}, geometry=[LineString([(x, y - 5), (x + 50, y - 5)])],
                     crs="EPSG:32632").to_file(gpkg, layer="roads")
    fields = gpd.GeoDataFrame({"FID": [1]}, geometry=[pixel_box(1, 1, 3, 3)], crs="EPSG:32632")
    fields.to_file(gpkg, layer="fields")
    with pytest.raises(InputError, match=r"has 2 layers: roads \(LineString\), fields \(Polygon\); choose one"):
        analyze(tmp_path / "lai", tmp_path / "out", "R", gpkg, resolution=10)
    with pytest.raises(InputError, match="has no layer 'parcels'; its layers: roads"):
        analyze(tmp_path / "lai", tmp_path / "out", "R", gpkg, resolution=10,
                options=AnalysisOptions(layer="parcels"))
    with pytest.raises(InputError, match=r"geometries must be polygons .*; found LineString \(1\)"):
        analyze(tmp_path / "lai", tmp_path / "out", "R", gpkg, resolution=10, options=AnalysisOptions(layer="roads"))
    res = analyze(tmp_path / "lai", tmp_path / "out", "R", gpkg, resolution=10,
                  options=AnalysisOptions(layer="fields"))
    assert [z.name for z in res.zones] == ["1"]
    line = cli_error(tmp_path, gpkg)
    assert str(gpkg) in line and "--layer" in line
    pts = tmp_path / "points.geojson"
    gpd.GeoDataFrame({"FID": [1, 2]}, geometry=[Point(x + 5, y - 5), Point(x + 15, y - 15)],
                     crs="EPSG:32632").to_file(pts)
    assert "found Point (2)" in cli_error(tmp_path, pts)


def test_projected_coordinates_in_a_geojson_without_crs(tmp_path, lai):
    import json

    from conftest import ORIGIN

    x, y = ORIGIN
    ring = [[x + 10, y - 10], [x + 30, y - 10], [x + 30, y - 30], [x + 10, y - 30], [x + 10, y - 10]]
    geom = tmp_path / "utm.geojson"  # UTM metres, no crs member: GeoJSON says EPSG:4326
    geom.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "FID": 1}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    with pytest.raises(InputError, match="coordinates are not lon/lat") as exc:
        analyze(tmp_path / "lai", tmp_path / "out", "R", geom, resolution=10)
    assert "475790" in str(exc.value)
    assert "coordinates are not lon/lat" in cli_error(tmp_path, geom)


def _tagged(path, model, inputs):
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(VERCYE_MODEL=model, VERCYE_MODEL_INPUTS=",".join(inputs))


def test_products_of_the_wrong_network_or_calibration_are_refused(tmp_path, lai_writer, polygon_writer):
    """A Landsat product made by a Sentinel-2 network, or an adjustment fitted for another
    model than the products': refused by name, never analysed (the same rule as predict's)."""
    from conftest import write_raster

    from vercye_lai.analysis import analyze
    from vercye_lai.model.calibration import Calibration
    from vercye_lai.stack import L8_BANDS, S2_BANDS_20M

    s2 = lai_writer("2022-05-01", np.full((6, 6), 2.0, np.float32))
    _tagged(s2, "sl2p", S2_BANDS_20M)
    g = polygon_writer("f.geojson", [pixel_box(0, 0, 4, 4)], FID=[1])
    l30 = write_raster(tmp_path / "lai" / "R_30m_2022-05-03_L30_LAI.tif", np.full((2, 2), 2.0, np.float32),
                       nodata=np.nan, transform=rasterio.transform.from_origin(475780.0, 5255000.0, 30, 30))
    _tagged(l30, "sl2p", S2_BANDS_20M)  # an L30 product made by the S2 network
    with pytest.raises(InputError, match=r"L30 product made by a Sentinel-2 network \(sl2p\)"):
        analyze(tmp_path / "lai", tmp_path / "out", "R", g, resolution=10)
    _tagged(l30, "sl2p-l8", L8_BANDS)
    assert analyze(tmp_path / "lai", tmp_path / "out", "R", g, resolution=10).zones  # the right network
    cal = Calibration("poly1", 0.1, (1.1, 0.0), "sl2p-l8").write(tmp_path / "cal.json")
    with pytest.raises(InputError, match="fitted for model sl2p-l8, this product was made by sl2p"):
        analyze(tmp_path / "lai", tmp_path / "out2", "R", g, resolution=10, options=AnalysisOptions(
            adjustment=str(cal), sensors=("s2",)))


@pytest.mark.slow  # 1 s: four predicts and a cube
def test_a_season_of_two_models_is_said_not_hidden(tmp_path):
    """Some dates predicted again with another --model: analyze logs which model made which
    dates, the cube names each date's; one per-unit model's units are one series (no warning)."""
    import shutil

    from conftest import AOI, copy_qvidja

    s2 = copy_qvidja(tmp_path / "s2")
    first = tmp_path / "first"
    first.mkdir()
    shutil.move(s2 / "qvidja_20m_2023-06-09.tif", first)
    runner = CliRunner()
    for folder, model in ((first, "snap-3.0-s2a"), (s2, "sl2p")):
        assert runner.invoke(cli, ["-q", "predict", str(folder), str(tmp_path / "lai"), "--region", "qvidja",
                                   "--model", model]).exit_code == 0
    r = runner.invoke(cli, ["analyze", str(tmp_path / "lai"), str(AOI), "-o", str(tmp_path / "a")])
    assert r.exit_code == 0 and ("the Sentinel-2 products mix models (the series steps where the model changes): "
                                 "snap-3.0-s2a (2023-06-09); sl2p (2023-06-11, 2023-06-14); predict the season "
                                 "again with one --model") in " ".join(r.output.split()), r.output
    xr = pytest.importorskip("xarray")
    assert runner.invoke(cli, ["-q", "cube", str(tmp_path / "lai"), str(tmp_path / "c.nc")]).exit_code == 0
    with xr.open_dataset(tmp_path / "c.nc") as ds:
        assert ds.attrs["model"] == "snap-3.0-s2a,sl2p" and ds.attrs["models"] == "snap-3.0-s2a,sl2p,sl2p"
    assert runner.invoke(cli, ["-q", "predict", str(s2), str(tmp_path / "lai"), "--region", "qvidja",
                               "--model", "snap-3.0-s2b"]).exit_code == 0  # 2A then 2B: one family
    r = runner.invoke(cli, ["analyze", str(tmp_path / "lai"), str(AOI), "-o", str(tmp_path / "b")])
    assert r.exit_code == 0 and "mix models" not in r.output
