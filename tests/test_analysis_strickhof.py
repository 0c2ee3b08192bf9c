"""End to end on real data: three winter-wheat fields at Strickhof (CH), 34 Sentinel-2 dates.

The sample (tests/data/strickhof, see NOTICE.md) holds the PROSAIL LAI of Graf et al. (2023);
statistics are checked against an independent per-field, per-date ``rasterio.mask``.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.mask
from click.testing import CliRunner
from conftest import DATA

from vercye_lai.analysis import analyze
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.analysis.quicklook import quicklook
from vercye_lai.cli.main import cli
from vercye_lai.naming import RasterName

SAMPLE = DATA / "strickhof"
LAI = SAMPLE / "lai"
FIELDS = SAMPLE / "fields.geojson"


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("strickhof")
    return analyze(LAI, out, "strickhof", FIELDS, resolution=10, options=AnalysisOptions(mode="poly_iter", adjustment="wheat", id_column="name"))


def baseline(field: str) -> dict[dt.date, tuple[int, float, float]]:
    """(n valid, mean, max) of one field per date, one rasterio.mask call per file."""
    gdf = gpd.read_file(FIELDS)
    out = {}
    for path in sorted(LAI.glob("*.tif")):
        with rasterio.open(path) as ds:
            geom = gdf.to_crs(ds.crs).loc[gdf["name"] == field].geometry
            data, _ = rasterio.mask.mask(ds, geom, crop=True, filled=False, indexes=1)
        v = np.maximum(data.compressed(), 0)
        v = v[~np.isnan(v)].astype(np.float64)
        out[RasterName.parse(path).date] = (v.size, v.mean() if v.size else np.nan,
                                            v.max() if v.size else np.nan)
    return out


def test_outputs(result):
    assert [z.name for z in result.zones] == ["Bramenwies", "Fluegenrain", "Hohrueti"]
    assert result.n_files == 34 and result.n_overlapping == 34
    assert (result.start, result.end) == (dt.date(2022, 3, 5), dt.date(2022, 7, 30))
    for z in result.zones:
        assert z.csv.name == f"strickhof_fields_{z.name}_2022-03-05_2022-07-30_STATS.csv"
        assert z.max_tif.name == f"strickhof_fields_{z.name}_2022-03-05_2022-07-30_MAX.tif"
    # field areas 2.04, 0.93 and 2.00 ha at 100 m² a pixel
    assert [z.n_pixels for z in result.zones] == pytest.approx([204, 93, 200], rel=0.05)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_statistics_match_rasterio_mask(result, k):
    zone = result.zones[k]
    df = pd.read_csv(zone.csv, parse_dates=["Date"]).set_index("Date")
    ref = baseline(zone.name)
    for date, (n, mean, _) in ref.items():
        row = df.loc[pd.Timestamp(date)]
        if row["outlier"]:  # observed, rejected by the outlier test: its mean kept aside
            assert n and row["n_pixels"] == 0 and row["interpolated"] == 1
            assert row["LAI Mean Rejected"] == pytest.approx(mean, abs=1e-6)
            continue
        assert row["n_pixels"] == n, date
        if n:
            assert row["interpolated"] == 0
            assert row["LAI Mean"] == pytest.approx(mean, abs=1e-6)
    assert len(df) == 148 and (df["interpolated"] == 1).sum() == 148 - zone.n_observed
    # the season peaks in May-June near 4-5 (Graf et al. 2023)
    peak = df["LAI Mean"].idxmax()
    assert dt.date(2022, 5, 1) <= peak.date() <= dt.date(2022, 6, 20)
    assert 3.5 < df["LAI Mean"].max() < 5.5
    # the wheat calibration lowers LAI below ~1.7 and raises it above
    assert (df["LAI Mean Adjusted"] > df["LAI Mean"])[df["LAI Mean"] > 2].all()
    assert (df["LAI Mean Adjusted"] < df["LAI Mean"])[df["LAI Mean"] < 1.5].all()
    with rasterio.open(zone.max_tif) as ds:
        band = ds.read(1)
        assert np.isfinite(band).sum() == zone.n_pixels
        assert np.nanmax(band) == pytest.approx(max(m for _, _, m in ref.values()), abs=1e-6)


@pytest.mark.slow  # 1 s: the quick loop draws quicklooks in test_quicklook
def test_quicklook_png(result, tmp_path):
    zone = result.zones[0]
    png = quicklook(zone.csv, zone.max_tif, out=tmp_path / "q.png", geometry_path=FIELDS)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[1] > 1.8 * img.shape[0]  # two panels side by side


def test_cli_end_to_end(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["analyze", str(LAI), str(tmp_path), "strickhof", str(FIELDS),
                              "--res", "10", "--mode", "poly_agg", "--adjustment", "wheat",
                              "--start-date", "2022-04-01", "--end_date", "2022-06-30",
                              "--date-format", "dmy"])
    assert res.exit_code == 0, res.output
    stem = "strickhof_fields_2022-04-01_2022-06-30"
    csv = tmp_path / f"{stem}_STATS.csv"
    assert pd.read_csv(csv)["Date"].iloc[0] == "01/04/2022"
    res = runner.invoke(cli, ["quicklook", str(csv), str(tmp_path / f"{stem}_MAX.tif")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / f"{stem}_QUICKLOOK.png").stat().st_size > 30_000


def test_crop_mask_from_the_fields_matches_poly_agg(tmp_path):
    # a crop mask burnt from the fields on the LAI grid, written in Swiss LV95 at 5 m:
    # raster mode must find the same pixels as poly_agg up to the resampling at the edges
    from rasterio.features import rasterize
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(LAI / "strickhof_10m_2022-03-05_LAI.tif") as ds:
        crs, transform, shape = ds.crs, ds.transform, ds.shape
    gdf = gpd.read_file(FIELDS).to_crs(crs)
    mask = rasterize(gdf.geometry, out_shape=shape, transform=transform, dtype="uint8")
    t, w, h = calculate_default_transform(crs, "EPSG:2056", shape[1], shape[0],
                                          *rasterio.transform.array_bounds(*shape, transform),
                                          resolution=5.0)
    lv95 = np.zeros((h, w), np.uint8)
    reproject(mask, lv95, src_transform=transform, src_crs=crs, dst_transform=t,
              dst_crs="EPSG:2056", resampling=Resampling.nearest)
    path = tmp_path / "cropmask_lv95.tif"
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8",
                       crs="EPSG:2056", transform=t) as dst:
        dst.write(lv95, 1)
    r = analyze(LAI, tmp_path, "strickhof", path, resolution=10, options=AnalysisOptions(mode="raster"))
    p = analyze(LAI, tmp_path, "strickhof", FIELDS, resolution=10, options=AnalysisOptions(mode="poly_agg"))
    a, b = pd.read_csv(r.zones[0].csv), pd.read_csv(p.zones[0].csv)
    assert r.zones[0].n_pixels == pytest.approx(p.zones[0].n_pixels, rel=0.05)
    both = (a["n_pixels"] > 0) & (b["n_pixels"] > 0)
    np.testing.assert_allclose(a.loc[both, "LAI Mean"], b.loc[both, "LAI Mean"], atol=0.05)


def _observed_means(result, k: int = 0) -> np.ndarray:
    """The field's daily series of observed means, the rejected observation put back."""
    df = pd.read_csv(result.zones[k].csv)
    y = np.where(df["interpolated"] == 0, df["LAI Mean"], np.nan)
    return np.where(df["outlier"] == 1, df["LAI Mean Rejected"], y)


def test_real_haze_day_rejected_injected_dip_too_and_harvest_kept(result):
    from vercye_lai.analysis.timeseries import find_outliers

    y = _observed_means(result)
    days = pd.date_range("2022-03-05", "2022-07-30").date
    june18 = list(days).index(dt.date(2022, 6, 18))
    assert find_outliers(y)[june18]  # 3.43 between ~5: what the quicklook shows as a dip
    # a cloud dip injected on an observed mid-May day: caught, and nothing else new
    obs = np.flatnonzero(~np.isnan(y))
    may = next(i for i in obs if days[i] >= dt.date(2022, 5, 12))
    dipped = y.copy()
    dipped[may] *= 0.5
    assert np.flatnonzero(find_outliers(dipped)).tolist() == sorted([may, june18])
    # a harvest on 1 July: every later observation at bare-soil LAI, none rejected
    harvest = y.copy()
    after = obs[days[obs] >= dt.date(2022, 7, 1)]
    harvest[after] = 0.3
    assert not find_outliers(harvest)[after].any()
