"""Bad inputs to analyze: the right error with a clear message, and one CLI line naming the file."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
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
