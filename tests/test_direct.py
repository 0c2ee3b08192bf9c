"""LAI straight from a STAC search (predict-stac, vercye_lai.xarray) against stack-stac + predict,
on a static catalogue built from the real L2A product in ../shared/data (no network)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import make_catalog, make_item, region_4326, write_run_config

pytest.importorskip("odc.stac")
xr = pytest.importorskip("xarray")

from vercye_lai import xarray as vx  # noqa: E402
from vercye_lai.acquire import stac  # noqa: E402
from vercye_lai.cli.main import cli  # noqa: E402
from vercye_lai.errors import InputError, ModelError  # noqa: E402
from vercye_lai.predict import PredictOptions, predict_dir  # noqa: E402
from vercye_lai.predict import direct  # noqa: E402
from vercye_lai.predict.direct import predict_stac  # noqa: E402

needs_safe = pytest.mark.usefixtures("shared_safe")
DATE = "2022-10-05"
SEARCH = dict(region="K", start=dt.date(2022, 10, 1), end=dt.date(2022, 10, 10), resolution=60)
OPTIONS = PredictOptions(dtype="float32", uncertainty=True, workers=2)  # the kernel's own values
BUFFER = 2
PRODUCTS = ("LAI", "LAI_flags", "LAI_uncertainty")


@pytest.fixture(scope="module")
def stack_route(tmp_path_factory):
    """The catalogue, and the products of stack-stac + predict on it (cloud buffer, float32)."""
    tmp = tmp_path_factory.mktemp("direct")
    cat = make_catalog(tmp / "cat", [make_item("S2A_T29UNU_20221005")])
    stac.stack_stac(catalog=str(cat), geometry=region_4326(), out_dir=tmp / "stacks", cloud_buffer=BUFFER,
                    **SEARCH)
    predict_dir(tmp / "stacks", tmp / "lai", region="K", resolution=60, options=OPTIONS)
    return cat, tmp / "lai"


def read(folder, product):
    with rasterio.open(folder / f"K_60m_{DATE}_{product}.tif") as ds:
        return ds.read(1), ds.tags(), ds.transform, ds.crs


def assert_same_products(a, b):
    """Folder ``b`` holds the products of folder ``a``: the same files, grid, storage and
    overviews; float32 values within 1e-6 (LERC: each within its bound of those), int16 within
    one step at a rounding tie (≥ 99.9 % equal), flags equal, the same masked pixels. Returns
    the tags of ``b``'s products by file name."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    masked_blocks_agree(a, b, names)
    tags = {}
    for name in names:
        with rasterio.open(a / name) as da, rasterio.open(b / name) as db:
            x, y, tags[name] = da.read(1), db.read(1), db.tags()
            assert (da.transform, da.crs, da.dtypes, str(da.nodata), da.scales, da.overviews(1)) == (
                db.transform, db.crs, db.dtypes, str(db.nodata), db.scales, db.overviews(1))
            if x.dtype.kind == "f":
                storage = da.tags()["VERCYE_STORAGE"]  # "float32" or "float32 lerc max error E"
                bound = 1e-6 + (2 * float(storage.split()[-1]) if "lerc" in storage else 0.0)
                np.testing.assert_array_equal(np.isnan(x), np.isnan(y))  # the masked pixels
                assert np.nanmax(np.abs(x - y)) <= bound, name
            elif x.dtype == np.int16:  # float values within 1e-6: one step at a rounding tie
                np.testing.assert_array_equal(x == da.nodata, y == db.nodata)
                diff = np.abs(x.astype(np.int32) - y)
                assert diff.max() <= 1 and (diff == 0).mean() > 0.999, name
            else:  # flags, nodata 255 included
                np.testing.assert_array_equal(x, y)
    return tags


