"""STAC source against a static STAC catalogue built on disk (pystac) from the real L2A
product in ../shared/data (60 m bands, SCL, MTD_TL.xml); public servers are unreachable."""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
import types

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import (
    SENSING,
    UTM,
    granule,
    jp2,
    make_catalog,
    make_item,
    region_4326,
    write_raster,
)
from rasterio.enums import Resampling
from rasterio.warp import transform_geom
from shapely.geometry import box, shape

pystac = pytest.importorskip("pystac")

from vercye_lai.acquire import stac  # noqa: E402
from vercye_lai.acquire.scl import DEFAULT_SCL_MASK  # noqa: E402
from vercye_lai.cli.main import cli  # noqa: E402
from vercye_lai.errors import DependencyError, InputError, NoDataFoundError  # noqa: E402
from vercye_lai.grid import Grid  # noqa: E402
from vercye_lai.io import read_values  # noqa: E402
from vercye_lai.stack import S2_BANDS_20M, STACK_NODATA  # noqa: E402

needs_safe = pytest.mark.usefixtures("shared_safe")  # ../shared/data's L2A product (conftest)
def run(args):
    return CliRunner().invoke(cli, ["stack-stac", *map(str, args)])


@pytest.fixture
def region_file(tmp_path):
    import geopandas as gpd

    path = tmp_path / "Kilkenny.geojson"
    gpd.GeoDataFrame({"name": ["Kilkenny"]}, geometry=[region_4326()], crs=4326).to_file(path)
    return path


def read_source(band, xs, ys):
    with rasterio.open(jp2(band)) as ds:
        rows, cols = rasterio.transform.rowcol(ds.transform, xs, ys)
        data = ds.read(1)
    return data[rows, cols]


def xml_mean_sun():
    text = (granule() / "MTD_TL.xml").read_text()
    block = re.search(r"<Mean_Sun_Angle>(.*?)</Mean_Sun_Angle>", text, re.S)[1]
    return float(re.search(r"<ZENITH_ANGLE[^>]*>([\d.]+)<", block)[1])


@pytest.mark.slow
@needs_safe
def test_static_catalogue_end_to_end(tmp_path, region_file):
    cat = make_catalog(tmp_path / "cat", [make_item("S2A_T29UNU_20221005")])
    out = tmp_path / "out"
    args = [
        "--catalog",
        cat,
        "--shpfile",
        region_file,
        "--start-date",
        "2022-10-01",
        "--end-date",
        "2022-10-10",
        "--resolution",
        60,
        "--out-dir",
        out,
    ]
    res = run(args)
    assert res.exit_code == 0, res.output
    dst = out / "Kilkenny_60m_2022-10-05.tif"
    with rasterio.open(dst) as ds:
        assert ds.count == 11 and ds.crs == UTM and ds.res == (60, 60)
        assert tuple(ds.descriptions) == S2_BANDS_20M
        assert ds.transform.c % 60 == 0 and ds.transform.f % 60 == 0
        assert ds.tags()["ANGLES_FROM"] == "granule metadata"
        data = ds.read()
        rows, cols = np.mgrid[0 : ds.height, 0 : ds.width]
        xs, ys = rasterio.transform.xy(ds.transform, rows.ravel(), cols.ravel())
    valid = data[0] != STACK_NODATA
    assert 0.5 < valid.mean() < 1.0
    # reflectance = (DN - 1000) / 10000 at the same 60 m pixels (the grids coincide)
    dn = read_source("B4", xs, ys).reshape(valid.shape)
    np.testing.assert_array_equal(data[4][valid], dn[valid].astype(int) - 1000)
    # SCL-masked and outside-region pixels are nodata
    scl = read_source("SCL", xs, ys).reshape(valid.shape)
    assert not valid[np.isin(scl, DEFAULT_SCL_MASK)].any()
    inside = np.array(
        [
            region_4326().contains(
                shape(transform_geom(UTM, "EPSG:4326", {"type": "Point", "coordinates": (x, y)}))
            )
            for x, y in zip(xs[::97], ys[::97])
        ]
    )
    assert inside.any()
    assert valid.ravel()[::97][inside].mean() > 0.3
    # angles from MTD_TL.xml: mean sun zenith of this small area close to the tile's mean
    sza = np.degrees(np.arccos(data[1][valid] * 1e-4))
    assert abs(sza.mean() - xml_mean_sun()) < 1.0 and sza.std() < 0.5
    assert np.all((data[0][valid] > 9500) & (data[0][valid] <= 10000))  # cos(VZA), VZA < 18°

    # predict reads the stack (declared scale, band order) and gives plausible LAI
    res = CliRunner().invoke(
        cli, ["predict", str(out), str(tmp_path / "lai"), "--region", "Kilkenny", "--res", "60"]
    )
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "lai" / "Kilkenny_60m_2022-10-05_LAI.tif") as ds:
        lai = read_values(ds)
    assert np.isfinite(lai).sum() > 0.5 * valid.sum() and 0.5 < np.nanmedian(lai) < 7

    mtime = dst.stat().st_mtime_ns  # a rerun skips the finished date
    assert run(args).exit_code == 0 and dst.stat().st_mtime_ns == mtime

    res = run([*args[:4], "--start-date", "2023-01-01", "--end-date", "2023-01-31", *args[8:]])
    assert res.exit_code == 1 and "no sentinel-2-l2a item over region 'Kilkenny'" in res.output


