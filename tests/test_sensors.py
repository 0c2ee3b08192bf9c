"""Landsat 8/9 and HLS: the LEAF Landsat 8 network, picked by its variable id, on real pixels."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
from conftest import DATA

from vercye_lai.io import read_values
from vercye_lai.acquire.platform import s2_platform
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.errors import InputError
from vercye_lai.model import load_network
from vercye_lai.model.registry import _WEIGHTS, MODELS
from vercye_lai.predict import PredictOptions
from vercye_lai.predict.table import predict_table

KANSAS = DATA / "kansas_hls"


def hls_rows() -> pd.DataFrame:
    df = pd.read_csv(KANSAS / "Surface_refelctance_HLSL30_v002.csv", index_col=0)
    return df.drop(columns=["cosRAA"])  # wrong in the file (see NOTICE.md): from SAA and VAA


def float64_leaf(path, variable_id: int, x: np.ndarray) -> np.ndarray:
    """A plain float64 LEAF network, written from the CSV layout alone (not via Network)."""
    with open(path, newline="") as fh:
        rows = [[float(v) for v in r] for r in list(csv.reader(fh))[1:] if r]
    row = next(r for r in rows if int(r[2]) == variable_id)
    blocks, i = [], 5
    while i < len(row):
        n = int(row[i])
        blocks.append(np.array(row[i + 1 : i + 1 + n]))
        i += 1 + n
    scale, offset, w1, b1, w2, b2, out_w, out_b = blocks
    xn = x * scale[:, None] + offset[:, None]
    h = np.tanh(w1.reshape(-1, len(scale)) @ xn + b1[:, None])
    y = w2 @ h + b2[0]
    return (y - out_b[0]) / out_w[0]


def test_the_l8_network_is_picked_by_variable_id_not_row():
    path = _WEIGHTS / MODELS["sl2p-l8"][1]
    with open(path, newline="") as fh:
        first = next(r for r in list(csv.reader(fh))[1:] if r)
    assert int(float(first[2])) == 7  # the file's first data row is DASF
    net = load_network("sl2p-l8", "LAI")
    assert net.inputs == ("cosVZA", "cosSZA", "cosRAA", "B3", "B4", "B5", "B6", "B7")
    out = predict_table(hls_rows(), predict=PredictOptions(model="sl2p-l8"))
    assert 1.0 < out["LAI"].median() < 3.0  # by position ("DASF as LAI") the median is ~0.035


def test_predict_table_equals_a_float64_network_on_hls_l30_rows():
    df = hls_rows()
    out = predict_table(df, predict=PredictOptions(model="sl2p-l8", out_of_range="keep",
                                                   variables=("LAI", "FAPAR")))
    x = np.array([np.cos(np.radians(df["VZA"])), np.cos(np.radians(df["SZA"])),
                  np.cos(np.radians(df["SAA"] - df["VAA"])), df["B3"], df["B4"], df["B5"], df["B6"], df["B7"]])
    x[:2] = df[["cosVZA", "cosSZA"]].to_numpy().T  # the file's own (correct) cosines, as predict-table takes them
    path = _WEIGHTS / MODELS["sl2p-l8"][1]
    np.testing.assert_allclose(out["LAI"], float64_leaf(path, 1, x), atol=1e-4)
    np.testing.assert_allclose(out["FAPAR"], float64_leaf(path, 2, x), atol=1e-4)


def test_a_sentinel2_table_with_the_landsat_network_is_refused():
    s2 = pd.read_csv(KANSAS / "Surface_refelctance_S2_L2A.csv", index_col=0).head(5)
    from vercye_lai.errors import InputError

    with pytest.raises(InputError, match="Sentinel-2"):
        predict_table(s2, predict=PredictOptions(model="sl2p-l8"))


# --- readers: HLS granules and Landsat C2 L2 scenes → stacks, on the real pieces -------------

PIECES = DATA / "landsat_hls"


def region_of(path) -> "object":
    import rasterio
    from rasterio.warp import transform_bounds
    from shapely.geometry import box

    with rasterio.open(path) as ds:
        return box(*transform_bounds(ds.crs, "EPSG:4326", *ds.bounds))


def read_stack(path):
    import rasterio

    with rasterio.open(path) as ds:
        return ds.descriptions, ds.read(masked=True).astype(float) * 1e-4, ds.tags()


def test_hls_v15_l30_granule_to_a_landsat_stack(tmp_path):
    import rasterio

    from vercye_lai.acquire.hls import stack_hls

    folder = PIECES / "hls_l30_v15"
    b4 = folder / "HLS.L30.T10SFE.2019253.v1.5.B04.clip.tif"
    out = stack_hls([folder], region_of(b4), "slo", 30, tmp_path)
    (key, path), = out.items()
    assert key[1] == "L30" and path.name == "slo_30m_2019-09-10_L30.tif"
    names, data, tags = read_stack(path)
    assert names == ("cosVZA", "cosSZA", "cosRAA", "B3", "B4", "B5", "B6", "B7")
    with rasterio.open(b4) as ds:
        dn = ds.read(1)
    valid = dn != -1000
    np.testing.assert_allclose(data[4].filled(np.nan)[valid], dn[valid] * 1e-4, atol=1e-4)
    assert data[4].mask[~valid].all()  # v1.5 fill -1000 is nodata
    # no angle bands: the sun from SENSING_TIME (granule mean sun zenith 35.26 deg), nadir view
    assert np.ma.median(np.degrees(np.arccos(np.clip(data[1], -1, 1)))) == pytest.approx(35.3, abs=1.5)
    assert np.ma.allclose(data[0], 1.0) and "nadir view assumed" in tags["NOTES"]


def test_local_files_outside_the_dates_are_not_stacked(tmp_path):
    """--start-date/--end-date did nothing with files: the 2019-09-10 granule was stacked for January."""
    import geopandas as gpd
    from click.testing import CliRunner
    from conftest import cli_error_line

    from vercye_lai.cli.main import cli

    folder = PIECES / "hls_l30_v15"
    geo = tmp_path / "slo.geojson"
    gpd.GeoDataFrame(geometry=[region_of(folder / "HLS.L30.T10SFE.2019253.v1.5.B04.clip.tif")],
                     crs=4326).to_file(geo)
    args = ["-q", "stack-hls", str(folder), "--geometry", str(geo), "-o", str(tmp_path / "out")]
    line = cli_error_line(CliRunner().invoke(cli, [*args, "--start-date", "2020-01-01", "--end-date", "2020-02-01"]))
    assert "no scene of" in line and "between 2020-01-01 and 2020-02-01: they hold 2019-09-10" in line
    assert not list(tmp_path.glob("out/*.tif"))
    r = CliRunner().invoke(cli, [*args, "--start-date", "2019-09-01", "--end-date", "2019-09-30"])
    assert r.exit_code == 0 and [p.name for p in tmp_path.glob("out/*.tif")] == ["slo_30m_2019-09-10_L30.tif"]


def build_v20_granule(folder, tmp_path, *, cloud_rows=slice(0, 10)):
    """An HLS v2.0 L30 granule made from the real v1.5 pieces in the v2.0 encoding: fill −9999,
    names with the time, and (from the real S30 angle piece, its first 128 × 138 pixels) the
    SZA/SAA/VZA/VAA bands; Fmask cloud bit set on some rows."""
    import rasterio

    out = tmp_path / "granule"
    out.mkdir()
    stem = "HLS.L30.T10SFE.2019253T183445.v2.0"
    for b in ("B03", "B04", "B05", "B06", "B07", "Fmask"):
        with rasterio.open(folder / f"HLS.L30.T10SFE.2019253.v1.5.{b}.clip.tif") as ds:
            data, prof = ds.read(1), ds.profile
        if b == "Fmask":
            data = data.copy()
            data[cloud_rows][data[cloud_rows] != 255] |= 0b10
        else:
            data = np.where(data == -1000, -9999, data).astype(np.int16)
            prof.update(nodata=-9999)
        with rasterio.open(out / f"{stem}.{b}.tif", "w", **prof) as dst:
            dst.write(data, 1)
    for a in ("SZA", "SAA", "VZA", "VAA"):
        with rasterio.open(PIECES / "s30_angles_v15" / f"HLS.S30.T35JMG.2020192T074619.v1.5.{a}.clip.tif") as ds:
            angle = ds.read(1)[:128, :138]
        prof.update(dtype="uint16", nodata=40000)
        with rasterio.open(out / f"{stem}.{a}.tif", "w", **prof) as dst:
            dst.write(angle, 1)
    return out, stem


def test_hls_v20_granule_fmask_and_angle_bands(tmp_path):
    import rasterio

    from vercye_lai.acquire.hls import stack_hls

    granule, stem = build_v20_granule(PIECES / "hls_l30_v15", tmp_path)
    out = stack_hls([granule], region_of(granule / f"{stem}.B04.tif"), "slo", 30, tmp_path / "stacks")
    _, data, tags = read_stack(next(iter(out.values())))
    with rasterio.open(granule / f"{stem}.B04.tif") as ds:
        valid = ds.read(1) != -9999
    with rasterio.open(granule / f"{stem}.SZA.tif") as ds:
        sza = ds.read(1) * 0.01
    assert data[4].mask[:10].all()  # the cloud bit masks those rows
    keep = valid.copy()
    keep[:10] = False
    assert not data[4].mask[keep].any()
    np.testing.assert_allclose(data[1].filled(np.nan)[keep], np.cos(np.radians(sza))[keep], atol=1e-4)
    assert tags["ANGLES"] == "per-pixel SZA/SAA/VZA/VAA bands"
    # --fmask without the cloud bit keeps them
    out2 = stack_hls([granule], region_of(granule / f"{stem}.B04.tif"), "slo", 30, tmp_path / "s2",
                     fmask=(0, 3, 4))
    assert not read_stack(next(iter(out2.values())))[1][4].mask[keep | (valid & ~keep)].any()


def test_landsat_c2l2_scene_scaling_qa_and_sun(tmp_path):
    import rasterio

    from vercye_lai.acquire.landsat import find_scenes, read_mtl, stack_landsat

    folder = PIECES / "landsat8_c2l2"
    (scene,) = find_scenes([folder])
    assert (scene.sensor, scene.scale, scene.offset) == ("L8", 2.75e-05, -0.2)
    b5 = folder / "LC08_L2SP_008059_20191201_20200825_02_T1_SR_B5.TIF"
    out = stack_landsat([folder], region_of(b5), "amazon", 450, tmp_path)
    (path,) = out.values()
    assert path.name == "amazon_450m_2019-12-01_L8.tif"
    _, data, _ = read_stack(path)
    with rasterio.open(b5) as ds:
        dn = ds.read(1).astype(float)
    with rasterio.open(folder / "LC08_L2SP_008059_20191201_20200825_02_T1_QA_PIXEL.TIF") as ds:
        qa = ds.read(1).astype(int)
    clear = (qa & 0b111111) == 0
    assert clear.any() and (~clear).any()
    # the ~450 m scene is resampled onto a square 450 m grid: compare the distributions
    expected = dn[clear] * 2.75e-5 - 0.2
    assert np.ma.median(data[5]) == pytest.approx(np.median(expected), abs=0.01)
    assert data[5].mask.mean() == pytest.approx(1 - clear.mean(), abs=0.1)
    elevation = float(read_mtl(folder / "LC08_L2SP_008059_20191201_20200825_02_T1_MTL.txt")
                      ["IMAGE_ATTRIBUTES"]["SUN_ELEVATION"])
    assert np.ma.median(90 - np.degrees(np.arccos(np.clip(data[1], -1, 1)))) == pytest.approx(elevation, abs=1.0)


def test_bad_scene_folders_are_clear_errors(tmp_path):
    import shutil

    from vercye_lai.acquire.hls import find_granules
    from vercye_lai.acquire.landsat import find_scenes
    from vercye_lai.errors import InputError

    for f in (PIECES / "hls_l30_v15").glob("*"):
        if "B05" not in f.name:
            shutil.copy(f, tmp_path)
    with pytest.raises(InputError, match="lacks band file"):
        find_granules([tmp_path])
    with pytest.raises(InputError, match="no Landsat C2 L2 scene"):
        find_scenes([tmp_path])
    with pytest.raises(InputError, match="fmask: bit"):
        find_granules([PIECES / "hls_l30_v15"], fmask=(9,))


def test_predict_takes_the_landsat_network_for_landsat_stacks(tmp_path):
    import rasterio
    from click.testing import CliRunner

    from vercye_lai.acquire.hls import stack_hls
    from vercye_lai.cli.main import cli

    folder = PIECES / "hls_l30_v15"
    stacks = tmp_path / "stacks"
    stack_hls([folder], region_of(folder / "HLS.L30.T10SFE.2019253.v1.5.B04.clip.tif"), "slo", 30, stacks)
    r = CliRunner().invoke(cli, ["-q", "predict", str(stacks), str(tmp_path / "lai"), "--region", "slo",
                                 "--uncertainty"])
    assert r.exit_code == 0, r.output
    product = tmp_path / "lai" / "slo_30m_2019-09-10_L30_LAI.tif"
    with rasterio.open(product) as ds:
        assert ds.tags()["VERCYE_MODEL"] == "sl2p-l8"
        lai = read_values(ds)
    assert 0 < np.nanmedian(lai) < 8 and (tmp_path / "lai" / "slo_30m_2019-09-10_L30_LAI_flags.tif").exists()
    assert not (tmp_path / "lai" / "slo_30m_2019-09-10_L30_LAI_uncertainty.tif").exists()  # no error network


# --- one series from several sensors ------------------------------------------------------


def test_one_series_from_two_sensors_on_their_own_grids(tmp_path):
    from conftest import pixel_box, write_raster
    from rasterio.transform import from_origin

    from vercye_lai.analysis import analyze

    lai = tmp_path / "lai"
    s2 = np.full((6, 6), 2.0, np.float32)  # 10 m, origin (475780, 5255000)
    write_raster(lai / "R_10m_2022-06-01_LAI.tif", s2, nodata=np.nan)
    cloudy = s2.copy()
    cloudy[:3] = np.nan  # half of the field cloudy in Sentinel-2 on 06-05 ...
    write_raster(lai / "R_10m_2022-06-05_LAI.tif", cloudy + 1.0, nodata=np.nan)
    l30 = np.full((2, 2), 3.5, np.float32)  # ... clear in L30 (30 m) that day
    write_raster(lai / "R_30m_2022-06-05_L30_LAI.tif", l30, nodata=np.nan,
                 transform=from_origin(475780.0, 5255000.0, 30.0, 30.0))
    write_raster(lai / "R_30m_2022-06-03_L8_LAI.tif", l30 - 1.0, nodata=np.nan,
                 transform=from_origin(475780.0, 5255000.0, 30.0, 30.0))
    import geopandas as gpd

    gpd.GeoDataFrame({"name": ["f"]}, geometry=[pixel_box(0, 0, 6, 6)], crs="EPSG:32632").to_file(
        tmp_path / "f.geojson")
    res = analyze(lai, tmp_path / "out", "R", tmp_path / "f.geojson", resolution=10,
                  options=AnalysisOptions(id_column="name", outliers="none", interpolation="linear"))
    df = pd.read_csv(res.zones[0].csv).set_index("Date")
    assert list(df.columns)[-1] == "sensor"
    assert df.loc["2022-06-01", "sensor"] == "s2" and df.loc["2022-06-01", "LAI Mean"] == pytest.approx(2.0)
    assert df.loc["2022-06-03", "sensor"] == "l8" and df.loc["2022-06-03", "LAI Mean"] == pytest.approx(2.5)
    # 06-05: L30 sees all of the field, S2 half of it: the L30 observation is kept
    assert df.loc["2022-06-05", "sensor"] == "l30" and df.loc["2022-06-05", "LAI Mean"] == pytest.approx(3.5)
    assert pd.isna(df.loc["2022-06-02", "sensor"]) and df.loc["2022-06-02", "interpolated"] == 1
    # --sensors s2 keeps the Sentinel-2 series alone, as before (no sensor column)
    only = analyze(lai, tmp_path / "s2only", "R", tmp_path / "f.geojson", resolution=10,
                   options=AnalysisOptions(id_column="name", outliers="none", sensors=("s2",)))
    d2 = pd.read_csv(only.zones[0].csv).set_index("Date")
    assert "sensor" not in d2.columns and d2.loc["2022-06-05", "LAI Mean"] == pytest.approx(3.0)


def test_hls_folder_to_a_field_series_with_a_sensor_column(tmp_path):
    """A Landsat/HLS local folder → stacks → LAI → a field's STATS.csv, by the commands."""
    import geopandas as gpd
    from click.testing import CliRunner
    from shapely.geometry import box

    from vercye_lai.cli.main import cli

    def run(*args):
        r = CliRunner().invoke(cli, ["-q", *map(str, args)])
        assert r.exit_code == 0, r.output
        return r

    folder = PIECES / "hls_l30_v15"
    region = region_of(folder / "HLS.L30.T10SFE.2019253.v1.5.B04.clip.tif")
    gpd.GeoDataFrame({"geometry": [region]}, crs=4326).to_file(tmp_path / "aoi.geojson")
    run("stack-hls", folder, "--geometry", tmp_path / "aoi.geojson", "--region", "slo", "-o", tmp_path / "stacks")
    run("predict", tmp_path / "stacks", tmp_path / "lai", "--region", "slo")
    x0, y0, x1, y1 = region.bounds
    field = box(x0 + 0.2 * (x1 - x0), y0 + 0.2 * (y1 - y0), x0 + 0.8 * (x1 - x0), y0 + 0.5 * (y1 - y0))
    gpd.GeoDataFrame({"name": ["a"]}, geometry=[field], crs=4326).to_file(tmp_path / "fields.geojson")
    run("analyze", tmp_path / "lai", tmp_path / "fields.geojson", "--region", "slo", "--res", "30",
        "--start-date", "2019-09-01", "--end-date", "2019-09-20", "-o", tmp_path / "out", "--id-column", "name")
    (csv,) = (tmp_path / "out").glob("*_STATS.csv")
    df = pd.read_csv(csv).set_index("Date")
    assert df.loc["2019-09-10", "sensor"] == "l30" and df.loc["2019-09-10", "n_pixels"] > 0
    assert 0 < df.loc["2019-09-10", "LAI Mean"] < 8


