"""A COG assembled from tiles compressed as its blocks come (predict/cog.py) is GDAL's own COG
of the same values: byte for byte, and in the layout GDAL's validator checks."""

from __future__ import annotations

import gc
import logging
import struct
import weakref

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import rasterio.transform
from conftest import QVIDJA, write_raster
from rasterio.windows import Window

from vercye_lai.naming import flags_path, uncertainty_path
from vercye_lai.predict import PredictOptions, cog, predict_file, product_paths, writer
from vercye_lai.predict.cog import CogTiles, LayoutError, TileRows, directories
from vercye_lai.predict.writer import product_writer

CASES = [  # dtype, (rows, cols), block side: windows of whole tiles, of parts of tiles, no overviews
    pytest.param("int16", (1100, 1300), 512, marks=pytest.mark.slow),
    ("int16", (1100, 1300), 300),
    ("uint8", (1100, 1300), 384),
    pytest.param("int16", (600, 1030), 1024, marks=pytest.mark.slow),
    ("int16", (300, 200), 128),
]


def values_of(dtype: str, shape: tuple[int, int], nodata: int) -> np.ndarray:
    rng = np.random.default_rng(sum(shape))
    if dtype == "uint8":  # flags: few values, long runs
        v = rng.choice(np.array([0, 1, 4, 9], np.uint8), shape, p=[0.7, 0.2, 0.05, 0.05])
    else:  # a smooth field with noise
        v = (np.cumsum(rng.normal(0, 20, shape), axis=1) + 3000).astype(np.int16)
    v[: shape[0] // 4, : shape[1] // 5] = nodata
    return v


def make(path, src, values, nodata, block, *, assembled: bool, monkeypatch) -> None:
    """A product of ``values`` through the product writer, its blocks in reverse order."""
    monkeypatch.setattr(writer, "assembles", cog.assembles if assembled else lambda *a: False)
    h, w = values.shape
    windows = [Window(c, r, min(block, w - c), min(block, h - r)) for r in range(0, h, block) for c in range(0, w, block)]
    with product_writer(path, src, values.dtype.name, nodata, cog=True, tags={"VERCYE_X": "1"}, description="LAI",
                        unit="m2/m2", scale=0.001 if values.dtype == np.int16 else 1.0, threads=2,
                        scratch_memory=1 << 30) as out:
        for win in reversed(windows):
            out.write(values[win.row_off:win.row_off + win.height, win.col_off:win.col_off + win.width], win)


def levels_of(path) -> list[np.ndarray]:
    with rasterio.open(path) as ds:
        n = len(ds.overviews(1))
        levels = [ds.read(1)]
    for i in range(n):
        with rasterio.open(path, OVERVIEW_LEVEL=i) as ds:
            levels.append(ds.read(1))
    return levels


@pytest.mark.parametrize("dtype, shape, block", CASES)
def test_an_assembled_cog_is_gdals_own(tmp_path, monkeypatch, dtype, shape, block):
    nodata = 255 if dtype == "uint8" else -32768
    values = values_of(dtype, shape, nodata)
    src = write_raster(tmp_path / "src.tif", values[None], nodata=nodata, tiled=True)
    with rasterio.open(src) as ds:
        make(tmp_path / "gdal.tif", ds, values, nodata, block, assembled=False, monkeypatch=monkeypatch)
        make(tmp_path / "tiles.tif", ds, values, nodata, block, assembled=True, monkeypatch=monkeypatch)
    mine, gdal = levels_of(tmp_path / "tiles.tif"), levels_of(tmp_path / "gdal.tif")
    assert len(mine) == len(gdal) and all(np.array_equal(a, b) for a, b in zip(mine, gdal))
    assert np.array_equal(mine[0], values)
    with rasterio.open(tmp_path / "tiles.tif") as a, rasterio.open(tmp_path / "gdal.tif") as b:
        assert a.profile == b.profile and a.tags() == b.tags() and a.tags(1) == b.tags(1)
        assert (a.descriptions, a.scales, a.units) == (b.descriptions, b.scales, b.units)
        assert a.tags(ns="IMAGE_STRUCTURE") == b.tags(ns="IMAGE_STRUCTURE")
    # the same bytes too (the same codec, the same directories, the same order)
    assert (tmp_path / "tiles.tif").read_bytes() == (tmp_path / "gdal.tif").read_bytes()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left


def check_layout(path) -> None:
    """The checks of GDAL's validate_cloud_optimized_geotiff.py (its full mode) through GDAL's
    own TIFF metadata: directories before data, each level's data after its directory, the
    smallest level's data first, each tile between its size and its last 4 bytes."""
    data = path.read_bytes()
    with rasterio.open(path) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        n = len(ds.overviews(1))
    ifds, firsts = [], []
    for level in range(n + 1):
        with rasterio.open(path, **({"OVERVIEW_LEVEL": level - 1} if level else {})) as ds:
            ifds.append(int(ds.get_tag_item("IFD_OFFSET", "TIFF", bidx=1)))
            rows, cols = -(-ds.height // 512), -(-ds.width // 512)
            offsets = []
            for y in range(rows):
                for x in range(cols):
                    at = int(ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=1))
                    size = int(ds.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=1))
                    assert struct.unpack_from("<I", data, at - 4)[0] == size
                    assert data[at + size:at + size + 4] == data[at + size - 4:at + size]
                    offsets.append(at)
            assert offsets == sorted(offsets)  # row by row
            firsts.append(offsets[0])
    assert ifds == sorted(ifds) and ifds[-1] < min(firsts)  # every directory before any data
    assert firsts == sorted(firsts, reverse=True)  # the smallest level's data first