@needs_safe
@pytest.mark.slow  # 0.9 s
def test_properties_only_and_planetary_keys(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    props = {"s2:mean_solar_zenith": 57.8, "s2:mean_solar_azimuth": 172.8, "eo:cloud_cover": 5.0}
    items = [
        make_item("pc", flavour="planetary-computer", with_granule=False, props=props),
        make_item("es", props={"eo:cloud_cover": 50.0}),
    ]  # same date: mosaicked after pc
    cat = make_catalog(tmp_path / "cat", items)
    written = stac.stack_stac(
        catalog=str(cat),
        region="r",
        geometry=region_4326(),
        start=dt.date(2022, 10, 5),
        end=dt.date(2022, 10, 5),
        resolution=120,
        out_dir=tmp_path / "out",
    )
    (path,) = written.values()
    with rasterio.open(path) as ds:
        assert ds.tags()["STAC_ITEMS"] == "pc,es"
        assert ds.tags()["ANGLES_FROM"] == "granule metadata,item properties"
        data = ds.read()
    valid = data[0] != STACK_NODATA
    # the least cloudy item (properties: nadir view, constant sun) wins everywhere it is valid
    assert set(np.unique(data[0][valid])) == {10000}
    assert set(np.unique(data[1][valid])) == {round(np.cos(np.radians(57.8)) * 1e4)}
    assert "pc: angles from item properties" in caplog.text
    assert "assuming a nadir view" in caplog.text
    # a rerun keeps it; one with another cloud buffer makes it again
    again = dict(catalog=str(cat), region="r", geometry=region_4326(), start=dt.date(2022, 10, 5),
                 end=dt.date(2022, 10, 5), resolution=120, out_dir=tmp_path / "out")
    mtime = path.stat().st_mtime_ns
    stac.stack_stac(**again)
    assert path.stat().st_mtime_ns == mtime
    stac.stack_stac(**again, cloud_buffer=1)
    assert path.stat().st_mtime_ns != mtime


def item_with(props=None, raster_bands=None):
    it = pystac.Item("x", None, None, SENSING, props or {})
    extra = {"raster:bands": [raster_bands]} if raster_bands else {}
    it.add_asset("red", pystac.Asset("red.tif", extra_fields=extra))
    return it


def test_reflectance_scaling_rules():
    assert stac.reflectance_scaling(
        item_with(raster_bands={"scale": 1e-4, "offset": -0.1}), "red"
    ) == (1e-4, -0.1)
    assert stac.reflectance_scaling(item_with({"s2:processing_baseline": "04.00"}), "red") == (
        1e-4,
        -0.1,
    )
    assert stac.reflectance_scaling(item_with({"s2:processing_baseline": "03.01"}), "red") == (
        1e-4,
        0.0,
    )
    assert stac.reflectance_scaling(
        item_with({"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": True}),
        "red",
    ) == (1e-4, 0.0)
    uri = {"s2:product_uri": "S2B_MSIL2A_20230101T000000_N0509_R000_T00XXX_20230101T000000.SAFE"}
    assert stac.reflectance_scaling(item_with(uri), "red") == (1e-4, -0.1)


def test_property_angles():
    a = stac.property_angles(
        item_with(
            {
                "view:sun_elevation": 30.0,
                "view:sun_azimuth": 160.0,
                "view:incidence_angle": 5.0,
                "view:azimuth": 100.0,
            }
        )
    )
    assert a == {
        "sun_zenith": 60.0,
        "sun_azimuth": 160.0,
        "view_zenith": 5.0,
        "view_azimuth": 100.0,
    }
    with pytest.raises(InputError, match="sun angle"):
        stac.property_angles(item_with({}))


def test_mosaic_first_valid_and_asset_keys():
    a = np.array([[[1.0, np.nan]], [[1.0, 1.0]]])
    b = np.array([[[2.0, 2.0]], [[2.0, 2.0]]])
    np.testing.assert_array_equal(stac.mosaic_first_valid([a, b]), [[[1.0, 2.0]], [[1.0, 2.0]]])
    with pytest.raises(NoDataFoundError):
        stac.mosaic_first_valid([])
    with pytest.raises(InputError, match="lacks the Sentinel-2 L2A assets"):
        stac.asset_keys(item_with())


def test_target_grid_is_snapped():
    g = stac.target_grid(region_4326(), 20)
    assert g.crs == UTM
    assert g.transform.c % 20 == 0 and g.transform.f % 20 == 0
    assert 600 <= g.shape[0] <= 610 and 600 <= g.shape[1] <= 610


@needs_safe
def test_api_search_and_planetary_signing(tmp_path, monkeypatch):
    items = [make_item("a"), make_item("b", when=SENSING + dt.timedelta(days=5))]
    calls = {}

    class FakeSearch:
        def items(self):
            return iter(items)

    class FakeClient:
        @classmethod
        def open(cls, url, modifier=None):
            calls["open"] = (url, modifier)
            return cls()

        def search(self, **kw):
            calls["search"] = kw
            return FakeSearch()

    import pystac_client

    monkeypatch.setattr(pystac_client, "Client", FakeClient)

    def search(catalog, **kw):
        return stac.search_items(
            catalog, collection="sentinel-2-l2a", geometry=region_4326(),
            start=dt.date(2022, 10, 1), end=dt.date(2022, 10, 31), **kw,
        )  # fmt: skip

    found = search("earth-search", max_cloud=30)
    assert [i.id for i in found] == ["a", "b"]
    assert calls["open"] == (stac.EARTH_SEARCH, None)
    kw = calls["search"]
    assert kw["collections"] == ["sentinel-2-l2a"] and kw["datetime"] == "2022-10-01/2022-10-31"
    assert kw["query"] == {"eo:cloud_cover": {"lte": 30}} and kw["intersects"]["type"] == "Polygon"

    monkeypatch.setitem(sys.modules, "planetary_computer", None)
    with pytest.raises(DependencyError, match=r"planetary_computer is not installed.*vercye-lai\[stac\]"):
        search("planetary-computer")
    signer = types.ModuleType("planetary_computer")
    signer.sign_inplace = lambda x: x
    monkeypatch.setitem(sys.modules, "planetary_computer", signer)
    search("planetary-computer")
    assert calls["open"] == (stac.PLANETARY_COMPUTER, signer.sign_inplace)


def test_is_static():
    assert stac.is_static("/data/catalog.json") and stac.is_static("cat")
    assert stac.is_static("https://example.org/stac/catalog.json")
    assert not stac.is_static("https://earth-search.aws.element84.com/v1")


@pytest.mark.parametrize("body", [b"", b"Not Found: no such API"])
def test_an_http_error_of_the_api_says_its_status(body):
    """A STAC API answering 404 (with or without a body) is named with its status, never an
    empty 'STAC search failed: '. The server is a local one on loopback."""
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(404)
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(Exception, match=r"STAC search failed: HTTP 404: " + (body.decode() or "APIError")):
            stac.search_items(f"http://127.0.0.1:{server.server_port}/stac", collection="c",
                              geometry=box(8, 47, 9, 48), start=dt.date(2022, 1, 1), end=dt.date(2022, 1, 2))
    finally:
        server.shutdown()


# --------------------------------------------------------------- Earth Search #71: declared offsets
# Items shaped as element84/earth-search#71 reports them (2025, S2B/S2C, processing baseline
# 05.11): raster:bands scale 0.0001 offset -0.1, earthsearch:boa_offset_applied false, and COGs
# whose DNs are already shifted by -1000; each built on tiny COGs in tmp_path.
EARTH_SEARCH_RB = {"nodata": 0, "data_type": "uint16", "bits_per_sample": 15, "spatial_resolution": 10,
                   "scale": 0.0001, "offset": -0.1}
RHO = {"B3": 0.06, "B4": 0.04, "B5": 0.1, "B6": 0.25, "B7": 0.3, "B8A": 0.35, "B11": 0.2, "B12": 0.1}


def es_item(tmp_path, item_id, *, shift, when, props, raster_bands=None, scl=4):
    """An Earth Search-shaped item over 16 x 16 px COGs of reflectance RHO (+ a ramp), stored as
    DN = 10000 x rho + ``shift``; SCL ``scl`` everywhere."""
    folder = tmp_path / item_id
    transform = rasterio.transform.from_origin(502020, 5898000, 60, 60)
    ramp = np.arange(256).reshape(16, 16) * 1e-4  # whole DNs: the reflectance is exact
    hrefs = {}
    for band, key in stac.ASSET_KEYS["earth-search"].items():
        if band == "granule":
            continue
        dn = np.full((16, 16), scl, np.uint8) if band == "SCL" else \
            np.round((RHO[band] + ramp) * 10000 + shift).astype(np.uint16)
        hrefs[band] = str(write_raster(folder / f"{key}.tif", dn, crs=UTM, transform=transform, nodata=0))
    it = make_item(item_id, with_granule=False, when=when, raster_bands=raster_bands, hrefs=hrefs,
                   props={"s2:mean_solar_zenith": 40.0, "s2:mean_solar_azimuth": 160.0,
                          "view:incidence_angle": 5.0, "view:azimuth": 100.0, **props})
    it.properties.pop("s2:processing_baseline") if "s2:processing_baseline" not in props else None
    return it, (np.array([RHO[b] for b in stac.REFLECTANCE_BANDS])[:, None, None] + ramp)


@pytest.mark.parametrize(("case", "shift", "when", "props", "rb"), [
    ("declared, applied already", 0, dt.datetime(2025, 3, 2, 10, tzinfo=dt.UTC),
     {"platform": "sentinel-2b", "s2:processing_baseline": "05.11", "earthsearch:boa_offset_applied": False},
     EARTH_SEARCH_RB),
    ("declared, not applied", 1000, dt.datetime(2025, 1, 26, 10, tzinfo=dt.UTC),
     {"platform": "sentinel-2c", "s2:processing_baseline": "05.11", "earthsearch:boa_offset_applied": False},
     EARTH_SEARCH_RB),
    ("undeclared, baseline 05.11", 1000, dt.datetime(2025, 2, 10, 10, tzinfo=dt.UTC),
     {"platform": "sentinel-2c", "s2:processing_baseline": "05.11"}, None),
    ("Collection-1 of 2019, baseline 05.00", 1000, dt.datetime(2019, 6, 1, 10, tzinfo=dt.UTC),
     {"platform": "sentinel-2a", "s2:processing_baseline": "05.00"}, None),
])
def test_declared_and_inferred_offsets_give_the_reflectance(tmp_path, caplog, case, shift, when, props, rb):
    item, rho = es_item(tmp_path, "S2C_33UXP_20250126_0_L2A", shift=shift, when=when, props=props,
                        raster_bands=rb)
    with rasterio.open(item.assets["red"].href) as ds:
        grid = Grid.of(ds)
    with caplog.at_level(logging.WARNING):
        scaling, note = stac.item_scaling(item)
        bands, _ = stac.item_stack(item, grid, scaling=scaling)
    np.testing.assert_allclose(bands[3:], rho, atol=1e-6)
    assert ("dropped" in note) == (shift == 0) and ("already" in caplog.text) == (shift == 0)
    if shift == 0:  # the warning names the item and what was assumed
        assert "S2C_33UXP_20250126_0_L2A" in caplog.text and "without it" in caplog.text


def test_an_item_declaring_a_scale_that_does_not_make_reflectances_is_refused(tmp_path):
    """raster:bands scale 1 for DNs: the stack held every reflectance clipped to 32767, exit 0."""
    item, _ = es_item(tmp_path, "S2C_33UXP_20250126_0_L2A", shift=1000, when=dt.datetime(2025, 1, 26, 10, tzinfo=dt.UTC),
                      props={"platform": "sentinel-2c", "s2:processing_baseline": "05.11"},
                      raster_bands={**EARTH_SEARCH_RB, "scale": 1.0, "offset": 0.0})
    with pytest.raises(InputError, match="STAC item S2C_33UXP_20250126_0_L2A: values are not reflectance factors: "
                       r"B3's median is .*correct the catalogue"):
        stac.item_scaling(item)
    assert stac.items_digest([item]) != stac.items_digest([es_item(
        tmp_path, "S2C_33UXP_20250126_0_L2A", shift=1000, when=dt.datetime(2025, 1, 26, 10, tzinfo=dt.UTC),
        props={"platform": "sentinel-2c", "s2:processing_baseline": "05.11"}, raster_bands=EARTH_SEARCH_RB)[0]])


def test_s2c_items_are_tagged_and_ordered(tmp_path, caplog):
    """S2A, S2B and S2C items of one day: newest baseline first, then the larger valid share;
    the stack names their platforms in mosaic order and what the offset check found."""
    when = dt.datetime(2025, 3, 2, 10, tzinfo=dt.UTC)
    es = dict(when=when, raster_bands=EARTH_SEARCH_RB)
    items = [
        es_item(tmp_path, "S2A_33UXP_20250302_0_L2A", shift=1000, props={
            "platform": "sentinel-2a", "s2:processing_baseline": "05.10", "eo:cloud_cover": 1.0}, **es)[0],
        es_item(tmp_path, "S2B_33UXP_20250302_0_L2A", shift=0, props={
            "platform": "sentinel-2b", "s2:processing_baseline": "05.11", "eo:cloud_cover": 30.0}, **es)[0],
        es_item(tmp_path, "S2C_33UXP_20250302_0_L2A", shift=1000, props={
            "platform": "sentinel-2c", "s2:processing_baseline": "05.11", "eo:cloud_cover": 10.0}, **es)[0],
    ]
    assert [it.id[:3] for it in stac.date_order(items)] == ["S2C", "S2B", "S2A"]
    assert [stac.item_platform(it) for it in items] == ["sentinel-2a", "sentinel-2b", "sentinel-2c"]
    cat = make_catalog(tmp_path / "cat", items)
    with rasterio.open(items[0].assets["red"].href) as ds:
        region = shape(transform_geom(UTM, "EPSG:4326", box(*ds.bounds).buffer(-100).__geo_interface__))
    with caplog.at_level(logging.WARNING):
        (path,) = stac.stack_stac(catalog=str(cat), region="r", geometry=region, start=when.date(),
                                  end=when.date(), resolution=60, out_dir=tmp_path / "out").values()
    with rasterio.open(path) as ds:
        tags = ds.tags()
    assert tags["PLATFORM"] == "sentinel-2c,sentinel-2b,sentinel-2a"
    assert tags["STAC_ITEMS"].startswith("S2C_") and tags["CLOUD_BUFFER"] == "0"
    assert "S2B_33UXP_20250302_0_L2A: 0, the raster:bands offset -0.1 dropped" in tags["REFLECTANCE_OFFSET"]
    assert "S2C_33UXP_20250302_0_L2A: -0.1 (raster:bands), checked" in tags["REFLECTANCE_OFFSET"]
    assert caplog.text.count("S2B_33UXP_20250302_0_L2A: with the raster:bands offset") == 1  # once


def test_an_overpass_on_two_utc_dates_is_said(caplog):
    """Near 157° E a Sentinel-2 pass is at ~00:20 UTC: its tiles may fall on two UTC dates,
    which make two partly covered dates; that is said, naming both (dates a pass apart are not)."""

    def item(name, when):
        return pystac.Item(name, box(150, -30, 151, -29).__geo_interface__, [150, -30, 151, -29],
                           dt.datetime.fromisoformat(when), {})

    items = [item("a", "2024-05-01T23:58:40+00:00"), item("b", "2024-05-02T00:03:10+00:00"),
             item("c", "2024-05-04T23:50:00+00:00"), item("d", "2024-05-05T00:40:00+00:00"),
             item("e", "2024-05-05T10:30:00+02:00")]  # the same UTC date as d, given in local time
    with caplog.at_level(logging.WARNING):
        by_date = stac.items_by_date(items)
    assert {d.isoformat(): [i.id for i in v] for d, v in by_date.items()} == {
        "2024-05-01": ["a"], "2024-05-02": ["b"], "2024-05-04": ["c"], "2024-05-05": ["d", "e"]}
    said = [r.getMessage() for r in caplog.records if "overpass" in r.getMessage()]
    assert said == ["one overpass falls on two UTC dates, 2024-05-01 (23:58 UTC) and 2024-05-02 (00:03 UTC): "
                    "its items make two dates, each partly covered"]  # c and d are 50 min apart: two passes



def test_reads_in_an_environment_with_the_cloud_settings_start_no_other(tmp_path, caplog):
    """read_asset inside an environment that holds GDAL_REMOTE_ENV (stack-stac's, a predict-stac
    chunk's) enters none of its own: a nested one restarts GDAL's environment at its exit, and
    each start resets PROJ's search paths for every thread. Outside one, it starts its own."""
    src = write_raster(tmp_path / "b.tif", np.arange(1, 65, dtype=np.uint16).reshape(8, 8))
    caplog.set_level(logging.DEBUG, logger="rasterio._env")

    def starts(env):
        with rasterio.open(src) as ds, env:
            caplog.clear()
            values = [stac.read_asset(ds, Grid.of(ds), resampling=Resampling.nearest) for _ in range(9)]
            assert all(np.array_equal(v, values[0]) for v in values) and values[0][0, 0] == 1
            return sum("Started GDALEnv" in r.getMessage() for r in caplog.records)

    assert starts(rasterio.Env(**stac.GDAL_REMOTE_ENV)) == 0
    assert starts(rasterio.Env()) == 9  # another environment: each read sets the cloud settings itself


def test_a_remote_jp2_that_fails_to_decode_raises(tmp_path, monkeypatch):
    """GDAL decodes a JP2 on threads of its own and drops their errors: a remote asset whose
    bytes did not all come (a failed range request) gave garbage pixels. A remote JP2 is read on
    one decoding thread, which raises. (Here /vsimem/ stands for the network.)"""
    import rasterio.shutil
    from rasterio.io import MemoryFile

    from vercye_lai.acquire import stac_search
    from vercye_lai.errors import DataIOError

    from conftest import DATA

    src = next((DATA / "safe_T29UNU").rglob("*_B04_60m.jp2"))
    tiled = tmp_path / "tiled.jp2"
    rasterio.shutil.copy(src, tiled, driver="JP2OpenJPEG", blockxsize=32, blockysize=32, reversible="YES", quality=100)
    monkeypatch.setattr(stac_search, "REMOTE_PREFIXES", (*stac_search.REMOTE_PREFIXES, "/vsimem"))
    monkeypatch.setenv("GDAL_NUM_THREADS", "ALL_CPUS")
    with MemoryFile(tiled.read_bytes()[: tiled.stat().st_size // 2], ext=".jp2") as cut:
        with rasterio.open(cut.name) as ds:
            grid = Grid.of(ds)
        with pytest.raises(DataIOError, match="cannot read STAC asset"):
            stac_search.read_asset(cut.name, grid, resampling=Resampling.nearest)


def test_an_item_with_a_range_instead_of_a_datetime_has_its_start_as_time():
    """datetime: null with start_datetime/end_datetime is legal STAC: predict-stac and
    stack-landsat --catalog crashed on it ('NoneType' object has no attribute 'replace')."""
    import pystac

    from vercye_lai.acquire.stac_search import item_date, item_time

    it = pystac.Item("x", None, None, None, {"start_datetime": "2022-10-05T11:56:49Z",
                                             "end_datetime": "2022-10-05T11:57:10Z"})
    assert item_time(it) == dt.datetime(2022, 10, 5, 11, 56, 49, tzinfo=dt.UTC)
    assert item_date(it) == dt.date(2022, 10, 5)


def test_a_geographic_crs_is_refused_for_a_grid_in_metres():
    """--crs EPSG:4326 --res 60 wrote one 60-degree pixel, all nodata, exit 0."""
    from vercye_lai.acquire.warp import target_grid

    with pytest.raises(InputError, match="--crs EPSG:4326: stacks need a projected CRS in metres"):
        target_grid(region_4326(), 60, "EPSG:4326")
    assert target_grid(region_4326(), 60, "EPSG:32629").res == (60.0, 60.0)


def test_an_asset_without_a_crs_or_a_corrupt_granule_xml_names_it(tmp_path):
    """A CRS-less asset ended in a CRSError traceback; bad granule XML named neither file nor item."""
    from vercye_lai.acquire.stac_search import read_asset
    from vercye_lai.errors import DataIOError

    bare = tmp_path / "bare.tif"
    with rasterio.open(bare, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint16") as ds:
        ds.write(np.ones((1, 4, 4), "uint16"))
    grid = Grid("EPSG:32629", rasterio.transform.from_origin(0, 40, 10, 10), (4, 4))
    with pytest.raises(DataIOError, match="bare.tif: STAC asset has no CRS"):
        read_asset(str(bare), grid, resampling=Resampling.nearest)
    (tmp_path / "MTD_TL.xml").write_text("<Level-2A_Tile_ID><unclosed>")
    it = make_item("S2A_X")
    it.assets[stac.asset_keys(it)["granule"]].href = str(tmp_path / "MTD_TL.xml")
    with pytest.raises(DataIOError, match="MTD_TL.xml: STAC item S2A_X: metadata is not valid XML"):
        stac.item_angles(it)


def test_a_catalogue_given_as_a_file_url_or_a_missing_path(tmp_path):
    """A file:// URL of an existing catalogue was refused as "does not exist"."""
    cat = make_catalog(tmp_path / "cat", [make_item("S2A_T29UNU_20221005")])
    search = dict(collection="sentinel-2-l2a", geometry=region_4326(), start=dt.date(2022, 10, 1),
                  end=dt.date(2022, 10, 10))
    assert [i.id for i in stac.search_items(f"file://{cat}", **search)] == ["S2A_T29UNU_20221005"]
    with pytest.raises(Exception, match="STAC catalogue does not exist"):
        stac.search_items(str(tmp_path / "nope.json"), **search)