def test_run_with_two_sources_writes_one_series_per_field(tmp_path):
    """[[source]] hls (the real L30 granule) and local (a Sentinel-2 stack over the same place,
    made here): one run, one STATS.csv per field drawing on both sensors."""
    import json

    import geopandas as gpd
    import rasterio
    from click.testing import CliRunner
    from conftest import write_raster, write_run_config
    from rasterio.transform import from_origin
    from shapely.geometry import box

    from vercye_lai.cli.main import cli
    from vercye_lai.stack import S2_BANDS_20M

    folder = PIECES / "hls_l30_v15"
    b4 = folder / "HLS.L30.T10SFE.2019253.v1.5.B04.clip.tif"
    region = region_of(b4)
    gpd.GeoDataFrame({"geometry": [region]}, crs=4326).to_file(tmp_path / "slo.geojson")
    with rasterio.open(b4) as ds:
        left, top = ds.bounds.left, ds.bounds.top
    # a vegetated Sentinel-2 spectrum (0-1), sun 35 deg, nadir view: an 11-band int16 stack x 1e-4
    spectrum = {"cosVZA": 1.0, "cosSZA": 0.82, "cosRAA": -0.8, "B3": 0.06, "B4": 0.04, "B5": 0.09, "B6": 0.25,
                "B7": 0.30, "B8A": 0.33, "B11": 0.17, "B12": 0.08}
    stack = np.stack([np.full((60, 60), round(spectrum[b] * 10000), np.int16) for b in S2_BANDS_20M])
    write_raster(tmp_path / "s2" / "slo_20m_2019-09-12.tif", stack, crs="EPSG:32610",
                 transform=from_origin(left, top, 20.0, 20.0), nodata=-32768, descriptions=list(S2_BANDS_20M))
    x0, y0, x1, y1 = region.bounds
    field = box(x0 + 0.1 * (x1 - x0), y1 - 0.2 * (y1 - y0), x0 + 0.9 * (x1 - x0), y1 - 0.05 * (y1 - y0))
    gpd.GeoDataFrame({"name": ["a"]}, geometry=[field], crs=4326).to_file(tmp_path / "fields.geojson")
    cfg = write_run_config(tmp_path / "run.toml", f"""
output_root = "out"
resolution = 20
[[regions]]
name = "slo"
geometry = "slo.geojson"
start_date = 2019-09-01
end_date = 2019-09-20
[[source]]
kind = "hls"
paths = ["{folder}"]
[[source]]
kind = "local"
path = "s2"
[[analyses]]
name = "fields"
geometry = "fields.geojson"
id_column = "name"
outliers = "none"
quicklook = false
[executor]
kind = "serial"
""")
    r = CliRunner().invoke(cli, ["-q", "run", str(cfg)])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    predicted = [u for s in summary["steps"] if s["step"] == "predict" for u in s["units"]]
    assert sorted(u["item"] for u in predicted) == ["2019-09-10 L30", "2019-09-12"]
    assert (tmp_path / "out" / "lai" / "slo" / "slo_30m_2019-09-10_L30_LAI.tif").exists()
    (csv,) = (tmp_path / "out" / "analysis").rglob("*_STATS.csv")
    df = pd.read_csv(csv).set_index("Date")
    assert df.loc["2019-09-10", "sensor"] == "l30" and df.loc["2019-09-12", "sensor"] == "s2"
    assert df.loc["2019-09-11", "interpolated"] == 1


