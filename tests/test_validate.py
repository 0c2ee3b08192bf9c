"""validate: in-situ points matched to the right pixel and date, on tiny rasters."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import ORIGIN, cli_error_line, write_raster
from shapely.geometry import Point, box

from vercye_lai.cli.main import cli
from vercye_lai.insitu.validate import ValidateOptions, match_points, match_series, read_insitu


def run(*args):
    return CliRunner().invoke(cli, ["-q", *map(str, args)])


def centre(col: float, row: float) -> Point:
    """The centre of pixel (col, row) of write_raster's 10 m grid, in EPSG:32632."""
    return Point(ORIGIN[0] + 10 * col + 5, ORIGIN[1] - 10 * row - 5)


@pytest.fixture
def season(tmp_path):
    """Two LAI dates on a 6 x 6 grid: value = 10 * row + col (+ 0.5 on the second date);
    pixel (2, 2) is cloud (NaN) on 2022-06-01; flags and uncertainty beside the first."""
    rows, cols = np.mgrid[0:6, 0:6]
    v = (10 * rows + cols).astype(np.float32) / 10
    first = v.copy()
    first[2, 2] = np.nan
    lai = tmp_path / "lai"
    write_raster(lai / "R_10m_2022-06-01_LAI.tif", first, nodata=np.nan)
    write_raster(lai / "R_10m_2022-06-01_LAI_flags.tif", np.where(cols == 5, 4, 0).astype(np.uint8), nodata=255)
    write_raster(lai / "R_10m_2022-06-01_LAI_uncertainty.tif", np.full((6, 6), 0.3, np.float32), nodata=np.nan)
    write_raster(lai / "R_10m_2022-06-04_LAI.tif", v + 0.5, nodata=np.nan)
    return lai


