"""predict-table: the rows of a table through the same code as predict's pixels."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner
from conftest import DATA, REPO, cli_error_line, copy_qvidja

from vercye_lai.acquire.angles import cosines, solar_position
from vercye_lai.cli.main import cli
from vercye_lai.errors import InputError, ModelError
from vercye_lai.model.sl2p import FLAG_HAZE
from vercye_lai.predict import PredictOptions
from vercye_lai.predict.table import (
    TableOptions,
    predict_table,
    read_table,
    row_lonlat,
    row_times,
    table_inputs,
    write_table,
)

INSITU = DATA / "insitu_ch" / "insitu_177.csv"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def stack_pixels(src, n=400) -> pd.DataFrame:
    """The stack's valid pixels as a table (stored integers, as an Earth Engine sample has)."""
    with rasterio.open(src) as ds:
        data = ds.read(masked=True)
        names = ds.descriptions
    valid = ~data.mask.any(axis=0)
    rows, cols = np.nonzero(valid)
    df = pd.DataFrame({name: data.data[i][rows, cols] for i, name in enumerate(names)})
    df["row"], df["col"] = rows, cols
    return df.iloc[:: max(1, len(df) // n)].reset_index(drop=True)


def test_a_row_and_a_pixel_give_the_same_values(tmp_path):
    s2 = copy_qvidja(tmp_path / "s2")
    # float32 products: bit for bit (int16, the default, rounds to half a step: test_storage)
    assert run("-q", "predict", s2, tmp_path / "lai", "--region", "qvidja", "--uncertainty",
               "--variable", "LAI", "--variable", "FAPAR", "--dtype", "float32").exit_code == 0
    src = s2 / "qvidja_20m_2023-06-11.tif"
    df = stack_pixels(src)
    assert pd.api.types.is_integer_dtype(df["B3"])  # read x 1e-4, like the integer stack
    out = predict_table(df, predict=PredictOptions(uncertainty=True, variables=("LAI", "FAPAR")))
    for var in ("LAI", "FAPAR"):
        base = tmp_path / "lai" / f"qvidja_20m_2023-06-11_{var}"
        for column, path in ((var, f"{base}.tif"), (f"{var} flags", f"{base}_flags.tif"),
                             (f"{var} uncertainty", f"{base}_uncertainty.tif")):
            with rasterio.open(path) as ds:
                pixel = ds.read(1)[df["row"], df["col"]]
            np.testing.assert_array_equal(out[column].to_numpy(), pixel, err_msg=column)


def test_band_names_scaling_and_angles_in_degrees(tmp_path):
    df = stack_pixels(copy_qvidja(tmp_path / "s2") / "qvidja_20m_2023-06-11.tif", n=50)
    ref = predict_table(df)["LAI"].to_numpy()
    # B03 spelling, 0-1 floats, angles in degrees instead of cosines
    alt = df.rename(columns={"B3": "B03", "B4": "b04", "B8A": "B08A"})
    for b in ("B03", "b04", "B5", "B6", "B7", "B08A", "B11", "B12"):
        alt[b] = alt[b] * 1e-4
    alt["sun_zenith"] = np.degrees(np.arccos(df["cosSZA"] * 1e-4))
    alt["view_zenith"] = np.degrees(np.arccos(df["cosVZA"] * 1e-4))
    alt["relative_azimuth"] = np.degrees(np.arccos(np.clip(df["cosRAA"] * 1e-4, -1, 1)))
    alt = alt.drop(columns=["cosSZA", "cosVZA", "cosRAA"])
    np.testing.assert_allclose(predict_table(alt)["LAI"], ref, atol=2e-4)
    # --scale on stored integers gives the same as the x 1e-4 default
    scaled = df.copy()
    for b in ("cosVZA", "cosSZA", "cosRAA"):
        scaled[b] = scaled[b] * 1e-4
    np.testing.assert_allclose(predict_table(scaled, predict=PredictOptions(scale=1e-4))["LAI"], ref, atol=1e-5)


def test_sun_angles_from_the_time_and_position():
    df = pd.DataFrame({"B3": [0.05], "B4": [0.03], "B5": [0.08], "B6": [0.25], "B7": [0.3], "B8A": [0.33],
                       "B11": [0.15], "B12": [0.07], "time": ["2022-05-11T10:16:01"], "lon": [8.69],
                       "lat": [47.44]})
    when = dt.datetime(2022, 5, 11, 10, 16, 1, tzinfo=dt.UTC)
    zen, az = solar_position(when, 8.69, 47.44)
    c = cosines(zen, az, 0.0, 0.0)
    x = table_inputs(df, ("cosVZA", "cosSZA", "cosRAA", "B3")).x
    np.testing.assert_allclose(x[:3, 0], [c["cosVZA"], c["cosSZA"], c["cosRAA"]], atol=1e-6)
    # an explicit zone is honoured
    df2 = df.assign(time=["2022-05-11T12:16:01+02:00"])
    np.testing.assert_allclose(table_inputs(df2, ("cosSZA",)).x, x[1:2], atol=1e-6)
    out = predict_table(df)
    assert {"cosVZA", "cosSZA", "cosRAA"} <= set(out.columns)  # the computed inputs are written
    with pytest.raises(InputError, match="without a time of day"):
        table_inputs(df.assign(time=["2022-05-11"]), ("cosSZA",))
    with pytest.raises(InputError, match="lon/lat"):
        table_inputs(df.drop(columns=["lon"]), ("cosSZA",))
    with pytest.raises(InputError, match="not lon/lat"):
        table_inputs(df.assign(lon=[470000.0]), ("cosSZA",))


def test_bad_tables_are_clear_errors(tmp_path):
    t = tmp_path / "t.csv"
    pd.DataFrame({"B3": [481.0, 520.0], "B4": [300.0, 310.0], "cosSZA": [0.8, 0.8]}).to_csv(t, index=False)
    line = cli_error_line(run("predict-table", t, tmp_path / "o.csv"))
    assert str(t) in line and "B5" in line and "its columns" in line
    df = pd.read_csv(INSITU).head(20)
    for b in ("B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12"):
        df[b] = df[b] * 10000  # floats stored x 10000 without a word
    df.to_csv(t, index=False)
    line = cli_error_line(run("predict-table", t, tmp_path / "o.csv"))
    assert "not physical" in line and "--scale 1e-4" in line
    assert not (tmp_path / "o.csv").exists()
    assert run("-q", "predict-table", t, tmp_path / "o.csv", "--scale", "1e-4").exit_code == 0


def test_vector_and_parquet_tables(tmp_path):
    pytest.importorskip("pyarrow")
    df = pd.read_csv(INSITU).head(12)
    g = gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]), geometry=gpd.points_from_xy(df.lon, df.lat),
                         crs=4326).to_crs(3857)  # points in another CRS
    g.to_file(tmp_path / "in.gpkg")
    line = cli_error_line(run("-q", "predict-table", tmp_path / "in.gpkg", tmp_path / "out.gpkg"))
    assert "columns LAI, lai differ only in case" in line  # a GeoPackage cannot hold both
    g.rename(columns={"lai": "insitu"}).to_file(tmp_path / "in.gpkg")
    assert run("-q", "predict-table", tmp_path / "in.gpkg", tmp_path / "out.gpkg").exit_code == 0
    via_points = read_table(tmp_path / "out.gpkg")
    assert via_points.crs.to_epsg() == 3857 and len(via_points) == 12
    write_table(df, tmp_path / "in.parquet")
    assert run("-q", "predict-table", tmp_path / "in.parquet", tmp_path / "out.parquet").exit_code == 0
    via_lonlat = read_table(tmp_path / "out.parquet")
    np.testing.assert_allclose(via_points["LAI"], via_lonlat["LAI"], atol=1e-5)