def static_catalog(tmp_path, items_spec):
    """A static STAC catalogue of ``(id, collection, datetime, properties, {asset: href})``."""
    import pystac
    from shapely.geometry import mapping

    cat = pystac.Catalog("test", "test catalogue")
    for item_id, collection, when, props, assets, footprint in items_spec:
        item = pystac.Item(item_id, mapping(footprint), list(footprint.bounds), when, props,
                           collection=collection)
        for key, (href, extra) in assets.items():
            item.add_asset(key, pystac.Asset(str(href), media_type=pystac.MediaType.COG, extra_fields=extra))
        cat.add_item(item)
    cat.normalize_hrefs(str(tmp_path / "catalog"))
    cat.save(pystac.CatalogType.ABSOLUTE_PUBLISHED)
    return str(tmp_path / "catalog" / "catalog.json")


def test_hls_from_stac_equals_the_local_reader(tmp_path):
    import datetime as dt

    pytest.importorskip("pystac")
    from vercye_lai.acquire.hls import stac_hls, stack_hls

    granule, stem = build_v20_granule(PIECES / "hls_l30_v15", tmp_path)
    footprint = region_of(granule / f"{stem}.B04.tif")
    assets = {b: (granule / f"{stem}.{b}.tif", {}) for b in ("B03", "B04", "B05", "B06", "B07", "Fmask",
                                                               "SZA", "SAA", "VZA", "VAA")}
    when = dt.datetime(2019, 9, 10, 18, 34, 45, tzinfo=dt.UTC)
    catalog = static_catalog(tmp_path, [(stem, "hls2-l30", when, {}, assets, footprint)])
    via_stac = stac_hls(catalog, region="slo", geometry=footprint, start=dt.date(2019, 9, 1),
                        end=dt.date(2019, 9, 30), resolution=30, out_dir=tmp_path / "stac", products=("L30",))
    local = stack_hls([granule], footprint, "slo", 30, tmp_path / "local")
    (a,), (b,) = via_stac.values(), local.values()
    np.testing.assert_array_equal(read_stack(a)[1].filled(-1), read_stack(b)[1].filled(-1))


