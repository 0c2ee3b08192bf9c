"""Window-by-window stacks: StackWriter, and stack-safe/-bands/-stac computing one output
window at a time give the same file whatever the window size, with memory bounded by it."""

from __future__ import annotations

import datetime as dt
import pickle
import threading
import tracemalloc

import numpy as np
import pytest
import rasterio
from conftest import DATA, make_catalog, make_item, region_4326, write_raster
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window
from shapely import affinity
from shapely.geometry import Point, box, mapping, shape

from vercye_lai import stack as stack_bands
from vercye_lai.stack import _contract
from vercye_lai.acquire import _images, stac, warp
from vercye_lai.acquire.bands import write_band_stack
from vercye_lai.acquire.safe import stack_safe
from vercye_lai.acquire.warp import warp_to_grid
from vercye_lai.errors import BandError
from vercye_lai.grid import Grid
from vercye_lai.io import stale_tmp_files
from vercye_lai.stack import S2_BANDS_20M, STACK_NODATA, StackWriter, write_stack

SAFE = (
    DATA / "safe_T29UNU" / "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
)
SRF = (
    DATA
    / "strickhof_srf"
    / "S2A_MSIL2A_20220305T102921_N0400_R108_T32TMT_20220305T135811_SRF_S2.tif"
)
CROP = (521580.0, 5892840.0, 532380.0, 5900040.0)  # the cropped SAFE, EPSG:32629
DATE = dt.date(2022, 10, 5)
ONE_WINDOW = 1 << 20  # larger than any test grid: the whole grid at once


def to_4326(geom, crs):
    return shape(transform_geom(crs, "EPSG:4326", mapping(geom)))


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds.tags(), ds.descriptions, ds.scales


@pytest.fixture
def writes(monkeypatch):
    """Records the (rows, cols) of every window given to StackWriter.write."""
    shapes: list[tuple[int, int]] = []
    original = StackWriter.write

    def spy(self, window, data):
        arr = stack_bands.band_array(data, self.bands)
        assert arr.shape[1:] == (window.height, window.width)
        shapes.append(arr.shape[1:])
        return original(self, window, data)

    monkeypatch.setattr(StackWriter, "write", spy)
    return shapes


def assert_same_file(a, b):
    da, pa, ta, dsa, sa = read(a)
    db, pb, tb, dsb, sb = read(b)
    assert pa["transform"] == pb["transform"] and pa["crs"] == pb["crs"]
    assert (ta, dsa, sa) == (tb, dsb, sb)
    np.testing.assert_array_equal(da, db)


def assert_bounded(shapes, block):
    assert len(shapes) > 1, "expected several windows"
    assert all(h <= block and w <= block for h, w in shapes), shapes


# ----------------------------------------------------------------------------- writer


def test_stack_writer_equals_write_stack_and_is_atomic(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 0.5, (11, 70, 90)).astype(np.float32)
    data[4, 3, 5] = np.nan  # one band invalid: the pixel is nodata in all bands
    t = from_origin(500000, 6000000, 20, 20)
    whole = write_stack(tmp_path / "whole.tif", data, transform=t, crs="EPSG:32636", tags={"A": 1})
    dst = tmp_path / "win.tif"
    with StackWriter(dst, width=90, height=70, transform=t, crs="EPSG:32636", tags={"A": 1}) as out:
        windows = out.windows(32)
        assert len(windows) == 9 and not dst.exists()
        for win in windows:
            sub = data[(slice(None), *win.toslices())]
            out.write(win, dict(zip(S2_BANDS_20M, sub, strict=True)))  # mapping form
    assert_same_file(whole, dst)
    assert out.valid_pixels == 70 * 90 - 1
    assert (read(dst)[0][:, 3, 5] == STACK_NODATA).all()

    # a failure half-way leaves neither the output nor a temporary file
    bad = tmp_path / "bad.tif"
    with pytest.raises(BandError, match="window of \\(10, 10\\) pixels"):
        with StackWriter(bad, width=90, height=70, transform=t, crs="EPSG:32636") as out:
            out.write(Window(0, 0, 10, 10), data[:, :10, :10])
            out.write(Window(10, 0, 10, 10), data[:, :10, :9])
    assert not bad.exists() and not stale_tmp_files(bad)
    with pytest.raises(RuntimeError, match="with statement"):
        StackWriter(bad, width=9, height=7, transform=t, crs="EPSG:32636").write(
            Window(0, 0, 9, 7), data[:, :7, :9]
        )