@pytest.mark.slow
def test_an_assembled_cog_has_gdals_layout(tmp_path, monkeypatch):
    values = values_of("int16", (2100, 1700), -32768)
    src = write_raster(tmp_path / "src.tif", values[None], nodata=-32768, tiled=True)
    with rasterio.open(src) as ds:
        make(tmp_path / "tiles.tif", ds, values, -32768, 512, assembled=True, monkeypatch=monkeypatch)
        make(tmp_path / "gdal.tif", ds, values, -32768, 512, assembled=False, monkeypatch=monkeypatch)
    check_layout(tmp_path / "gdal.tif")  # (the check passes GDAL's own)
    check_layout(tmp_path / "tiles.tif")


def test_a_compression_that_fails_fails_the_product_and_leaves_nothing(tmp_path, monkeypatch):
    values = values_of("int16", (700, 900), -32768)
    src = write_raster(tmp_path / "src.tif", values[None], nodata=-32768, tiled=True)
    out = tmp_path / "out"
    out.mkdir()

    def broken(self, values, ty, tx):
        raise OSError("codec on fire")

    with rasterio.open(src) as ds:
        make(out / "warm.tif", ds, values, -32768, 512, assembled=True, monkeypatch=monkeypatch)  # (the self-check)
        (out / "warm.tif").unlink()
        monkeypatch.setattr(TileRows, "_place", broken)
        with pytest.raises(OSError, match="codec on fire"):
            make(out / "x_LAI.tif", ds, values, -32768, 512, assembled=True, monkeypatch=monkeypatch)
    assert list(out.iterdir()) == []


def test_tiles_come_in_any_windows_and_a_missing_one_is_said():
    values = values_of("int16", (1030, 1100), -32768)
    whole = TileRows(1030, 1100, "int16", -32768, {"compress": "ZSTD", "predictor": 2})
    whole.add(values, Window(0, 0, 1100, 1030))
    parts = TileRows(1030, 1100, "int16", -32768, {"compress": "ZSTD", "predictor": 2})
    rng = np.random.default_rng(1)
    cuts_r, cuts_c = [0, 100, 517, 900, 1030], [0, 333, 512, 1024, 1100]
    windows = [Window(c0, r0, c1 - c0, r1 - r0) for r0, r1 in zip(cuts_r, cuts_r[1:]) for c0, c1 in zip(cuts_c, cuts_c[1:])]
    for k in rng.permutation(len(windows)):
        w = windows[k]
        parts.add(values[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width], w)
    assert [bytes(t) for t in parts.finish()] == [bytes(t) for t in whole.finish()]
    short = TileRows(1030, 1100, "int16", -32768, {"compress": "ZSTD", "predictor": 2})
    short.add(values[:1000], Window(0, 0, 1100, 1000))
    with pytest.raises(ValueError, match="6 of 9 tiles incomplete"):
        short.finish()