def test_the_published_figures_on_the_177_in_situ_points():
    """Issue 11's anchors (sun from the scene time, nadir view, every row as published):
    LEAF SL2P RMSE 1.34, bias +0.60, r 0.83. With the haze test (the default), the 12 rows of
    the 2022-06-20 scene (0.1 bright in every band: an offset missing) are masked, and flagged."""
    df = pd.read_csv(INSITU)
    out = predict_table(df, predict=PredictOptions(haze="off"))
    d = out["LAI"] - out["lai"]
    assert np.sqrt(np.mean(d**2)) == pytest.approx(1.34, abs=0.01)
    assert d.mean() == pytest.approx(0.60, abs=0.01)
    assert np.corrcoef(out["LAI"], out["lai"])[0, 1] == pytest.approx(0.83, abs=0.01)
    masked = predict_table(df)
    hazy = masked["LAI"].isna()
    assert set(df.loc[hazy, "scene_id"].str[11:19]) == {"20220620"} and hazy.sum() == 12
    assert (masked.loc[hazy, "LAI flags"] == FLAG_HAZE).all() and (masked.loc[~hazy, "LAI flags"] & FLAG_HAZE == 0).all()
    flagged = predict_table(df, predict=PredictOptions(haze="flag"))
    np.testing.assert_array_equal(flagged["LAI"], out["LAI"])
    np.testing.assert_array_equal(flagged["LAI flags"], masked["LAI flags"])


