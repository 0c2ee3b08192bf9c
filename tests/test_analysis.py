"""analyze on tiny rasters with hand-computed statistics (modes, grids, CRS, gaps, outputs)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner
from conftest import ORIGIN, opts, pixel_box
from rasterio.transform import from_origin
from scipy.interpolate import Akima1DInterpolator

from vercye_lai.analysis import analyze, geometry
from vercye_lai.analysis import season as analysis_core
from vercye_lai.cli.main import cli

D = dt.date


def glob_values(shape=(6, 6)) -> np.ndarray:
    """Value of global pixel (r, c) = r + c / 10 (so every pixel is recognisable)."""
    r, c = np.indices(shape)
    return (r + c / 10).astype(np.float32)


def run(tmp_path, geom, **kw):
    kw.setdefault("resolution", 10)
    return analyze(tmp_path / "lai", tmp_path / "out", "R", geom, **opts(**kw))


def stats(result, k=0) -> pd.DataFrame:
    return pd.read_csv(result.zones[k].csv).set_index("Date")


@pytest.fixture
def two_fields(polygon_writer):
    # A: rows 0-1, cols 0-1 (4 px); B: rows 3-4, cols 3-5 (6 px)
    return polygon_writer("fields.geojson", [pixel_box(0, 0, 2, 2), pixel_box(3, 3, 6, 5)],
                          FID=[11, 12])


@pytest.fixture
def season(lai_writer):
    v = glob_values()
    lai_writer("2022-06-01", v)
    d3 = v.copy()
    d3[0, 0] = np.nan  # cloud in A
    d3[1, 1] = -1.0  # negative LAI: clipped to 0
    lai_writer("2022-06-03", d3)
    lai_writer("2022-06-06", v + 1)
    return v


def test_poly_iter_hand_computed(tmp_path, two_fields, season):
    res = run(tmp_path, two_fields, mode="poly_iter")
    assert [z.name for z in res.zones] == ["11", "12"]
    a, b = stats(res, 0), stats(res, 1)
    assert res.zones[0].csv.name == "R_fields_11_2022-06-01_2022-06-06_STATS.csv"
    # A on 06-01: 0.0, 0.1, 1.0, 1.1
    row = a.loc["2022-06-01"]
    assert row["n_pixels"] == 4 and row["interpolated"] == 0
    assert row["LAI Mean"] == pytest.approx(0.55)
    assert row["LAI Median"] == pytest.approx(0.55)
    assert row["LAI Stddev"] == pytest.approx(np.std([0.0, 0.1, 1.0, 1.1]), abs=1e-6)
    assert row["Cloud or Snow Percentage"] == 0
    # A on 06-03: NaN, 0.1, 1.0, 0 (clipped from -1)
    row = a.loc["2022-06-03"]
    assert row["n_pixels"] == 3
    assert row["LAI Mean"] == pytest.approx(1.1 / 3, abs=1e-6)
    assert row["LAI Median"] == pytest.approx(0.1)
    assert row["Cloud or Snow Percentage"] == pytest.approx(25.0)
    # B on 06-06: rows 3-4, cols 3-5, +1
    assert b.loc["2022-06-06", "LAI Mean"] == pytest.approx(1 + 3.5 + 0.4, abs=1e-6)
    assert b.loc["2022-06-06", "n_pixels"] == 6
    # one row per day, gap days interpolated inside the observed span
    assert list(a.index) == [f"2022-06-0{d}" for d in range(1, 7)]
    assert a.loc["2022-06-02", "interpolated"] == 1 and a.loc["2022-06-02", "n_pixels"] == 0
    # the medians are gap-filled like the means; standard deviations stay empty
    obs = a[a["interpolated"] == 0]
    x = [int(d[-2:]) for d in obs.index]
    for col in ("LAI Mean", "LAI Median", "LAI Median Adjusted"):
        want = Akima1DInterpolator(x, obs[col].to_numpy(), extrapolate=False)(2)
        assert a.loc["2022-06-02", col] == pytest.approx(max(float(want), 0.0), abs=1e-6)
    assert np.isnan(a.loc["2022-06-02", "LAI Stddev"]) and np.isnan(a.loc["2022-06-02", "LAI Stddev Adjusted"])
    assert (a["LAI Median Adjusted"] == a["LAI Median"]).all()  # no adjustment


def test_poly_agg_is_one_zone(tmp_path, two_fields, season):
    res = run(tmp_path, two_fields, mode="poly_agg")
    assert len(res.zones) == 1
    assert res.zones[0].csv.name == "R_fields_2022-06-01_2022-06-06_STATS.csv"
    v = season
    expected = np.concatenate([v[0:2, 0:2].ravel(), v[3:5, 3:6].ravel()])
    row = stats(res).loc["2022-06-01"]
    assert row["n_pixels"] == 10
    assert row["LAI Mean"] == pytest.approx(expected.mean(), abs=1e-6)
    assert row["LAI Median"] == pytest.approx(np.median(expected), abs=1e-6)
    assert row["LAI Stddev"] == pytest.approx(expected.std(), abs=1e-6)


def test_raster_mode_same_grid(tmp_path, raster_writer, season, caplog):
    mask = np.zeros((6, 6), np.uint8)
    mask[2, 1:4] = 1
    mask[5, 5] = 7  # any non-zero value is crop
    mask[0, 0] = 255  # declared nodata: not crop
    m = raster_writer("mask.tif", mask, nodata=255)
    res = run(tmp_path, m, mode="raster")
    row = stats(res).loc["2022-06-01"]
    expected = [2.1, 2.2, 2.3, 5.5]
    assert row["n_pixels"] == 4
    assert row["LAI Mean"] == pytest.approx(np.mean(expected), abs=1e-6)
    assert res.zones[0].csv.name == "R_mask_2022-06-01_2022-06-06_STATS.csv"
    assert "not the LAI grid" not in caplog.text  # aligned: nothing resampled, nothing to say
    # a 7 among the 1s: a class map or a probability? counted as crop, and said
    assert "mask.tif: the crop mask holds values other than 0 and 1 (1 to 7)" in caplog.text


def test_raster_mode_mask_on_another_grid(tmp_path, raster_writer, season, caplog):
    # 20 m mask in EPSG:3857-free setting: other resolution and extent, same CRS;
    # crop cell (row 1, col 1) covers LAI rows 2-3, cols 2-3 (origin shifted by 0 px)
    mask = np.zeros((3, 3), np.uint8)
    mask[1, 1] = 1
    m = raster_writer("mask20.tif", mask, transform=from_origin(*ORIGIN, 20, 20))
    res = run(tmp_path, m, mode="raster")
    row = stats(res).loc["2022-06-01"]
    assert row["n_pixels"] == 4
    assert row["LAI Mean"] == pytest.approx(np.mean([2.2, 2.3, 3.2, 3.3]), abs=1e-6)
    with rasterio.open(res.zones[0].max_tif) as ds:
        assert ds.shape == (2, 2)  # the window of the crop pixels only
        assert ds.transform.c == ORIGIN[0] + 20 and ds.transform.f == ORIGIN[1] - 20
    # resampled, so said: both grids and the resampling named
    record = next(r for r in caplog.records if "not the LAI grid" in r.getMessage())
    warning = record.getMessage()
    assert "mask20.tif" in warning and "20×20 px" in warning and "10×10 px" in warning
    assert "other than 0 and 1" not in caplog.text  # a 0/1 mask: nothing to say
    assert "nearest neighbour" in warning and record.levelname == "WARNING"


def test_a_mask_larger_than_the_rasters_counts_only_its_crop_over_them(tmp_path, raster_writer, season):
    """A national mask's crop pixels beyond the LAI rasters counted as cloud on every date (95 %
    where 16 % were) and the whole mask was read: only its part over the rasters counts."""
    small = np.zeros((6, 6), np.uint8)
    small[2, 1:4] = 1
    big = np.zeros((60, 60), np.uint8)  # the same 10 m grid, 20 px of margin all round
    big[20:26, 20:26] = small
    big[0:10, 40:60] = 1  # crop far beyond the rasters
    region = stats(run(tmp_path, raster_writer("small.tif", small), mode="raster"))
    national = stats(run(tmp_path, raster_writer("big.tif", big, transform=from_origin(ORIGIN[0] - 200, ORIGIN[1] + 200,
                                                                                        10, 10)), mode="raster"))
    cols = ["n_pixels", "LAI Mean", "Cloud or Snow Percentage"]
    pd.testing.assert_frame_equal(national[cols], region[cols])


@pytest.mark.parametrize(("values", "said"), [((1, 1), False), ((255, 255), False), ((0.7, 0.7), True),
                                              ((0.2, 0.9), True), ((1, 3), True)])
def test_a_mask_of_fractions_or_several_classes_is_said(tmp_path, raster_writer, season, caplog, values, said):
    """A probability map (0.7 where crop) counts every non-zero pixel as crop: said, as a
    class map is; a mask of 0 and one whole value is a mask."""
    mask = np.zeros((6, 6), np.float32)
    mask[2, 1:3] = values
    run(tmp_path, raster_writer("m.tif", mask), mode="raster")
    assert ("other than 0 and 1" in caplog.text) is said


def test_raster_mode_mask_in_other_crs(tmp_path, raster_writer, season):
    # the same 20 m crop cell, written in Web Mercator: aligned on the fly (nearest)
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    mask = np.zeros((3, 3), np.uint8)
    mask[1, 1] = 1
    src_t = from_origin(*ORIGIN, 20, 20)
    t, w, h = calculate_default_transform("EPSG:32632", "EPSG:3857", 3, 3,
                                          *rasterio.transform.array_bounds(3, 3, src_t),
                                          resolution=2.0)
    out = np.zeros((h, w), np.uint8)
    reproject(mask, out, src_transform=src_t, src_crs="EPSG:32632", dst_transform=t,
              dst_crs="EPSG:3857", resampling=Resampling.nearest)
    m = raster_writer("mask3857.tif", out, crs="EPSG:3857", transform=t)
    row = stats(run(tmp_path, m, mode="raster")).loc["2022-06-01"]
    assert row["n_pixels"] == 4
    assert row["LAI Mean"] == pytest.approx(np.mean([2.2, 2.3, 3.2, 3.3]), abs=1e-6)


def test_geometry_crs_differs_from_raster(tmp_path, polygon_writer, season):
    boxes = [pixel_box(0, 0, 2, 2), pixel_box(3, 3, 6, 5)]
    utm = polygon_writer("utm.geojson", boxes, FID=[1, 2])
    wgs = polygon_writer("wgs.geojson", boxes, FID=[1, 2], to_crs="EPSG:4326")
    a = run(tmp_path, utm)
    b = run(tmp_path, wgs)
    for za, zb in zip(a.zones, b.zones, strict=True):
        pd.testing.assert_frame_equal(pd.read_csv(za.csv), pd.read_csv(zb.csv))


def test_fields_partly_outside_the_rasters_are_named(tmp_path, polygon_writer, season, caplog):
    """A field 60 % outside counted those pixels as cloud on every date, and nothing named it."""
    g = polygon_writer("f.geojson", [pixel_box(0, 0, 2, 2), pixel_box(4, 4, 9, 6)], field=["in", "part"])
    run(tmp_path, g, id_column="field")
    said = [r.getMessage() for r in caplog.records if "partly outside" in r.getMessage()]
    assert said == ["1 zone(s) lie partly outside the LAI rasters: part (60% outside); their pixels there count "
                    "as no data (the cloud/no-data share) on every date"]


def test_a_field_far_off_does_not_widen_the_window_read(tmp_path, polygon_writer, season, monkeypatch):
    """A field at lon/lat (0, 0) (a common data error) made the window span the distance:
    'Unable to allocate 1.14 TiB'. It meets no raster: skipped, and left out of the window."""
    from shapely.geometry import box

    far = polygon_writer("far.geojson", [pixel_box(0, 0, 2, 2), pixel_box(3, 3, 6, 5)], FID=[1, 2],
                         to_crs="EPSG:4326")
    import geopandas as gpd

    g = gpd.read_file(far)
    g = gpd.GeoDataFrame({"FID": [1, 2, 3]}, geometry=[*g.geometry, box(0, 0, 0.001, 0.001)], crs=4326)
    g.to_file(tmp_path / "far.geojson", driver="GeoJSON")
    shapes = []
    real = geometry.PolygonZones._rasterize
    monkeypatch.setattr(geometry.PolygonZones, "_rasterize", lambda self, grid: shapes.append(grid.shape) or real(self, grid))
    res = run(tmp_path, tmp_path / "far.geojson")
    assert [z.name for z in res.zones] == ["1", "2"] and max(h * w for h, w in shapes) <= 36


def test_geometry_partly_outside_a_dates_raster(tmp_path, polygon_writer, lai_writer):
    v = glob_values((6, 6))
    lai_writer("2022-06-01", v)
    # 06-02: only global columns 2..5 exist (raster shifted 2 px east, 4 px wide)
    lai_writer("2022-06-02", v[:, 2:], transform=from_origin(ORIGIN[0] + 20, ORIGIN[1], 10, 10))
    # 06-03: a larger raster starting one pixel north-west of the global origin
    big = np.full((8, 8), np.nan, np.float32)
    big[1:7, 1:7] = v
    lai_writer("2022-06-03", big, transform=from_origin(ORIGIN[0] - 10, ORIGIN[1] + 10, 10, 10))
    # C: rows 1-2, cols 1-3 (6 px); A: rows 0-1, cols 0-1 (entirely outside on 06-02)
    g = polygon_writer("f.geojson", [pixel_box(1, 1, 4, 3), pixel_box(0, 0, 2, 2)], FID=[1, 2])
    res = run(tmp_path, g, interpolation="none")
    c, a = stats(res, 0), stats(res, 1)
    assert res.zones[0].n_pixels == 6
    assert c.loc["2022-06-01", "n_pixels"] == 6
    assert c.loc["2022-06-02", "n_pixels"] == 4
    assert c.loc["2022-06-02", "Cloud or Snow Percentage"] == pytest.approx(100 * 2 / 6)
    assert c.loc["2022-06-02", "LAI Mean"] == pytest.approx(np.mean(v[1:3, 2:4]), abs=1e-6)
    assert c.loc["2022-06-03", "n_pixels"] == 6
    assert c.loc["2022-06-03", "LAI Mean"] == pytest.approx(np.mean(v[1:3, 1:4]), abs=1e-6)
    assert a.loc["2022-06-02", "n_pixels"] == 0
    assert a.loc["2022-06-02", "Cloud or Snow Percentage"] == 100
    assert np.isnan(a.loc["2022-06-02", "LAI Mean"])
    # the max map stays on the first grid, with every date's pixels in place
    with rasterio.open(res.zones[0].max_tif) as ds:
        assert ds.shape == (2, 3)
        np.testing.assert_allclose(ds.read(1), v[1:3, 1:4])


def test_reads_only_the_geometry_window_and_rasterises_once(tmp_path, polygon_writer, lai_writer,
                                                          monkeypatch):
    for d in ("2022-06-01", "2022-06-02", "2022-06-05"):
        lai_writer(d, np.ones((50, 60), np.float32))
    g = polygon_writer("f.geojson", [pixel_box(10, 20, 13, 22), pixel_box(14, 25, 15, 27)],
                       FID=[1, 2])
    windows, burns = [], []
    real_read, real_rasterize = analysis_core.read_window, geometry.rasterize
    monkeypatch.setattr(analysis_core, "read_window",
                        lambda ds, w: windows.append(w) or real_read(ds, w))
    monkeypatch.setattr(geometry, "rasterize",
                        lambda *a, **k: burns.append(1) or real_rasterize(*a, **k))
    run(tmp_path, g)
    assert len(windows) == 3  # one read per date for both fields
    assert {(w.col_off, w.row_off, w.width, w.height) for w in windows} == {(10, 20, 5, 7)}
    assert len(burns) == 1  # one grid: rasterised once


def test_overlapping_polygons_keep_all_their_pixels(tmp_path, polygon_writer, season):
    g = polygon_writer("o.geojson", [pixel_box(0, 0, 3, 3), pixel_box(1, 1, 4, 4)], FID=[1, 2])
    res = run(tmp_path, g)
    v = season
    for k, (r, c) in enumerate([(0, 0), (1, 1)]):
        row = stats(res, k).loc["2022-06-01"]
        assert row["n_pixels"] == 9
        assert row["LAI Mean"] == pytest.approx(v[r:r + 3, c:c + 3].mean(), abs=1e-6)


def test_all_touched(tmp_path, polygon_writer, season):
    # holds one pixel centre (1.5, 1.5) but touches four pixels
    g = polygon_writer("t.geojson", [pixel_box(1.2, 1.2, 2.4, 2.4)], FID=[1])
    assert stats(run(tmp_path, g)).loc["2022-06-01", "n_pixels"] == 1
    assert stats(run(tmp_path, g, all_touched=True)).loc["2022-06-01", "n_pixels"] == 4


def test_all_touched_fields_a_gap_apart_keep_the_pixel_they_share(tmp_path, polygon_writer, season):
    """Two fields 2 m apart both touch the pixel column between them: each counts it (the one
    burnt last took it from the other)."""
    g = polygon_writer("t.geojson", [pixel_box(0, 0, 2.4, 2), pixel_box(2.6, 0, 5, 2)], FID=[1, 2])
    res = run(tmp_path, g, all_touched=True)
    assert [stats(res, k).loc["2022-06-01", "n_pixels"] for k in (0, 1)] == [6, 6]


def test_wheat_adjustment_is_per_pixel(tmp_path, two_fields, season):
    res = run(tmp_path, two_fields, adjustment="wheat")
    a = np.array([0.0, 0.1, 1.0, 1.1])
    adj = 0.0482 * a**2 + 0.9161 * a + 0.0026
    row = stats(res).loc["2022-06-01"]
    assert row["LAI Mean Adjusted"] == pytest.approx(adj.mean(), abs=1e-6)
    assert row["LAI Stddev Adjusted"] == pytest.approx(adj.std(), abs=1e-6)
    assert row["LAI Mean"] == pytest.approx(a.mean(), abs=1e-6)


def test_max_tif(tmp_path, two_fields, season):
    res = run(tmp_path, two_fields, adjustment="maize")
    with rasterio.open(res.zones[1].max_tif) as ds:
        assert ds.count == 2 and ds.dtypes == ("float32", "float32")
        assert ds.descriptions == ("estimateLAImax", "adjustedLAImax")
        assert np.isnan(ds.nodata)
        assert ds.shape == (2, 3) and ds.bounds == pixel_box(3, 3, 6, 5).bounds
        lai = season[3:5, 3:6] + 1  # 06-06 is the highest date
        np.testing.assert_allclose(ds.read(1), lai, rtol=1e-6)
        np.testing.assert_allclose(ds.read(2), -0.078 * lai**2 + 1.4 * lai - 0.18, rtol=1e-5)
        assert ds.tags()["REGION"] == "R" and ds.tags()["ZONE"] == "12"
    with rasterio.open(run(tmp_path, two_fields, mode="poly_agg").zones[0].max_tif) as ds:
        data = ds.read(1)
        assert ds.shape == (5, 6)  # the window of both fields
        assert np.isnan(data[2]).all() and np.isfinite(data[0, :2]).all()  # NaN outside
    one = run(tmp_path, two_fields, max_bands="adjusted")
    with rasterio.open(one.zones[0].max_tif) as ds:
        assert ds.descriptions == ("adjustedLAImax",)
    assert run(tmp_path, two_fields, max_bands="none").zones[0].max_tif is None


def test_cloud_threshold_makes_a_gap(tmp_path, two_fields, season):
    res = run(tmp_path, two_fields, max_cloud_percent=20, interpolation="linear")
    a = stats(res)
    row = a.loc["2022-06-03"]  # 25 % cloud in A
    # rejected: nothing aggregated (n_pixels 0), the cloud share tells why
    assert row["interpolated"] == 1 and row["n_pixels"] == 0
    assert row["Cloud or Snow Percentage"] == 25 and np.isnan(row["LAI Stddev"])
    for col in ("LAI Mean", "LAI Median", "LAI Mean Adjusted", "LAI Median Adjusted"):
        m1, m6 = a.loc["2022-06-01", col], a.loc["2022-06-06", col]
        assert row[col] == pytest.approx(m1 + (m6 - m1) * 2 / 5, abs=1e-5), col
    b = run(tmp_path, two_fields, min_valid_fraction=0.8, interpolation="linear")
    assert stats(b).loc["2022-06-03", "interpolated"] == 1
    assert stats(b, 1).loc["2022-06-03", "interpolated"] == 0  # B was clear


def test_single_observation_warns_and_writes(tmp_path, two_fields, lai_writer, caplog):
    lai_writer("2022-06-01", glob_values())
    res = run(tmp_path, two_fields, end=D(2022, 6, 4))
    a = stats(res)
    assert len(a) == 4 and a["interpolated"].sum() == 0
    assert a["LAI Mean"].notna().sum() == 1
    assert "only 1 observation" in caplog.text


def test_dmy_dates_and_explicit_range(tmp_path, two_fields, season):
    res = run(tmp_path, two_fields, start=D(2022, 5, 30), end=D(2022, 6, 7), date_format="dmy")
    a = pd.read_csv(res.zones[0].csv)
    assert a["Date"].iloc[0] == "30/05/2022" and a["Date"].iloc[-1] == "07/06/2022"
    assert res.zones[0].csv.name == "R_fields_11_2022-05-30_2022-06-07_STATS.csv"
    # no extrapolation before the first / after the last observation
    assert a["LAI Mean"].iloc[:2].isna().all() and np.isnan(a["LAI Mean"].iloc[-1])


def test_id_column_fallback_to_row_index(tmp_path, polygon_writer, season, caplog):
    g = polygon_writer("n.geojson", [pixel_box(0, 0, 2, 2), pixel_box(3, 3, 6, 5)],
                       field=["a", "a"])
    res = run(tmp_path, g, id_column="field")
    assert [z.name for z in res.zones] == ["0", "1"]
    assert "repeated" in caplog.text


def test_dates_on_another_lattice(tmp_path, polygon_writer, lai_writer, monkeypatch):
    v = glob_values()
    lai_writer("2022-06-01", v)
    # 06-02 is on a lattice shifted a quarter pixel east; its values are all higher
    lai_writer("2022-06-02", v + 10, transform=from_origin(ORIGIN[0] + 2.5, ORIGIN[1], 10, 10))
    g = polygon_writer("f.geojson", [pixel_box(1, 1, 4, 3)], FID=[1])
    burns = []
    real_rasterize = geometry.rasterize
    monkeypatch.setattr(geometry, "rasterize",
                        lambda *a, **k: burns.append(1) or real_rasterize(*a, **k))
    res = run(tmp_path, g)
    assert len(burns) == 2  # one rasterisation per grid
    a = stats(res)
    assert list(a["n_pixels"]) == [6, 6]  # shifted centres 1.75, 2.75, 3.75 are inside
    assert a.loc["2022-06-02", "LAI Mean"] == pytest.approx(v[1:3, 1:4].mean() + 10, abs=1e-5)
    with rasterio.open(res.zones[0].max_tif) as ds:  # on the first date's grid, nearest
        assert ds.shape == (2, 3) and ds.transform.c == ORIGIN[0] + 10
        np.testing.assert_allclose(ds.read(1), v[1:3, 1:4] + 10)


def test_integer_raster_without_nodata_partly_outside(tmp_path, polygon_writer, lai_writer):
    # the outside of a boundless read must not count as LAI 0 when no nodata is declared
    data = np.arange(1, 17, dtype=np.int16).reshape(4, 4)
    lai_writer("2022-06-01", data, dtype=np.int16, nodata=None)
    g = polygon_writer("f.geojson", [pixel_box(2, 2, 6, 6)], FID=[1])  # 2 x 2 of 4 x 4 inside
    row = stats(run(tmp_path, g)).loc["2022-06-01"]
    assert row["n_pixels"] == 4 and row["Cloud or Snow Percentage"] == 75
    assert row["LAI Mean"] == pytest.approx(data[2:, 2:].mean())


REFERENCE_COLUMNS = ["Date", "n_pixels", "interpolated", "LAI Mean", "LAI Median", "LAI Stddev",
                     "LAI Mean Adjusted", "LAI Median Adjusted", "LAI Stddev Adjusted",
                     "Cloud or Snow Percentage"]
UNSMOOTHED = ["LAI Mean Unsmoothed", "LAI Median Unsmoothed", "LAI Stddev Unsmoothed",
              "LAI Mean Adjusted Unsmoothed", "LAI Median Adjusted Unsmoothed",
              "LAI Stddev Adjusted Unsmoothed"]


@pytest.fixture
def six_dates(lai_writer):
    """Field A (rows 0-1, cols 0-1) on 7 dates, 6 observed: values base + (0, .1, .2, .3)."""
    base = {1: 0.2, 2: 1.1, 4: 2.4, 5: 2.9, 6: 3.8, 8: 3.1}
    for day, b in base.items():
        v = np.full((6, 6), 9.0, np.float32)
        v[0:2, 0:2] = b + np.array([[0.0, 0.1], [0.2, 0.3]])
        lai_writer(f"2022-06-0{day}", v)
    return base


def test_savgol_smooths_means_medians_and_stds_keeping_the_unsmoothed(tmp_path, two_fields, six_dates):
    from scipy.signal import savgol_filter

    plain = stats(run(tmp_path, two_fields, end=D(2022, 6, 8), adjustment="wheat", outliers="none"))
    res = run(tmp_path, two_fields, end=D(2022, 6, 8), adjustment="wheat", outliers="none",
              smooth="savgol")
    df = pd.read_csv(res.zones[0].csv)
    assert list(df.columns) == REFERENCE_COLUMNS + UNSMOOTHED + ["outlier", "LAI Mean Rejected"]
    df = df.set_index("Date")
    obs = [f"2022-06-0{d}" for d in six_dates]
    means = np.array([b + 0.15 for b in six_dates.values()])
    # 6 observations: window 9 shrunk to 5, order 2, clipped at 0 (hand-made means)
    want = np.maximum(savgol_filter(means, 5, 2, mode="interp"), 0)
    np.testing.assert_allclose(df.loc[obs, "LAI Mean"], want, atol=1e-6)
    np.testing.assert_allclose(df.loc[obs, "LAI Mean Unsmoothed"], means, atol=1e-6)
    for col in ("LAI Median", "LAI Stddev", "LAI Mean Adjusted", "LAI Median Adjusted", "LAI Stddev Adjusted"):
        raw = plain.loc[obs, col].to_numpy()
        np.testing.assert_allclose(df.loc[obs, col], np.maximum(savgol_filter(raw, 5, 2, mode="interp"), 0),
                                   atol=1e-6)
        np.testing.assert_allclose(df.loc[obs, f"{col} Unsmoothed"], raw, atol=1e-6)
    # the gap day: means and medians (smoothed or not) interpolated, stds empty
    gap = df.loc["2022-06-03"]
    assert gap["interpolated"] == 1 and gap["n_pixels"] == 0
    assert gap[["LAI Mean", "LAI Median", "LAI Mean Unsmoothed", "LAI Median Adjusted Unsmoothed"]].notna().all()
    assert gap[["LAI Stddev", "LAI Stddev Unsmoothed", "LAI Stddev Adjusted Unsmoothed"]].isna().all()
    assert gap["LAI Mean Unsmoothed"] == pytest.approx(plain.loc["2022-06-03", "LAI Mean"], abs=1e-6)
    # without smoothing, the reference's columns and ours, no Unsmoothed ones
    assert list(pd.read_csv(run(tmp_path, two_fields, end=D(2022, 6, 8)).zones[0].csv).columns) == \
        REFERENCE_COLUMNS + ["outlier", "LAI Mean Rejected"]


def test_median_adjusted_is_the_median_of_adjusted_pixels(tmp_path, two_fields, six_dates):
    df = stats(run(tmp_path, two_fields, end=D(2022, 6, 8), adjustment="maize"))
    v = 2.4 + np.array([0.0, 0.1, 0.2, 0.3])
    adj = -0.078 * v**2 + 1.4 * v - 0.18
    assert df.loc["2022-06-04", "LAI Median Adjusted"] == pytest.approx(np.median(adj), abs=1e-6)
    assert df.loc["2022-06-04", "LAI Mean Adjusted"] == pytest.approx(adj.mean(), abs=1e-6)


def test_an_outlier_day_is_filled_like_a_gap_and_marked(tmp_path, two_fields, six_dates, lai_writer):
    v = np.full((6, 6), 9.0, np.float32)
    v[0:2, 0:2] = 0.9  # 2022-06-05 was 2.9-3.2 between 2.4 and 3.8: a missed cloud
    lai_writer("2022-06-05", v)
    df = stats(run(tmp_path, two_fields, end=D(2022, 6, 8), interpolation="linear"))
    row = df.loc["2022-06-05"]
    assert row["outlier"] == 1 and row["interpolated"] == 1 and row["n_pixels"] == 0
    assert row["LAI Mean Rejected"] == pytest.approx(0.9, abs=1e-6)
    assert row["LAI Mean"] == pytest.approx((2.55 + 3.95) / 2, abs=1e-6)  # between its neighbours
    assert np.isnan(row["LAI Stddev"])
    assert df["outlier"].sum() == 1 and df["LAI Mean Rejected"].notna().sum() == 1
    kept = stats(run(tmp_path, two_fields, end=D(2022, 6, 8), outliers="none")).loc["2022-06-05"]
    assert kept["outlier"] == 0 and kept["LAI Mean"] == pytest.approx(0.9, abs=1e-6)


def test_a_spike_the_outlier_test_rejects_is_not_the_max_map(tmp_path, polygon_writer, lai_writer):
    """The max map is the maximum over the observation days; a rejected spike had set it (8.0 where
    the season's highest observation was 3.0), folded in before the outlier test."""
    g = polygon_writer("f.geojson", [pixel_box(0, 0, 4, 4)], FID=[1])
    for day, value in zip((1, 6, 11, 16, 21, 26, 31), (1, 2, 3, 8, 3, 2, 1), strict=True):
        lai_writer(f"2022-07-{day:02d}", np.full((4, 4), float(value), np.float32))
    res = run(tmp_path, g, outliers="dips+spikes")
    assert stats(res).loc["2022-07-16", "outlier"] == 1
    with rasterio.open(res.zones[0].max_tif) as ds:
        assert ds.read(1).max() == pytest.approx(3.0)
    with rasterio.open(run(tmp_path, g, outliers="none").zones[0].max_tif) as ds:
        assert ds.read(1).max() == pytest.approx(8.0)  # kept, it is the maximum


def test_uncertainty_rasters_give_a_gap_filled_uncertainty_column(tmp_path, two_fields, season):
    from conftest import write_raster

    for day, u in (("2022-06-01", 0.5), ("2022-06-03", 0.7), ("2022-06-06", 1.1)):
        unc = np.full((6, 6), u, np.float32)
        unc[0, 1] = 3.0 + u  # A's pixel (0, 1): valid LAI every day
        write_raster(tmp_path / "lai" / f"R_10m_{day}_LAI_uncertainty.tif", unc, nodata=np.nan)
    df = pd.read_csv(run(tmp_path, two_fields, interpolation="linear", outliers="none").zones[0].csv)
    assert list(df.columns).index("LAI Uncertainty") == list(df.columns).index("outlier") - 1
    a = df.set_index("Date")

    def field_sigma(u):  # a shared part (ρ) that the field's mean keeps, an independent part that averages out
        u = np.asarray(u)
        return np.sqrt(0.8 * u.mean() ** 2 + 0.2 * np.mean(u**2) / u.size)

    # A on 06-01: 4 valid pixels, one of them 3.5
    assert a.loc["2022-06-01", "LAI Uncertainty"] == pytest.approx(field_sigma([0.5, 0.5, 0.5, 3.5]))
    # 06-03: pixel (0, 0) is cloud: over the 3 aggregated pixels
    assert a.loc["2022-06-03", "LAI Uncertainty"] == pytest.approx(field_sigma([0.7, 0.7, 3.7]))
    # gap days interpolated like the means
    u1, u3 = a.loc["2022-06-01", "LAI Uncertainty"], a.loc["2022-06-03", "LAI Uncertainty"]
    assert a.loc["2022-06-02", "LAI Uncertainty"] == pytest.approx((u1 + u3) / 2)


def test_uncertainty_rasters_added_later_change_the_fingerprint(tmp_path, two_fields, season):
    from conftest import write_raster

    from vercye_lai.analysis import manifest
    from vercye_lai.analysis.options import AnalysisOptions

    o = AnalysisOptions()
    files = manifest.lai_files(tmp_path / "lai", "R", resolution=10, start=D(2022, 6, 1),
                               end=D(2022, 6, 8), options=o)
    before = manifest.fingerprint(files, two_fields, start=D(2022, 6, 1), end=D(2022, 6, 8), options=o)
    write_raster(tmp_path / "lai" / "R_10m_2022-06-01_LAI_uncertainty.tif",
                 np.full((6, 6), 0.5, np.float32), nodata=np.nan)
    after = manifest.fingerprint(files, two_fields, start=D(2022, 6, 1), end=D(2022, 6, 8), options=o)
    assert before != after  # a rerun adds the LAI Uncertainty column
    assert after["uncertainty"] == ["unknown (no VERCYE_UNCERTAINTY tag)"]  # which σ it holds


def test_a_poly_calibration_file_is_an_adjustment(tmp_path, two_fields, six_dates):
    from vercye_lai.errors import InputError
    from vercye_lai.model.calibration import Calibration

    path = Calibration("poly2", 0.01, (1.2, -0.05, 0.1), "sl2p").write(tmp_path / "cal.json")
    df = stats(run(tmp_path, two_fields, end=D(2022, 6, 8), adjustment=str(path)))
    v = 2.4 + np.array([0.0, 0.1, 0.2, 0.3])
    adj = 0.1 + 1.2 * v - 0.05 * v**2
    assert df.loc["2022-06-04", "LAI Mean Adjusted"] == pytest.approx(adj.mean(), abs=1e-6)
    assert df.loc["2022-06-04", "LAI Median Adjusted"] == pytest.approx(np.median(adj), abs=1e-6)
    refit = Calibration("refit", 0.01, (0.0,) * 6, "sl2p", inputs=("cosVZA",)).write(tmp_path / "refit.json")
    with pytest.raises(InputError, match="needs the band values"):
        run(tmp_path, two_fields, end=D(2022, 6, 8), adjustment=str(refit))
    from conftest import cli_error_line

    r = CliRunner().invoke(cli, ["-q", "analyze", str(tmp_path / "lai"), str(two_fields), "--region", "R",
                                 "--res", "10", "--start-date", "2022-06-01", "--end-date", "2022-06-08",
                                 "-o", str(tmp_path / "o2"), "--adjustment", str(tmp_path / "nope.json")])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = CliRunner().invoke(cli, ["-q", "analyze", str(tmp_path / "lai"), str(two_fields), "--region", "R",
                                 "--res", "10", "--start-date", "2022-06-01", "--end-date", "2022-06-08",
                                 "-o", str(tmp_path / "o3"), "--adjustment", str(refit)])
    assert "needs the band values" in cli_error_line(r)