def test_a_layout_or_codec_it_does_not_know_is_left_to_gdal(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="vercye_lai")
    # the products' own codecs are assembled with this GDAL (a fallback would be as right, and slower)
    assert cog.assembles("int16", -32768.0, (("compress", "ZSTD"), ("predictor", 2), ("zstd_level", 1)),
                         (("blocksize", 512), ("compress", "ZSTD"), ("level", 1), ("predictor", "YES"),
                          ("resampling", "AVERAGE")))
    assert cog.assembles("uint8", 255.0, (("compress", "ZSTD"), ("predictor", 1), ("zstd_level", 1)),
                         (("bigtiff", "IF_SAFER"), ("blocksize", 512), ("compress", "ZSTD"), ("level", 1),
                          ("predictor", "NO"), ("resampling", "NEAREST")))
    assert "copied by GDAL" not in caplog.text
    # tiles differenced, the directories saying they are not: refused, said
    assert not cog.assembles("int16", -32768.0, (("compress", "ZSTD"), ("predictor", 2), ("zstd_level", 1)),
                             (("blocksize", 512), ("compress", "ZSTD"), ("level", 1), ("predictor", "NO"),
                              ("resampling", "AVERAGE")))
    assert "copied by GDAL" in caplog.text
    with pytest.raises(LayoutError, match="little-endian"):
        directories(b"MM\x00*\x00\x00\x00\x08")
    striped = write_raster(tmp_path / "striped.tif", np.zeros((1, 40, 30), np.int16))
    with pytest.raises(LayoutError, match="not tiled"):
        directories(striped.read_bytes())


def test_more_tiles_than_the_template_holds_are_refused(tmp_path):
    tiles = CogTiles(600, 600, "int16", -32768, {"compress": "ZSTD", "predictor": 2})
    tiles.add(np.zeros((600, 600), np.int16), Window(0, 0, 600, 600))
    tiles.sink(0, 0, np.zeros((300, 300), np.int16))
    other = write_raster(tmp_path / "t.tif", np.zeros((1, 512, 512), np.int16), tiled=True)
    with pytest.raises(LayoutError, match="no GDAL structural metadata"):
        tiles.assemble(other.read_bytes())


def test_a_template_it_cannot_fill_is_refused_naming_why(tmp_path):
    """A template of another size, codec or layout, or with tiles in it, is said, not filled."""
    profile = dict(driver="GTiff", width=600, height=600, count=1, dtype="int16", nodata=-32768, tiled=True,
                   blockxsize=512, blockysize=512, transform=cog._PLAIN)
    options = {"blocksize": 512, "compress": "ZSTD", "level": 1, "predictor": "YES", "resampling": "AVERAGE"}
    template = cog.cog_template(profile, options)
    codec = cog.encode_tiles(np.zeros((600, 600), np.int16), {"compress": "ZSTD", "predictor": 2, "zstd_level": 1})[1].codec
    assert cog.check_template(template, [4, 1], codec)[0] is False
    with pytest.raises(LayoutError, match=r"hold \[4, 1\] tiles, not \[4\]"):
        cog.check_template(template, [4], codec)
    plain = cog.encode_tiles(np.zeros((600, 600), np.int16), {"compress": "ZSTD", "predictor": 1})[1].codec
    with pytest.raises(LayoutError, match="codec tags"):
        cog.check_template(template, [4, 1], plain)
    other = template.replace(b"BLOCK_LEADER=SIZE_AS_UINT4", b"BLOCK_LEADER=NONE_AS_UINT4")
    with pytest.raises(LayoutError, match="BLOCK_LEADER"):
        cog.check_template(other, [4, 1], codec)
    with rasterio.open(tmp_path / "full.tif", "w", **profile) as ds:
        ds.write(np.ones((600, 600), np.int16), 1)
    rasterio.shutil.copy(tmp_path / "full.tif", tmp_path / "cog.tif", driver="COG", **options)
    with pytest.raises(LayoutError, match="not sparse"):
        cog.check_template((tmp_path / "cog.tif").read_bytes(), [4, 1], codec)