def test_predict_writes_calibrated_products_equal_to_the_table(tmp_path):
    from vercye_lai.model.calibration import Calibration

    s2 = copy_qvidja(tmp_path / "s2")
    assert run("-q", "predict", s2, tmp_path / "plain", "--region", "qvidja", "--dtype", "float32").exit_code == 0
    net_inputs = ("cosVZA", "cosSZA", "cosRAA", "B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12")
    refit = Calibration("refit-doy", 0.01, (0.9, 0.5, -0.3, -4.0, -3.0, -0.1, 1.5, 0.05), "sl2p",
                        inputs=net_inputs, sigma=(0.2, 0.1, 0.3)).write(tmp_path / "cal.json")
    r = run("-q", "predict", s2, tmp_path / "cal", "--region", "qvidja", "--calibration", refit, "--uncertainty",
            "--dtype", "float32")
    assert r.exit_code == 0, r.output
    name = "qvidja_20m_2023-06-11_LAI.tif"
    with rasterio.open(tmp_path / "cal" / name) as ds:
        calibrated, tags = ds.read(1), ds.tags()
    with rasterio.open(tmp_path / "cal" / name.replace(".tif", "_uncertainty.tif")) as ds:
        sigma, sigma_tags = ds.read(1), ds.tags()
    # the calibration's σ, not the network's, and the raster says which
    assert sigma_tags["VERCYE_UNCERTAINTY"].startswith("calibrated refit-doy ")
    ok = np.isfinite(calibrated)
    np.testing.assert_allclose(sigma[ok], np.sqrt(0.3**2 + (0.2 + 0.1 * calibrated[ok]) ** 2), rtol=1e-6)
    with rasterio.open(tmp_path / "plain" / name) as ds:
        plain = ds.read(1)
    assert tags["VERCYE_CALIBRATION"].startswith("refit-doy ") and tags["VERCYE_CALIBRATION"].endswith("cal.json")
    assert not np.allclose(calibrated, plain, equal_nan=True)
    # a pixel and a row give the same calibrated value (the table's date: the product's)
    df = stack_pixels(s2 / "qvidja_20m_2023-06-11.tif", n=80).assign(date="2023-06-11")
    out = predict_table(df, predict=PredictOptions(calibration=refit), options=TableOptions(time_column="date"))
    np.testing.assert_allclose(out["LAI Calibrated"], calibrated[df["row"], df["col"]], atol=1e-5)
    np.testing.assert_allclose(out["LAI Calibrated uncertainty"], sigma[df["row"], df["col"]], atol=1e-5)
    np.testing.assert_array_equal(out["LAI"], plain[df["row"], df["col"]])
    # a rerun without the calibration (or with another) makes the products again
    r = run("predict", s2, tmp_path / "cal", "--region", "qvidja")
    assert "3 done" in r.output, r.output
    wrong = Calibration("poly1", 0.1, (1.0, 0.0), "snap-3.0-s2a").write(tmp_path / "snap.json")
    line = cli_error_line(run("-q", "predict", s2, tmp_path / "x", "--region", "qvidja", "--calibration", wrong))
    assert "calibration fitted for model snap-3.0-s2a, not sl2p" in line


def test_rows_with_a_missing_input_are_nodata_and_flagged():
    df = pd.read_csv(INSITU).head(5)
    df.loc[2, "B05"] = np.nan
    out = predict_table(df)
    assert np.isnan(out.loc[2, "LAI"]) and out.loc[2, "LAI flags"] == 255
    assert out["LAI"].drop(index=2).notna().all() and (out["LAI flags"].drop(index=2) != 255).all()


#: the tests whose claim is "the same bits by another path" (table vs raster, one block vs many)
SAME_BITS = ["tests/test_table.py::test_a_row_and_a_pixel_give_the_same_values",
             "tests/test_table.py::test_predict_writes_calibrated_products_equal_to_the_table",
             "tests/test_predict.py::test_blocks_and_workers_do_not_change_the_result",
             "tests/test_model.py::test_network_output_is_independent_of_the_block"]


@pytest.mark.slow
@pytest.mark.parametrize("coretype", ["Haswell", "SkylakeX"])
def test_same_bits_under_an_avx2_and_an_avx512_blas_kernel(coretype):
    """Those tests again under OpenBLAS' AVX2 (Haswell) and AVX-512 (SkylakeX) kernels, whatever
    this machine picks by itself (a CPU without AVX-512 falls back to its best kernel)."""
    env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                        *SAME_BITS], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stdout[-3000:]
    assert f"{len(SAME_BITS)} passed" in r.stdout.splitlines()[-1], r.stdout[-500:]