def test_windows_follow_the_tiles(tmp_path):
    t = from_origin(500000, 6000000, 20, 20)
    with StackWriter(tmp_path / "x.tif", width=2500, height=1100, transform=t, crs=32636) as out:
        assert out.block_shape == (512, 512)
        wins = out.windows()  # default 1024: two tiles a side, aligned
        assert {(w.col_off % 512, w.row_off % 512) for w in wins} == {(0, 0)}
        assert max(max(w.width, w.height) for w in wins) == stack_bands.WINDOW_SIZE == 1024
        assert wins == out.grid.tiles(1024, align=(512, 512))
        for w in wins:  # nothing written: all nodata
            out.write(w, np.full((11, w.height, w.width), np.nan, np.float32))
    assert out.valid_pixels == 0


# ----------------------------------------------------------------------- the commands


@pytest.mark.slow
def test_stack_bands_windows(tmp_path, writes):
    region = to_4326(
        affinity.rotate(box(475780 + 95, 5255000 - 800, 475780 + 777, 5255000 - 53), 23),
        "EPSG:32632",
    )
    for res in (10, 7, 25):  # same grid (nearest), refining (bilinear), coarsening (average)
        one, win = tmp_path / f"one_{res}.tif", tmp_path / f"win_{res}.tif"
        write_band_stack(SRF, one, resolution=res, geometry=region, block=ONE_WINDOW)
        writes.clear()
        write_band_stack(SRF, win, resolution=res, geometry=region, block=16)
        assert_bounded(writes, 16)
        assert_same_file(one, win)


@pytest.mark.slow
def test_stack_safe_windows(tmp_path, writes):
    """Windows of 37 px (not aligned on anything) at 20 m (bilinear from 60 m, SCL from
    20 m), 25 m and 90 m (average), over a round and a rotated region."""
    regions = {
        20: box(CROP[0] + 1, CROP[1] + 1, CROP[2] - 1, CROP[3] - 1),
        25: Point(527000, 5896000).buffer(3000),
        90: affinity.rotate(box(CROP[0] + 500, CROP[1] + 700, CROP[2] - 900, CROP[3] - 333), 17),
    }
    for res, geom in regions.items():
        region = to_4326(geom, "EPSG:32629")
        one = stack_safe([SAFE], region, "one", res, tmp_path, block=ONE_WINDOW)[DATE]
        writes.clear()
        win = stack_safe([SAFE], region, "win", res, tmp_path, block=37)[DATE]
        assert_bounded(writes, 37)
        assert_same_file(one, win)


@pytest.mark.parametrize(
    ("res", "crs", "buffer"),
    [
        (90, None, 0.02),  # bilinear coarsening on a grid not aligned with the 60 m pixels
        pytest.param(60, "EPSG:32630", 0.0, marks=pytest.mark.slow),  # to the next UTM zone
        pytest.param(20, None, 0.0, marks=pytest.mark.slow),  # refining
    ],
)
def test_stack_stac_windows(tmp_path, writes, res, crs, buffer):
    cat = make_catalog(tmp_path / "cat", [make_item("a")])
    region = region_4326().buffer(buffer) if buffer else region_4326()
    kw = dict(
        catalog=str(cat), geometry=region, start=DATE, end=DATE, resolution=res,
        out_dir=tmp_path, crs=crs,
    )  # fmt: skip
    (one,) = stac.stack_stac(region="one", block=ONE_WINDOW, **kw).values()
    writes.clear()
    (win,) = stac.stack_stac(region="win", block=45, **kw).values()
    assert_bounded(writes, 45)
    da, db = read(one)[0], read(win)[0]
    assert (da[0] != STACK_NODATA).mean() > 0.5
    np.testing.assert_array_equal(da, db)


def test_window_size_is_a_module_setting(tmp_path, writes, monkeypatch):
    """Without ``block``, the windows are :data:`vercye_lai.stack.WINDOW_SIZE` a side (read
    where the writer is, :mod:`vercye_lai.stack._contract`)."""
    monkeypatch.setattr(_contract, "WINDOW_SIZE", 40)
    write_band_stack(SRF, tmp_path / "a.tif")
    assert set(writes) == {(40, 40), (40, 10), (10, 40), (10, 10)}  # 90 × 90 px