def test_a_moved_catalogue_of_relative_hrefs_reads_its_own_files(tmp_path, monkeypatch):
    """Relative asset hrefs were taken from the working directory: a catalogue moved elsewhere
    failed ("../files/…B03…: No such file"), or read whatever lay at that path from here."""
    import datetime as dt
    import shutil

    import pystac

    from vercye_lai.acquire.hls import stac_hls

    granule, stem = build_v20_granule(PIECES / "hls_l30_v15", tmp_path)
    root = tmp_path / "before"
    shutil.copytree(granule, root / "files")
    footprint = region_of(granule / f"{stem}.B04.tif")
    assets = {b: (root / "files" / f"{stem}.{b}.tif", {}) for b in ("B03", "B04", "B05", "B06", "B07", "Fmask",
                                                                    "SZA", "SAA", "VZA", "VAA")}
    when = dt.datetime(2019, 9, 10, 18, 34, 45, tzinfo=dt.UTC)
    cat = pystac.Catalog.from_file(static_catalog(root, [(stem, "hls2-l30", when, {}, assets, footprint)]))
    cat.make_all_asset_hrefs_relative()
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    shutil.move(root, tmp_path / "after")
    monkeypatch.chdir(tmp_path)  # not the items' folder
    out = stac_hls(str(tmp_path / "after" / "catalog" / "catalog.json"), region="slo", geometry=footprint,
                   start=dt.date(2019, 9, 1), end=dt.date(2019, 9, 30), resolution=30, out_dir=tmp_path / "stac",
                   products=("L30",))
    assert [p.name for p in out.values()] == ["slo_30m_2019-09-10_L30.tif"]