def test_tables_as_spreadsheets_write_them(tmp_path):
    """Trailing empty rows are left out (and said), a header-only table is 'no rows', and two
    columns of one band are refused by name: never a silent pick or a misleading cause."""
    df = pd.read_csv(DATA / "insitu_ch" / "insitu_177.csv").head(40)
    trailing = tmp_path / "trailing.csv"
    trailing.write_text(df.to_csv(index=False) + "," * (len(df.columns) - 1) + "\n" + "," * (len(df.columns) - 1) + "\n")
    r = CliRunner().invoke(cli, ["predict-table", str(trailing), str(tmp_path / "out.csv")])
    assert r.exit_code == 0, r.output
    assert "2 empty row(s) left out" in r.output and len(pd.read_csv(tmp_path / "out.csv")) == 40
    header = tmp_path / "header.csv"
    header.write_text(",".join(df.columns) + "\n")
    assert "the table has no rows (only its header)" in cli_error_line(
        CliRunner().invoke(cli, ["-q", "predict-table", str(header), str(tmp_path / "o2.csv")]))
    twice = tmp_path / "twice.csv"
    band = next(c for c in df.columns if c.upper() in ("B4", "B04"))
    df.assign(**{"B04" if band.upper() == "B4" else "B4": df[band]}).to_csv(twice, index=False)
    line = cli_error_line(CliRunner().invoke(cli, ["-q", "predict-table", str(twice), str(tmp_path / "o3.csv")]))
    assert "are both band B4: keep one" in line


def test_angle_columns_are_degrees_checked_against_the_sun(tmp_path):
    """A sun zenith column holding cosines, or degrees that are not the sun's at the row's
    time and place, is refused by name: never a plausible-looking wrong LAI."""
    df = pd.read_csv(DATA / "insitu_ch" / "insitu_177.csv").head(12)
    t, (lon, lat) = row_times(df), row_lonlat(df)
    sza = np.array([solar_position(a.to_pydatetime(), x, y)[0] for a, x, y in zip(t, lon, lat)])
    good = df.assign(sun_zenith=sza, view_zenith=4.0, relative_azimuth=150.0)
    assert np.isfinite(predict_table(good)["LAI"]).all()
    for bad, message in ((np.cos(np.radians(sza)), "holds values of at most 1"),
                         (sza + 25.0, "while the sun at that time and place stood at"),
                         (sza + 100.0, "zenith angles outside 0–90°")):
        with pytest.raises(InputError, match=message):
            predict_table(good.assign(sun_zenith=bad))


def test_a_per_unit_model_takes_each_rows_unit_from_its_spacecraft_column():
    """snap-3.0 on a table of Earth Engine samples: each row through the network of the unit
    its SPACECRAFT_NAME names (2C through 2B's, as SNAP ships it); without such a column, or
    with a row that names none, an error — never one unit's network for every row."""
    df = stack_pixels(DATA / "qvidja" / "qvidja_20m_2023-06-11.tif", n=60)
    df["SPACECRAFT_NAME"] = np.resize(["Sentinel-2A", "Sentinel-2B", "Sentinel-2C"], len(df))
    out = predict_table(df, predict=PredictOptions(model="snap-3.0"))
    for unit, model in (("A", "snap-3.0-s2a"), ("B", "snap-3.0-s2b"), ("C", "snap-3.0-s2b")):
        rows = df["SPACECRAFT_NAME"] == f"Sentinel-2{unit}"
        alone = predict_table(df[rows], predict=PredictOptions(model=model))
        np.testing.assert_array_equal(out.loc[rows, "LAI"], alone["LAI"])
        np.testing.assert_array_equal(out.loc[rows, "LAI flags"], alone["LAI flags"])
    assert not np.array_equal(out.loc[df.index[:1], "LAI"], predict_table(
        df[:1], predict=PredictOptions(model="snap-3.0-s2b"))["LAI"])  # the units' networks differ
    with pytest.raises(ModelError, match="snap-3.0-s2a or snap-3.0-s2b") as e:
        predict_table(df.drop(columns="SPACECRAFT_NAME"), predict=PredictOptions(model="snap-3.0"))
    # a table's columns, not a stack's PLATFORM tag
    assert "a column spacecraft_name or platform or spacecraft" in str(e.value) and "PLATFORM tag" not in str(e.value)
    df.loc[df.index[3], "SPACECRAFT_NAME"] = "Landsat-9"
    with pytest.raises(InputError, match=r"1 row\(s\) name no Sentinel-2 unit in column 'SPACECRAFT_NAME' \(row 3"):
        predict_table(df, predict=PredictOptions(model="snap-3.0"))


def test_a_time_column_that_holds_no_times_is_one_line():
    """It ended with pandas' advice, several lines long."""
    from vercye_lai.predict.table import row_times

    df = pd.DataFrame({"site": ["a", "b"], "when": ["2022-06-01T10:15:00", "noon"]})
    with pytest.raises(InputError) as e:
        row_times(df, "site", path="t.csv")
    assert str(e.value) == ("t.csv: column 'site' does not hold ISO times (YYYY-MM-DDTHH:MM:SS, or Sentinel-2 "
                            "product names): 'a'")
    with pytest.raises(InputError, match="'noon'$"):
        row_times(df, "when", path="t.csv")