@pytest.mark.slow
def test_tile_in_another_crs_is_window_invariant(tmp_path):
    """A tile of the neighbouring UTM zone: its pixels do not depend on the window (GDAL's
    approximate transformer and per-chunk kernel scale would make them)."""
    rng = np.random.default_rng(0)
    src = write_raster(
        tmp_path / "z29.tif",
        rng.integers(1, 10000, (600, 600)).astype("uint16"),
        crs="EPSG:32629",
        transform=from_origin(499980, 5900040, 20, 20),  # 12 km square
    )
    # a 6 km grid of zone 30 well inside the zone-29 tile
    b = transform_bounds("EPSG:32629", "EPSG:32630", 502980, 5891040, 508980, 5897040)
    x0, y1 = round(b[0] / 60) * 60, round(b[3] / 60) * 60
    for res, how in ((20, Resampling.nearest), (60, Resampling.average), (10, Resampling.bilinear)):
        n = int(6000 / res)
        grid = Grid(CRS.from_epsg(32630), from_origin(x0, y1, res, res), (n, n))
        whole = warp_to_grid(src, grid, resampling=how, src_nodata=0)
        assert np.isfinite(whole).mean() > 0.9
        parts = np.full_like(whole, np.nan)
        for win in grid.tiles(37):
            parts[win.toslices()] = warp_to_grid(src, grid.window(win), resampling=how, src_nodata=0)
        np.testing.assert_array_equal(parts, whole)


@pytest.mark.slow
def test_memory_is_bounded_by_the_window(tmp_path):
    """Peak Python/numpy allocation of stack-bands on a 1024² file: windows of 128 px use a
    small fraction of what the whole grid needs (11 float32 bands = 46 MB)."""
    rng = np.random.default_rng(1)
    order = ["B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12", "SCL"]
    data = rng.uniform(0.01, 0.5, (10, 1024, 1024)).astype(np.float32)
    data[9] = 4
    src = write_raster(
        tmp_path / "S2B_MSIL2A_20220601T101559_N0400_R065_T32TMT_20220601T133430_big.tif",
        data,
        descriptions=order,
        tiled=True,
    )
    del data
    peaks = {}
    for block in (128, ONE_WINDOW):
        tracemalloc.start()
        write_band_stack(src, tmp_path / f"out_{block}.tif", block=block)
        peaks[block] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    whole = 11 * 4 * 1024 * 1024
    assert peaks[ONE_WINDOW] > whole  # the one-window run holds the grid…
    assert peaks[128] < whole / 10  # …the windowed one only about a window's worth
    assert_same_file(tmp_path / "out_128.tif", tmp_path / f"out_{ONE_WINDOW}.tif")


def test_thread_images_keep_each_threads_images_within_a_bound(tmp_path, monkeypatch):
    """Each thread reads through its own open datasets (reused across chunks), at most `keep`
    of them, the least recently used closed first; leaving closes every thread's; sent to a
    worker process, it arrives as that process's one copy of it (the tasks of a date share
    it), the two most recent kept; the bound keeps all threads (a worker's: all its copies')
    within half the file limit."""
    paths = [write_raster(tmp_path / f"a{i}.tif", np.full((4, 4), i, np.uint16)) for i in range(3)]
    with warp.ThreadImages(keep=2) as images:
        first = images(paths[0])
        assert images(paths[0]) is first  # kept for this thread
        other = []
        t = threading.Thread(target=lambda: other.append(images(paths[0])))
        t.start()
        t.join()
        assert other[0] is not first and not other[0].closed  # the other thread's own
        images(paths[1])
        images(paths[2])  # a third: the least recently used (paths[0]) closes
        assert first.closed and images(paths[0]).read(1)[0, 0] == 0
        copy = pickle.loads(pickle.dumps(images))
        assert copy(paths[1]) is not images(paths[1])  # not the sender's own
        assert pickle.loads(pickle.dumps(images)) is copy  # a second task: the same copy
        later = [warp.ThreadImages(keep=2) for _ in range(2)]  # two more dates sent here…
        assert all(pickle.loads(pickle.dumps(x)) is not copy for x in later)
        assert pickle.loads(pickle.dumps(images)) is not copy  # …forget the oldest copy
        copy.__exit__(None, None, None)
    assert other[0].closed  # every thread's, on leaving
    monkeypatch.setattr(_images.resource, "getrlimit", lambda _: (1024, 4096))
    assert [warp.ThreadImages.for_threads(n).keep for n in (2, 16, 64)] == [40, 32, 9]
    monkeypatch.setattr(_images, "_worker_threads", lambda: 16)  # a worker's copies: its threads' bound
    assert pickle.loads(pickle.dumps(warp.ThreadImages(keep=40))).keep == 16  # 2 copies x 16 threads: 512 files