def points(tmp_path, rows: list[tuple[Point, str, float]], crs="EPSG:4326") -> object:
    g = gpd.GeoDataFrame({"date": [r[1] for r in rows], "lai": [r[2] for r in rows],
                          "site": ["a", "b"] * (len(rows) // 2) + ["a"] * (len(rows) % 2)},
                         geometry=[r[0] for r in rows], crs="EPSG:32632").to_crs(crs)
    path = tmp_path / "insitu.gpkg"
    g.to_file(path)
    return path


def test_points_match_the_pixel_under_them_and_the_nearest_clear_date(tmp_path, season):
    path = points(tmp_path, [
        (centre(1, 3), "2022-06-02", 3.0),     # nearest date 06-01 (1 day; 06-04 is 2)
        (centre(2, 2), "2022-06-01", 2.0),     # cloud on 06-01: the next clear date, 06-04
        (centre(5, 0), "2022-06-01 10:30:00", 1.0),  # flags and uncertainty of 06-01
        (Point(ORIGIN[0] - 500, ORIGIN[1]), "2022-06-01", 1.0),  # outside every raster
        (centre(0, 0), "2022-07-01", 1.0),     # no date within 5 days
        (centre(4, 4), "2022-06-03", 1.0),     # tie (06-01 is 2 days, 06-04 is 1): 06-04
    ])
    g = read_insitu(path, ValidateOptions(group_column="site"))
    m = match_points(g, season, "R", resolution=10, options=ValidateOptions(group_column="site"))
    assert m["date"].tolist()[:3] == ["2022-06-01", "2022-06-04", "2022-06-01"]
    np.testing.assert_allclose(m["LAI"].iloc[:3], [3.1, 2.2 + 0.5, 0.5], atol=1e-6)
    assert m["day_gap"].iloc[:3].tolist() == [-1, 3, 0]
    assert m.loc[2, "LAI flags"] == 4 and m.loc[2, "LAI uncertainty"] == pytest.approx(0.3)
    assert m.loc[3, "reason"] == "outside the LAI rasters" and np.isnan(m.loc[3, "LAI"])
    assert m.loc[4, "reason"] == "no LAI date within 5 day(s)"
    assert m.loc[5, "date"] == "2022-06-04" and m.loc[5, "LAI"] == pytest.approx(4.4 + 0.5)
    assert m["group"].tolist()[:2] == ["a", "b"]
    # the same points in another CRS match the same pixels
    g3857 = read_insitu(points(tmp_path, [(centre(1, 3), "2022-06-02", 3.0)], crs="EPSG:3857"))
    assert match_points(g3857, season, "R", resolution=10)["LAI"].item() == pytest.approx(3.1)


def test_a_buffer_averages_the_valid_pixels_within_it(tmp_path, season):
    g = read_insitu(points(tmp_path, [(centre(2, 2), "2022-06-04", 2.0)]))
    m = match_points(g, season, "R", resolution=10, options=ValidateOptions(buffer=10.0))
    # centres within 10 m: the pixel and its 4 neighbours
    expected = np.mean([2.2, 1.2, 3.2, 2.1, 2.3]) + 0.5
    assert m["LAI"].item() == pytest.approx(expected, abs=1e-6) and m["n_pixels"].item() == 5


def test_stack_band_values_at_the_point(tmp_path, season):
    stacks = tmp_path / "stacks"
    data = np.stack([np.full((6, 6), 8000, np.int16), np.full((6, 6), 512, np.int16)])
    write_raster(stacks / "R_10m_2022-06-01.tif", data, descriptions=["cosSZA", "B03"], nodata=-32768)
    g = read_insitu(points(tmp_path, [(centre(1, 3), "2022-06-01", 3.0)]))
    m = match_points(g, season, "R", resolution=10, stacks_dir=stacks)
    assert m["cosSZA"].item() == pytest.approx(0.8) and m["B3"].item() == pytest.approx(0.0512)


def test_cli_writes_the_tables_and_the_plot_and_fails_clearly(tmp_path, season):
    path = points(tmp_path, [(centre(1, 3), "2022-06-02", 3.0), (centre(3, 3), "2022-06-04", 3.0)])
    r = run("validate", path, season, "--region", "R", "--res", "10", "-o", tmp_path / "v",
            "--group-column", "site")
    assert r.exit_code == 0, r.output
    metrics = pd.read_csv(tmp_path / "v" / "validation_metrics.csv")
    assert metrics["group"].tolist() == ["all", "a", "b"] and metrics["n"].tolist() == [2, 1, 1]
    assert (tmp_path / "v" / "validation_scatter.png").stat().st_size > 10_000
    assert "| LAI | all | 2 |" in (tmp_path / "v" / "validation_metrics.md").read_text()
    line = cli_error_line(run("validate", path, season, "--region", "R", "--res", "10", "-o",
                              tmp_path / "w", "--value-column", "glai"))
    assert str(path) in line and "has no column 'glai' (--value-column)" in line
    far = points(tmp_path, [(centre(1, 3), "2023-01-01", 3.0)])
    line = cli_error_line(run("validate", far, season, "--region", "R", "--res", "10", "-o", tmp_path / "w"))
    assert "no in-situ measurement found an estimate (no LAI date within 5 day(s))" in line
    gpd.GeoDataFrame({"date": ["2022-06-01"], "lai": [1.0]}, geometry=[box(0, 0, 1, 1)],
                     crs=4326).to_file(tmp_path / "poly.geojson")
    line = cli_error_line(run("validate", tmp_path / "poly.geojson", season, "--region", "R", "-o", tmp_path / "w"))
    assert "must be points, found Polygon" in line


def test_series_averages_the_measurements_of_a_zone_and_day(tmp_path):
    import json

    gpd.GeoDataFrame(
        {"date": ["2022-05-01 10:00:00", "2022-05-01 11:00:00", "2022-05-09 10:00:00", "2022-05-02 10:00:00"],
         "lai": [2.0, 4.0, 5.0, 1.0], "parcel": ["A", "A", "A", "B"]},
        geometry=[Point(8.68, 47.44)] * 4, crs=4326,
    ).to_file(tmp_path / "m.geojson")
    series = tmp_path / "series"
    series.mkdir()
    (series / "a.csv").write_text(
        "Date,n_pixels,interpolated,LAI Mean,LAI Mean Adjusted\n"
        "2022-05-01,10,0,3.5,3.9\n2022-05-02,0,1,3.6,4.0\n2022-05-09,,,,\n")
    (series / "MANIFEST.json").write_text(json.dumps({"zones": [{"name": "A", "csv": "a.csv"}]}))
    options = ValidateOptions(zone_column="parcel")
    pairs = match_series(read_insitu(tmp_path / "m.geojson", options, points=False), series, options=options)
    assert pairs.to_dict("records") == [{
        "zone": "A", "group": "A", "insitu_date": "2022-05-01", "n_measurements": 2, "insitu": 3.0,
        "interpolated": 0, "LAI Mean": 3.5, "LAI Mean Adjusted": 3.9}]


def test_series_of_an_analyze_folder_without_a_manifest(tmp_path):
    gpd.GeoDataFrame({"date": ["2022-05-01"], "lai": [2.0], "parcel": ["A_1"]},
                     geometry=[Point(8.68, 47.44)], crs=4326).to_file(tmp_path / "m.geojson")
    series = tmp_path / "series"
    series.mkdir()
    (series / "R_my_fields_A_1_2022-04-01_2022-06-01_STATS.csv").write_text(
        "Date,n_pixels,interpolated,LAI Mean,LAI Mean Adjusted\n2022-05-01,10,0,3.5,3.9\n")
    (series / "R_my_fields_B_A_1_x_STATS.csv").write_text("not this one\n")
    options = ValidateOptions(zone_column="parcel")
    pairs = match_series(read_insitu(tmp_path / "m.geojson", options, points=False), series, options=options)
    assert pairs[["zone", "LAI Mean"]].to_dict("records") == [{"zone": "A_1", "LAI Mean": 3.5}]


def test_points_take_the_nearest_date_of_any_sensor(tmp_path, season):
    from rasterio.transform import from_origin

    write_raster(season / "R_30m_2022-06-03_L30_LAI.tif", np.full((2, 2), 4.25, np.float32), nodata=np.nan,
                 transform=from_origin(ORIGIN[0], ORIGIN[1], 30, 30))
    g = read_insitu(points(tmp_path, [(centre(1, 3), "2022-06-03", 3.0), (centre(1, 3), "2022-06-01", 3.0)]))
    m = match_points(g, season, "R", resolution=10)
    assert m["sensor"].tolist() == ["l30", "s2"] and m.loc[0, "LAI"] == pytest.approx(4.25)
    only = match_points(g, season, "R", resolution=10, options=ValidateOptions(sensors=("s2",)))
    assert only["sensor"].tolist() == ["s2", "s2"]


def test_a_table_of_points_reads_its_lon_lat_and_names_its_mistakes(tmp_path, season):
    """In-situ tables as spreadsheets write them: lon/lat columns (read as EPSG:4326), and the
    mistakes that used to give a traceback or n = 0 get one line naming the cause."""
    ll = gpd.GeoSeries([centre(1, 3), centre(4, 4)], crs="EPSG:32632").to_crs(4326)
    base = pd.DataFrame({"date": ["2022-06-02", "2022-06-03"], "lai": ["3.0", "1.5"],
                         "lon": ll.x, "lat": ll.y})
    good = tmp_path / "ok.csv"
    base.to_csv(good, index=False)
    r = run("validate", good, season, "-o", tmp_path / "v")
    assert r.exit_code == 0, r.output
    assert pd.read_csv(tmp_path / "v" / "validation_matched.csv")["LAI"].notna().sum() == 2
    cases = {
        "swapped": (base.rename(columns={"lon": "lat", "lat": "lon"}),
                    "with longitude and latitude swapped 2 would: check the coordinate columns"),
        "comma": (base.assign(lai=["3,0", "1,5"]), "column 'lai': 2 value(s) are not numbers, e.g. '3,0': a decimal comma"),
        "dmy": (base.assign(date=["02/06/2022", "03/06/2022"]),
                "column 'date' does not hold ISO dates (YYYY-MM-DD): '02/06/2022'"),
        "nolonlat": (base.drop(columns=["lon"]), "a table without geometry and without lon/lat columns"),
    }
    for name, (df, message) in cases.items():
        path = tmp_path / f"{name}.csv"
        df.to_csv(path, index=False)
        line = cli_error_line(run("validate", path, season, "-o", tmp_path / name))
        assert message in line and "Traceback" not in line, (name, line)


@pytest.mark.parametrize(("values", "found"), [([45.0, 80.0], "2 of 2 LAI value(s) outside -0.5 to 15 (found 45 to 80)"),
                                              ([2.0, -1.0], "1 of 2 LAI value(s) outside -0.5 to 15 (found -1 to 2)")])
def test_measurements_in_another_unit_or_fill_values_are_refused(tmp_path, season, values, found):
    """LAI in percent, or -1 for a missing one: metrics of them would look like metrics."""
    path = points(tmp_path, [(centre(1, 3), "2022-06-01", values[0]), (centre(2, 3), "2022-06-01", values[1])])
    line = cli_error_line(run("validate", path, season, "--region", "R", "--res", "10", "-o", tmp_path / "v"))
    assert str(path) in line and f"column 'lai': {found}" in line and "percent?" in line
    ok = points(tmp_path, [(centre(1, 3), "2022-06-01", 2.0), (centre(2, 3), "2022-06-01", -0.1)])
    assert run("validate", ok, season, "--region", "R", "--res", "10", "-o", tmp_path / "v").exit_code == 0


def test_the_match_functions_take_a_file_or_a_frame_as_a_library_caller_has_them(tmp_path, season):
    """A path failed with "'str' object has no attribute 'geometry'", a GeoDataFrame of one's own
    with KeyError 'insitu_date'; fit_calibration of a DataFrame with an AttributeError."""
    from vercye_lai.insitu import fit_calibration, match_points

    path = points(tmp_path, [(centre(1, 3), "2022-06-01", 3.0), (centre(2, 4), "2022-06-04", 2.0)])
    by_path = match_points(path, season, "R", resolution=10)
    by_frame = match_points(gpd.read_file(path), season, "R", resolution=10)
    read = match_points(read_insitu(path), season, "R", resolution=10)
    pd.testing.assert_frame_equal(by_path, read)
    pd.testing.assert_frame_equal(by_frame, read)
    assert by_path["LAI"].notna().all()
    with pytest.raises(TypeError, match="a CalibrationData, not DataFrame; calibration_data"):
        fit_calibration(by_path, "poly1", model="sl2p")