@pytest.mark.slow
def test_a_bigtiff_template_is_filled_as_gdal_fills_it(tmp_path):
    """Past 4 GiB GDAL makes a BigTIFF (8-byte offsets, 20-byte entries): assembled from
    such a template, the file is GDAL's own BigTIFF COG, byte for byte."""
    values = values_of("int16", (1100, 1300), -32768)
    profile = dict(driver="GTiff", width=1300, height=1100, count=1, dtype="int16", nodata=-32768, tiled=True,
                   blockxsize=512, blockysize=512, crs="EPSG:32632", transform=rasterio.transform.from_origin(0, 0, 10, 10))
    options = {"blocksize": 512, "compress": "ZSTD", "level": 1, "predictor": "YES", "resampling": "AVERAGE",
               "bigtiff": "YES"}
    full = tmp_path / "full.tif"
    with rasterio.open(full, "w", **profile) as ds:
        ds.write(values, 1)
    rasterio.shutil.copy(full, tmp_path / "gdal.tif", driver="COG", overviews="AUTO", **options)
    template = cog.cog_template(profile, options)
    assert template[2:4] == b"\x2b\x00"  # BigTIFF
    tiles = CogTiles(1100, 1300, "int16", -32768, {"compress": "ZSTD", "predictor": 2, "zstd_level": 1})
    builder = tiles.overview_builder()
    tiles.add(values, Window(0, 0, 1300, 1100))
    builder.add(values, Window(0, 0, 1300, 1100))
    builder.finish()
    tiles.write(template, tmp_path / "tiles.tif")
    assert (tmp_path / "tiles.tif").read_bytes() == (tmp_path / "gdal.tif").read_bytes()
    check_layout(tmp_path / "tiles.tif")


def test_a_written_cogs_tiles_are_freed_at_once(tmp_path, monkeypatch):
    """No reference cycle keeps a date's compressed tiles (its product's size) until Python's
    cycle collector runs: ten pipelined 16 Mpx dates held five dates' tiles, 0.17 GB more."""
    made = []
    init = TileRows.__init__

    def tracked(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(weakref.ref(self))

    monkeypatch.setattr(TileRows, "__init__", tracked)
    values = values_of("int16", (1100, 1300), -32768)
    src = write_raster(tmp_path / "src.tif", values[None], nodata=-32768, tiled=True)
    gc.collect()
    gc.disable()
    try:
        with rasterio.open(src) as ds:
            make(tmp_path / "x.tif", ds, values, -32768, 512, assembled=True, monkeypatch=monkeypatch)
        assert made and not [r for r in made if r() is not None]
    finally:
        gc.enable()


def test_a_template_that_fails_fails_the_product_and_leaves_nothing(tmp_path, monkeypatch):
    values = values_of("uint8", (700, 900), 255)
    src = write_raster(tmp_path / "src.tif", values[None], nodata=255, tiled=True)
    out = tmp_path / "out"
    out.mkdir()

    def broken(*args, **kwargs):
        raise rasterio.errors.RasterioIOError("no room for directories")

    monkeypatch.setattr(writer, "cog_template", broken)
    with rasterio.open(src) as ds, pytest.raises(rasterio.errors.RasterioIOError, match="no room"):
        make(out / "x_LAI_flags.tif", ds, values, 255, 256, assembled=True, monkeypatch=monkeypatch)
    assert list(out.iterdir()) == []


def test_predict_assembles_its_int16_and_uint8_cogs(tmp_path, monkeypatch):
    """The default products (int16 LAI, its uint8 flags, its uncertainty) take the assembled
    path, not GDAL's copy; the tiles' files are valid COGs holding the predicted values."""
    src = QVIDJA / "qvidja_20m_2023-06-11.tif"
    with rasterio.open(src) as ds:
        data, profile = ds.read(), ds.profile
        descriptions, scales, offsets = ds.descriptions, ds.scales, ds.offsets
    data = np.tile(data, (1, 60, 70))  # 660 × 770: an overview level, edge tiles
    stack = tmp_path / "qvidja_20m_2023-06-11.tif"
    profile.update(height=data.shape[1], width=data.shape[2], tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(stack, "w", **profile) as ds:
        ds.write(data)
        ds.descriptions, ds.scales, ds.offsets = descriptions, scales, offsets

    def refused(*args, **kwargs):
        raise AssertionError("copied by GDAL")

    monkeypatch.setattr(writer, "_copied", refused)
    outputs = product_paths(stack, tmp_path / "lai", ["LAI"])
    predict_file(stack, outputs, options=PredictOptions(workers=2, uncertainty=True))
    for path in (outputs["LAI"], flags_path(outputs["LAI"]), uncertainty_path(outputs["LAI"])):
        check_layout(path)
        with rasterio.open(path) as ds:
            assert ds.overviews(1) == [2] and (ds.read(1) != ds.nodata).any()