def masked_blocks_agree(a, b, names, block=64):
    """Every product of ``b`` masks the pixels ``a``'s does; if not, say which ``block``-px
    blocks of which products differ (all products at once: flags at 255 where the values are
    missing tell a block that was read as nodata from one that was not written)."""
    differ = {}
    for name in names:
        with rasterio.open(a / name) as da, rasterio.open(b / name) as db:
            x, y = da.read(1, masked=True), db.read(1, masked=True)
        bad = np.ma.getmaskarray(x) != np.ma.getmaskarray(y)
        blocks = {(int(r) // block, int(c) // block) for r, c in zip(*np.nonzero(bad))}
        if blocks:
            differ[name] = f"{int(bad.sum())} px in blocks {sorted(blocks)}"
    assert not differ, f"masked pixels differ ({block}-px blocks as (row, col)): {differ}"


def both_routes(stack_route, tmp_path, options):
    """predict on the route's stacks (into ``stacked``) and predict-stac on its catalogue (into
    ``direct``, 64-px chunks) with ``options``: their results."""
    cat, lai = stack_route
    (stacked,) = predict_dir(lai.parent / "stacks", tmp_path / "stacked", region="K", resolution=60, options=options)
    (direct,) = predict_stac(catalog=str(cat), geometry=region_4326(), out_dir=tmp_path / "direct", options=options,
                             chunk=64, cloud_buffer=BUFFER, **SEARCH)
    return stacked, direct


@pytest.mark.slow
@needs_safe
def test_direct_route_equals_stack_then_predict(stack_route, tmp_path, monkeypatch):
    cat, lai = stack_route
    out = tmp_path / "direct"
    calls = {"read": 0, "network": 0}

    def counted(key, fn):
        def call(*args, **kwargs):
            calls[key] += 1
            return fn(*args, **kwargs)
        return call

    monkeypatch.setattr(direct, "_stored_chunk", counted("read", direct._stored_chunk))
    monkeypatch.setattr(vx, "_block", counted("network", vx._block))
    threads_setting = set()  # GDAL_NUM_THREADS where each chunk's assets are read

    def mosaic(*args):
        threads_setting.add(rasterio.env.getenv().get("GDAL_NUM_THREADS") if rasterio.env.hasenv() else None)
        return region_mosaic(*args)

    region_mosaic = stac.region_mosaic
    monkeypatch.setattr(stac, "region_mosaic", mosaic)
    # chunks of 64 px: the buffered SCL mask and the angle grids cross chunk edges
    (res,) = predict_stac(catalog=str(cat), geometry=region_4326(), out_dir=out, options=OPTIONS, chunk=64,
                          cloud_buffer=BUFFER, **SEARCH)
    assert res.status == "done" and 0.5 < res.n_valid / res.n_pixels < 1.0
    lai_values = read(out, "LAI")[0]
    chunks = -(-lai_values.shape[0] // 64) * -(-lai_values.shape[1] // 64)
    # each chunk read once and through the network once, for its three products and its count
    assert calls == {"read": chunks, "network": chunks}
    # one environment per chunk; local JP2s (checked whole when opened) on GDAL's 2 decoding threads
    assert threads_setting == {"2"}
    assert np.isnan(lai_values).mean() > 0.01  # clouds, their buffer and the region's outside are masked
    tags = assert_same_products(lai, out)[f"K_60m_{DATE}_LAI.tif"]
    assert tags["STAC_ITEMS"] == "S2A_T29UNU_20221005" and tags["CLOUD_BUFFER"] == str(BUFFER)
    assert tags["ANGLES_FROM"] == "granule metadata" and "checked" in tags["REFLECTANCE_OFFSET"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"K_60m_{DATE}_{p}.tif" for p in PRODUCTS)  # no stack
    mtime = (out / f"K_60m_{DATE}_LAI.tif").stat().st_mtime_ns  # a rerun skips the complete date
    (again,) = predict_stac(catalog=str(cat), geometry=region_4326(), out_dir=out, options=OPTIONS, chunk=64,
                            cloud_buffer=BUFFER, **SEARCH)
    assert again.status == "skipped" and (out / f"K_60m_{DATE}_LAI.tif").stat().st_mtime_ns == mtime
    # what sets the pixels changed: made again (it was kept: "0 done, 1 skipped")
    for changed in ({"cloud_buffer": BUFFER + 1}, {"cloud_buffer": BUFFER + 1, "options": replace(OPTIONS, haze="off")}):
        kw = {"options": OPTIONS, "cloud_buffer": BUFFER, **changed}
        (redone,) = predict_stac(catalog=str(cat), geometry=region_4326(), out_dir=out, chunk=64, **kw, **SEARCH)
        assert redone.status == "done", changed


@pytest.mark.slow
@needs_safe
def test_predict_stac_on_a_two_worker_local_cluster(stack_route, tmp_path, region_file_k):
    """The command: its chunks computed on a LocalCluster of two worker processes."""
    cat, lai = stack_route
    out = tmp_path / "direct"
    res = CliRunner().invoke(cli, [
        "predict-stac", "--catalog", str(cat), "--geometry", str(region_file_k), "--start-date", "2022-10-01",
        "--end-date", "2022-10-10", "--res", "60", "-o", str(out), "--cloud-buffer", str(BUFFER), "--chunk", "96",
        "--dtype", "float32", "--uncertainty", "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert "1 done" in res.output
    assert_same_products(lai, out)


@pytest.mark.slow
@needs_safe
def test_direct_route_stores_int16_as_predict_does(stack_route, tmp_path):
    """The default storage (int16 steps, encoded in the Dask graph): the same stored values as
    predict on the stack, values and uncertainty (without flags: the products stand where they
    would be); the same count of valid input pixels."""
    options = PredictOptions(dtype="int16", uncertainty=True, workers=2, flags=False)
    stacked, direct = both_routes(stack_route, tmp_path, options)
    tags = assert_same_products(tmp_path / "stacked", tmp_path / "direct")
    assert sorted(tags) == [f"K_60m_{DATE}_LAI.tif", f"K_60m_{DATE}_LAI_uncertainty.tif"]
    assert {t["VERCYE_STORAGE"] for t in tags.values()} == {"int16 scale 0.001"}
    assert all(read(tmp_path / "direct", v)[0].dtype == np.int16 for v in ("LAI", "LAI_uncertainty"))
    assert direct.n_valid == stacked.n_valid  # valid inputs, hazy ones included (as with flags)


@pytest.mark.slow
@needs_safe
@pytest.mark.parametrize("flags, uncertainty, dtype, cog, variables", [
    (False, False, "float32", True, ("LAI", "FCOVER")),
    (True, True, "lerc", False, ("LAI",)),
    (False, True, "int16", True, ("FCOVER", "LAI")),
])
def test_direct_route_equals_stack_route_across_options(stack_route, tmp_path, flags, uncertainty, dtype, cog,
                                                        variables):
    """Options together (test_option_routes does the same for predict's parts): the same
    products, storage and valid count whichever route made them."""
    options = PredictOptions(flags=flags, uncertainty=uncertainty, dtype=dtype, cog=cog, variables=variables, workers=2)
    stacked, direct = both_routes(stack_route, tmp_path, options)
    tags = assert_same_products(tmp_path / "stacked", tmp_path / "direct")
    assert len(tags) == len(variables) * (1 + flags + uncertainty) and direct.n_valid == stacked.n_valid


@pytest.mark.slow
@needs_safe
def test_direct_route_equals_stack_route_reprojected(tmp_path):
    """In another CRS and at a coarser resolution (the assets reprojected, the kernel widened):
    the same values whatever the chunk size, and the stack route's. With odc-stac's per-chunk
    reprojection they differed by up to 0.04 LAI between chunk sizes and 0.38 from the stack route."""
    cat = make_catalog(tmp_path / "cat", [make_item("S2A_T29UNU_20221005")])
    where = dict(SEARCH, resolution=120, crs="EPSG:3035", resampling="bilinear", cloud_buffer=1)
    options = PredictOptions(dtype="float32", workers=2)
    stac.stack_stac(catalog=str(cat), geometry=region_4326(), out_dir=tmp_path / "stacks", **where)
    predict_dir(tmp_path / "stacks", tmp_path / "stacked", region="K", resolution=120, options=options)
    for chunk in (32, 4096):
        predict_stac(catalog=str(cat), geometry=region_4326(), out_dir=tmp_path / f"direct{chunk}", options=options,
                     chunk=chunk, **where)
    for product in ("LAI", "LAI_flags"):
        name = f"K_120m_{DATE}_{product}.tif"
        with rasterio.open(tmp_path / "stacked" / name) as ds:
            want = ds.read(1)
            assert ds.crs.to_epsg() == 3035 and np.isfinite(want).mean() > 0.5
        for chunk in (32, 4096):
            with rasterio.open(tmp_path / f"direct{chunk}" / name) as ds:
                np.testing.assert_array_equal(ds.read(1), want)


def region_file_of(folder):
    import geopandas as gpd

    path = folder / "K.geojson"
    gpd.GeoDataFrame({"name": ["K"]}, geometry=[region_4326()], crs=4326).to_file(path)
    return path


@pytest.fixture
def region_file_k(tmp_path):
    return region_file_of(tmp_path)


@pytest.mark.slow  # 3 s: the quick loop keeps the direct path's other tests
@needs_safe
def test_predict_on_an_odc_stac_cube(stack_route, caplog):
    """vercye_lai.xarray.predict on odc.stac.load's raw DNs: the offset inferred and checked, the sun
    computed, lazy, CF attributes and the geobox kept; the band-dimension form gives the same."""
    import odc.stac

    cat, lai = stack_route
    item = stac.search_items(str(cat), collection="sentinel-2-l2a", geometry=region_4326(),
                             start=SEARCH["start"], end=SEARCH["end"])[0]
    keys = stac.ASSET_KEYS["earth-search"]
    ref = read(lai, "LAI")
    ny, nx = ref[0].shape
    from vercye_lai.grid import Grid
    from vercye_lai.predict.direct import geobox

    gb = geobox(Grid(ref[3], ref[2], (ny, nx)))
    cube = odc.stac.load([item], bands=[keys[b] for b in (*stac.REFLECTANCE_BANDS, "SCL")], geobox=gb,
                         chunks={"x": 100, "y": 100},
                         stac_cfg={"*": {"assets": {"*": {"data_type": "uint16", "nodata": 0}}}})
    with caplog.at_level("INFO"):
        out = cube.sl2p.predict(options=PredictOptions(dtype="float32", uncertainty=True))
    assert out["LAI"].chunks is not None  # lazy
    assert out["LAI"].attrs["standard_name"] == "leaf_area_index" and "raw L2A DNs" in out.attrs["scaling"]
    assert "sun computed" in out.attrs["angles"] and "checked" in out["LAI"].attrs["offset_check"]
    assert out.odc.geobox == cube.odc.geobox
    values = out["LAI"].values[0]
    both = np.isfinite(values) & np.isfinite(ref[0])
    assert both.mean() > 0.5
    # the same reflectances (offset kept: baseline 04.00); the sun computed, the view nadir: close
    assert np.median(np.abs(values[both] - ref[0][both])) < 0.1
    band = vx.predict(cube.to_array("band"), options=PredictOptions(dtype="float32"))
    xr.testing.assert_identical(band["LAI"].compute(), out["LAI"].compute())
    # loaded without declaring nodata: L2A's DN 0 is still no data (it got LAI 2.9, flag bit 1 only)
    bare = odc.stac.load([item], bands=[keys[b] for b in (*stac.REFLECTANCE_BANDS, "SCL")], geobox=gb,
                         chunks={"x": 100, "y": 100}, stac_cfg={"*": {"assets": {"*": {"data_type": "uint16"}}}})
    edge = bare.copy()
    for name, v in bare.data_vars.items():  # outside the swath: DN 0 in every band, as L2A writes it
        edge[name] = v.where(v.x > v.x.values[20], 0).astype("uint16")
        edge[name].attrs = {k: a for k, a in v.attrs.items() if k != "nodata"}
    undeclared = edge.sl2p.predict(options=PredictOptions(dtype="float32"))["LAI"].values[0]
    assert np.isnan(undeclared[:, :21]).all()
    np.testing.assert_array_equal(np.isnan(undeclared[:, 21:]), np.isnan(values[:, 21:]))


def test_a_resampling_by_name_or_rasterio_enum():
    """stack-stac and predict-stac take either (the one took the enum, the other the name)."""
    from rasterio.enums import Resampling

    from vercye_lai.acquire.warp import as_resampling

    assert as_resampling("cubic") is Resampling.cubic and as_resampling(Resampling.average) is Resampling.average
    with pytest.raises(InputError, match="resampling 'lanczos' is not allowed; allowed values: nearest, bilinear"):
        as_resampling("lanczos")


def test_a_missing_band_is_named():
    cube = xr.Dataset({b: (("y", "x"), np.ones((2, 2), np.uint16)) for b in ("B03", "B04")},
                      coords={"y": [1.0, 0.0], "x": [0.0, 1.0]})
    with pytest.raises(Exception, match=r"lacks band\(s\) B5, B6, B7, B8A, B11, B12 .*has B3, B4"):
        vx.predict(cube)


def test_angle_and_scaling_choices_are_explicit():
    """Cosine bands in the cube are used as they are; scale/offset given are not checked; the
    result equals predict_block on the same stored values."""
    from vercye_lai.model import load_network
    from vercye_lai.predict.kernel import predict_block

    rng = np.random.default_rng(1)
    refl = np.array([0.06, 0.04, 0.1, 0.25, 0.3, 0.35, 0.2, 0.1])[:, None, None] + rng.normal(0, .01, (8, 6, 5))
    dn = np.round(refl * 1e4 + 1000).astype(np.uint16)
    dn[:, 0, 0] = 0
    cos = np.stack([np.full((6, 5), v, np.float32) for v in (0.99, 0.7, 0.5)])
    bands = ["cosVZA", "cosSZA", "cosRAA", *stac.REFLECTANCE_BANDS]
    data = xr.DataArray(np.concatenate([cos, dn.astype(np.float32)])[None], dims=("time", "band", "y", "x"),
                        coords={"band": bands, "y": np.arange(6.0), "x": np.arange(5.0)}, attrs={"nodata": 0})
    out = vx.predict(data.chunk({"x": 2, "y": 3}), scale=1e-4, offset=-0.1)
    assert out.attrs["angles"] == "per-pixel cosine bands of the cube" and "as given" in out.attrs["scaling"]
    net = load_network("sl2p", "LAI")
    a = np.array([1, 1, 1, *[1e-4] * 8])
    b = np.array([0, 0, 0, *[-0.1] * 8])
    stored = np.concatenate([cos, dn.astype(np.float32)])
    stored[3:, 0, 0] = 0
    values, flags, _, _ = predict_block(stored, [net.for_stored_values(a, b)], [None, None, None, *[0] * 8],
                                        haze=vx.HazeTest.of(net.inputs, a, b, "mask"))
    np.testing.assert_array_equal(out["LAI"].values[0], values[0])
    np.testing.assert_array_equal(out["LAI_flags"].values[0], flags[0])
    assert out["LAI_flags"].values[0, 0, 0] == 255
    # every choice of products gives the same values, a lone product included (one output)
    for flags, uncertainty in [(False, False), (False, True), (True, True)]:
        some = vx.predict(data.chunk({"x": 2, "y": 3}), scale=1e-4, offset=-0.1,
                          options=PredictOptions(dtype="float32", flags=flags, uncertainty=uncertainty))
        assert sorted(some.data_vars) == sorted(["LAI", *["LAI_flags"] * flags, *["LAI_uncertainty"] * uncertainty])
        np.testing.assert_array_equal(some["LAI"].values[0], values[0])


def test_a_per_unit_model_runs_the_network_of_the_cubes_unit():
    """snap-3.0 on a cube: the network of the unit its platform names (attribute or stackstac's
    per-time coordinate); none named, or two units in one cube: an error, never a guess."""
    rng = np.random.default_rng(2)
    refl = np.array([0.06, 0.04, 0.1, 0.25, 0.3, 0.35, 0.2, 0.1])[:, None, None] + rng.normal(0, .01, (8, 4, 3))
    cos = np.stack([np.full((4, 3), v) for v in (0.99, 0.7, 0.5)])
    bands = ["cosVZA", "cosSZA", "cosRAA", *stac.REFLECTANCE_BANDS]
    data = xr.DataArray(np.concatenate([cos, refl])[None].astype(np.float32), dims=("time", "band", "y", "x"),
                        coords={"band": bands, "y": np.arange(4.0), "x": np.arange(3.0)})
    for unit in ("a", "b", "c"):
        out = vx.predict(data.assign_attrs(platform=f"sentinel-2{unit}"), model="snap-3.0", scale=1, offset=0)
        alone = vx.predict(data, model="snap-3.0-s2" + ("b" if unit == "c" else unit), scale=1, offset=0)
        assert out.attrs["model"] == alone.attrs["model"]
        np.testing.assert_array_equal(out["LAI"].values, alone["LAI"].values)
    with pytest.raises(ModelError, match="names none .*snap-3.0-s2a or snap-3.0-s2b"):
        vx.predict(data, model="snap-3.0", scale=1, offset=0)
    two = xr.concat([data, data], "time").assign_coords(platform=("time", ["sentinel-2a", "sentinel-2b"]))
    with pytest.raises(ModelError, match="holds sentinel-2a, sentinel-2b"):
        vx.predict(two, model="snap-3.0", scale=1, offset=0)
    assert vx.predict(two.isel(time=[1]), model="snap-3.0", scale=1, offset=0).attrs["model"] == "snap-3.0-s2b"


@pytest.mark.slow
@needs_safe
def test_direct_route_runs_the_network_of_the_items_unit(stack_route, tmp_path):
    """snap-3.0 through predict-stac: the S2A item's network, as predict picks it from the
    stack's PLATFORM tag (it ran S2B's for every item, silently); the products say so."""
    both_routes(stack_route, tmp_path, PredictOptions(model="snap-3.0", dtype="float32", workers=2))
    tags = assert_same_products(tmp_path / "stacked", tmp_path / "direct")[f"K_60m_{DATE}_LAI.tif"]
    want = read(tmp_path / "stacked", "LAI")[1]
    assert tags["VERCYE_MODEL"] == want["VERCYE_MODEL"] == "snap-3.0-s2a"
    assert tags["VERCYE_PLATFORM"] == want["VERCYE_PLATFORM"] == "sentinel-2a"


@pytest.mark.slow
@needs_safe
def test_a_run_with_the_stac_direct_source_succeeds(stack_route, tmp_path, region_file_k):
    """The whole run on the static catalogue: the products come from the acquire step, the
    mosaic and predict steps have nothing to do (the mosaic step failed: no stacks folder),
    the analysis runs; exit 0. The products are predict-stac's."""
    cat, lai = stack_route
    cfg = write_run_config(tmp_path / "run.toml", f"""
output_root = "out"
resolution = 60
[[regions]]
name = "K"
geometry = "{region_file_k}"
start_date = 2022-10-01
end_date = 2022-10-10
[source]
kind = "stac-direct"
catalog = "{cat}"
cloud_buffer = {BUFFER}
chunk = 64
[predict]
dtype = "float32"
uncertainty = true
[[analyses]]
name = "all"
geometry = "{region_file_k}"
mode = "poly_agg"
[executor]
kind = "threads"
""")
    r = CliRunner().invoke(cli, ["-q", "run", str(cfg)])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    counts = {s["step"]: (s["done"], s["skipped"], s["failed"]) for s in summary["steps"]}
    assert counts["acquire"] == (1, 0, 0) and counts["mosaic"] == (0, 1, 0) and counts["predict"] == (0, 1, 0)
    assert counts["analyze"] == (1, 0, 0)
    assert_same_products(lai, tmp_path / "out" / "lai" / "K")


def test_a_run_config_takes_the_stac_direct_source(tmp_path):
    import tomllib

    from conftest import qvidja_config

    from vercye_lai.run import parse_config

    data = tomllib.loads(qvidja_config(tmp_path).read_text())
    data["source"] = {"kind": "stac-direct", "catalog": "earth-search", "cloud_buffer": 2, "chunk": 256}
    data["regions"][0]["geometry"] = str(region_file_of(tmp_path))
    cfg = parse_config(data, base_dir=tmp_path)
    (src,) = cfg.sources
    assert src.source.products and src.options.chunk == 256 and src.options.cloud_buffer == 2


@pytest.mark.slow  # its fixture: 0.5 s
def test_a_chunk_of_remote_assets_decodes_on_its_reading_thread(stack_route):
    """GDAL's own decoding threads drop their errors: remote assets are read on one (a failed
    range request raises there), local ones (a JP2 checked whole when opened) on two."""
    cat, _ = stack_route
    item = stac.search_items(str(cat), collection="sentinel-2-l2a", geometry=region_4326(),
                             start=SEARCH["start"], end=SEARCH["end"])[0]
    mosaic = type("M", (), {"items": [item]})()
    assert direct._chunk_env(mosaic)["GDAL_NUM_THREADS"] == "2"
    remote = item.clone()
    for a in remote.assets.values():
        a.href = "https://example.org/" + Path(a.href).name
    mosaic.items = [item, remote]
    assert direct._chunk_env(mosaic)["GDAL_NUM_THREADS"] == "1"