def test_landsat_from_stac_equals_the_local_reader(tmp_path):
    import datetime as dt

    pytest.importorskip("pystac")
    from vercye_lai.acquire.landsat import stac_landsat, stack_landsat

    folder = PIECES / "landsat8_c2l2"
    pid = "LC08_L2SP_008059_20191201_20200825_02_T1"
    footprint = region_of(folder / f"{pid}_SR_B5.TIF")
    scaling = {"raster:bands": [{"scale": 2.75e-05, "offset": -0.2, "nodata": 0}]}
    assets = {k: (folder / f"{pid}_SR_B{n}.TIF", scaling)
              for k, n in (("green", 3), ("red", 4), ("nir08", 5), ("swir16", 6), ("swir22", 7))}
    assets["qa_pixel"] = (folder / f"{pid}_QA_PIXEL.TIF", {})
    when = dt.datetime(2019, 12, 1, 15, 13, 51, tzinfo=dt.UTC)
    catalog = static_catalog(tmp_path, [(pid, "landsat-c2-l2", when, {"platform": "landsat-8"}, assets, footprint)])
    via_stac = stac_landsat(catalog, region="amazon", geometry=footprint, start=dt.date(2019, 12, 1),
                            end=dt.date(2019, 12, 1), resolution=450, out_dir=tmp_path / "stac")
    local = stack_landsat([folder], footprint, "amazon", 450, tmp_path / "local")
    (a,), (b,) = via_stac.values(), local.values()
    assert a.name == b.name == "amazon_450m_2019-12-01_L8.tif"
    np.testing.assert_array_equal(read_stack(a)[1].filled(-1), read_stack(b)[1].filled(-1))


def test_earthdata_token_is_a_header_never_a_log_line(monkeypatch, caplog):
    import logging

    from vercye_lai.acquire.scene import earthdata_env

    monkeypatch.setenv("EARTHDATA_TOKEN", "s3cr3t-t0ken")
    caplog.set_level(logging.DEBUG)
    env = earthdata_env()
    assert env["GDAL_HTTP_HEADERS"] == "Authorization: Bearer s3cr3t-t0ken" and env["GDAL_HTTP_NETRC"] == "YES"
    import rasterio

    with rasterio.Env(**env):  # reading under it, with every logger at DEBUG (as -vvv would)
        with rasterio.open(PIECES / "hls_l30_v15" / "HLS.L30.T10SFE.2019253.v1.5.B04.clip.tif") as ds:
            ds.read(1, window=((0, 4), (0, 4)))
    assert "s3cr3t" not in caplog.text


def test_stack_hls_cli_from_a_catalogue(tmp_path):
    import datetime as dt

    import geopandas as gpd
    from click.testing import CliRunner

    from vercye_lai.cli.main import cli

    pytest.importorskip("pystac")
    granule, stem = build_v20_granule(PIECES / "hls_l30_v15", tmp_path)
    footprint = region_of(granule / f"{stem}.B04.tif")
    assets = {b: (granule / f"{stem}.{b}.tif", {}) for b in ("B03", "B04", "B05", "B06", "B07", "Fmask")}
    catalog = static_catalog(tmp_path, [(stem, "hls2-l30", dt.datetime(2019, 9, 10, 18, 34, tzinfo=dt.UTC),
                                         {}, assets, footprint)])
    gpd.GeoDataFrame({"geometry": [footprint]}, crs=4326).to_file(tmp_path / "aoi.geojson")
    base = ["-q", "stack-hls", "--geometry", str(tmp_path / "aoi.geojson"), "--region", "slo", "-o", str(tmp_path / "o")]
    r = CliRunner().invoke(cli, [*base, "--catalog", catalog])
    assert r.exit_code == 2 and "--catalog needs --start-date and --end-date" in r.output
    r = CliRunner().invoke(cli, [*base, "--catalog", catalog, "--start-date", "2019-09-01", "--end-date",
                                 "2019-09-30", "--products", "L30"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "slo_30m_2019-09-10_L30.tif").exists()


def test_dask_parts_of_a_landsat_stack_use_the_landsat_network(tmp_path):
    """The split predict (parts, then assembly: how Dask runs it) picks the network per stack too."""
    import rasterio

    from vercye_lai.acquire.hls import stack_hls
    from vercye_lai.predict import (
        PredictOptions,
        assemble_parts,
        predict_file,
        predict_windows_to_part,
        product_paths,
        stack_windows,
    )

    folder = PIECES / "hls_l30_v15"
    stacks = stack_hls([folder], region_of(folder / "HLS.L30.T10SFE.2019253.v1.5.B04.clip.tif"), "slo", 30,
                       tmp_path / "stacks")
    (src,) = stacks.values()
    options = PredictOptions(block_size=64)
    outputs = product_paths(src, tmp_path / "parts", ["LAI"])
    part = tmp_path / "parts" / ".p0.npz"
    predict_windows_to_part(src, part, stack_windows(src, block_size=64), options=options)
    assemble_parts(src, [part], outputs, options=options)
    whole = product_paths(src, tmp_path / "whole", ["LAI"])
    predict_file(src, whole, options=options)
    with rasterio.open(outputs["LAI"]) as a, rasterio.open(whole["LAI"]) as b:
        assert a.tags()["VERCYE_MODEL"] == "sl2p-l8"
        np.testing.assert_array_equal(a.read(1), b.read(1))


def test_run_mosaics_the_parts_of_a_landsat_export(tmp_path):
    """An Earth Engine export split into parts (``…_L30-{row}-{col}.tif``) gets its VRT, which
    predict then reads, as for Sentinel-2."""
    import rasterio
    from click.testing import CliRunner
    from conftest import write_run_config
    from rasterio.windows import Window

    from vercye_lai.acquire.hls import stack_hls
    from vercye_lai.cli.main import cli

    folder = PIECES / "hls_l30_v15"
    whole = stack_hls([folder], region_of(folder / "HLS.L30.T10SFE.2019253.v1.5.B04.clip.tif"), "slo", 30,
                      tmp_path / "tmp")
    (src,) = whole.values()
    parts = tmp_path / "exports"
    parts.mkdir()
    with rasterio.open(src) as ds:
        half = ds.width // 2
        for k, (c0, w) in enumerate(((0, half), (half, ds.width - half))):
            win = Window(c0, 0, w, ds.height)
            prof = ds.profile | {"width": w, "height": ds.height, "transform": ds.window_transform(win)}
            with rasterio.open(parts / f"slo_30m_2019-09-10_L30-0000000000-{k * half:010d}.tif", "w", **prof) as out:
                out.write(ds.read(window=win))
                out.descriptions = ds.descriptions
    cfg = write_run_config(tmp_path / "run.toml", f"""
output_root = "out"
resolution = 20
[[regions]]
name = "slo"
start_date = 2019-09-01
end_date = 2019-09-20
[source]
kind = "local"
path = "{parts}"
[executor]
kind = "serial"
""")
    r = CliRunner().invoke(cli, ["-q", "run", str(cfg), "--only", "mosaic", "--only", "predict"])
    assert r.exit_code == 0, r.output
    vrt = tmp_path / "out" / "stacks" / "slo" / "slo_30m_2019-09-10_L30.vrt"
    assert vrt.exists()
    with rasterio.open(tmp_path / "out" / "lai" / "slo" / "slo_30m_2019-09-10_L30_LAI.tif") as ds:
        assert ds.tags()["VERCYE_SOURCE"] == vrt.name and ds.tags()["VERCYE_MODEL"] == "sl2p-l8"


def test_landsat_numbered_rows_with_the_sentinel2_model_are_pointed_to_the_landsat_one():
    with pytest.raises(InputError, match=r"no column for band\(s\) B8A.*Landsat-numbered bands.*--model sl2p-l8"):
        predict_table(hls_rows())  # the default model is Sentinel-2's


def test_a_cos_raa_column_that_contradicts_the_azimuths_is_refused(caplog):
    """The Kansas HLS table's cosRAA is 0 where its SAA and VAA say otherwise (NOTICE.md): with
    the azimuths there it is refused by name; alone, a column of zeros is said."""
    import logging

    df = pd.read_csv(KANSAS / "Surface_refelctance_HLSL30_v002.csv", index_col=0)
    with pytest.raises(InputError, match=r"column 'cosRAA' disagrees with cos\(sun azimuth − view azimuth\)"):
        predict_table(df, predict=PredictOptions(model="sl2p-l8"))
    with caplog.at_level(logging.WARNING, logger="vercye_lai.predict.table"):
        predict_table(df.drop(columns=["SAA", "VAA"]), predict=PredictOptions(model="sl2p-l8"))
    assert "column 'cosRAA' is 0 in" in caplog.text


def test_every_spelling_of_a_sentinel_2_unit_is_read():
    """One unit-letter pattern: product names, Earth Search ids, STAC platforms, SPACECRAFT_NAME
    (SAFE, HLS S30 tags, Earth Engine), any letter; Landsat and other names are no unit."""
    for text, unit in [("S2C_MSIL2A_20250126T101559_N0511_R065_T32TMT_20250126T120000.SAFE", "c"),
                       ("S2C_33UXP_20250126_0_L2A", "c"), ("sentinel-2c", "c"), ("Sentinel-2B", "b"),
                       ("SENTINEL2A", "a"), ("S2B_MSIL1C_20240507T173909_N0510_R098_T13RCN_20240507T205106.SAFE", "b"),
                       ("Sentinel-2D", "d")]:
        assert s2_platform(text) == f"sentinel-2{unit}", text
    for text in ("LC08_L2SP_008059_20191201_20200825_02_T1", "landsat-9", "HLS.S30.T13RCN.2024128T173909.v2.0", ""):
        assert s2_platform(text) is None, text
    assert s2_platform(None, "", "Sentinel-2C") == "sentinel-2c"  # the first that names one
