"""A COG's AVERAGE overviews computed beside the blocks equal GDAL's, level by level."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from conftest import write_raster
from rasterio.windows import Window

from vercye_lai.predict.overviews import (
    OverviewBuilder,
    average_overview,
    cog_overview_shapes,
    nearest_overview,
    takes_own_overviews,
)

NODATA = -32768


def gdal_levels(tmp_path, values: np.ndarray, resampling: str = "AVERAGE") -> list[np.ndarray]:
    """The overview levels GDAL's COG driver makes of ``values`` (int16, nodata -32768; or
    uint8 flags, nodata 255)."""
    nodata = 255 if values.dtype == np.uint8 else NODATA
    src = write_raster(tmp_path / "full.tif", values, nodata=nodata, tiled=True, compress="zstd")
    cog = tmp_path / "cog.tif"
    rasterio.shutil.copy(src, cog, driver="COG", blocksize=512, compress="ZSTD", overviews="AUTO",
                         resampling=resampling)
    levels = []
    with rasterio.open(cog) as ds:
        n = len(ds.overviews(1))
    for i in range(n):
        with rasterio.open(cog, OVERVIEW_LEVEL=i) as ds:
            levels.append(ds.read(1))
    return levels


def sample(shape, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = -9000 if kind == "negative" else 0
    a = rng.integers(low, 8000, shape).astype(np.int16)
    if kind == "whole":  # no nodata, many exact halves (GDAL rounds them away from zero)
        a = (a // 4 * 4 + (np.arange(shape[1]) % 7 == 0) * 2).astype(np.int16)
    else:
        a[rng.random(shape) < 0.2] = NODATA
        a[: shape[0] // 5, : shape[1] // 3] = NODATA  # an empty corner: nodata in every level
    return a


def cascade(values: np.ndarray) -> list[np.ndarray]:
    out, level = [], values
    for shape in cog_overview_shapes(*values.shape):
        level = nearest_overview(level, shape) if values.dtype == np.uint8 else average_overview(level, NODATA, shape)
        out.append(level)
    return out


@pytest.mark.parametrize("shape", [(1100, 1300), (1101, 1027), (600, 1537), (1030, 7), (520, 2), (2049, 515)])
@pytest.mark.parametrize("kind", ["holes", "whole", "negative"])
def test_levels_equal_gdal(tmp_path, shape, kind):
    """Even and odd sizes (windows weighted by the covered part of each pixel), rasters a
    few pixels wide, nodata, negative values and exact halves: every level, every pixel."""
    values = sample(shape, kind)
    gdal = gdal_levels(tmp_path, values)
    assert [g.shape for g in gdal] == cog_overview_shapes(*shape)
    ours = cascade(values)
    for level, (a, b) in enumerate(zip(ours, gdal, strict=True)):
        assert np.count_nonzero(a != b) == 0, f"level {level}: {np.count_nonzero(a != b)} pixels differ"


@pytest.mark.parametrize("shape", [(1100, 1300), (1101, 1027), (2049, 515), (1, 2100)])
def test_nearest_levels_equal_gdal(tmp_path, shape):
    """The flags' NEAREST levels: one source pixel each, at GDAL's offsets (odd sizes drift)."""
    values = np.random.default_rng(3).integers(0, 256, shape).astype(np.uint8)
    for a, b in zip(cascade(values), gdal_levels(tmp_path, values, "NEAREST"), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["int16", "uint8"])
@pytest.mark.parametrize("rows,cols", [(2, 700), (64, 64), (256, 256)])
def test_blocks_in_any_order_give_the_same_levels(dtype, rows, cols):
    """Bands of blocks complete out of order; bands of two rows complete no row of a level."""
    h, w = 2049, 1100
    values = sample((h, w), "holes", seed=1)
    if dtype == "uint8":
        values = (values % 256).astype(np.uint8)
    windows = [Window(c, r, min(cols, w - c), min(rows, h - r)) for r in range(0, h, rows) for c in range(0, w, cols)]
    order = list(range(len(windows)))
    rng = np.random.default_rng(2)
    for i in range(0, len(order) - 4, 4):  # shuffled within groups of four, as workers finish
        order[i:i + 4] = rng.permutation(order[i:i + 4])
    builder = OverviewBuilder(h, w, NODATA if dtype == "int16" else 255, dtype)
    for i in order:
        w = windows[i]
        builder.add(values[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width], w)
    for a, b in zip(builder.levels(), cascade(values), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_missing_block_is_an_error_not_a_level():
    builder = OverviewBuilder(1100, 600, NODATA, "int16")
    builder.add(np.zeros((512, 600), np.int16), Window(0, 0, 600, 512))
    with pytest.raises(ValueError, match="blocks missing"):
        builder.levels()


def test_what_is_left_to_gdal(tmp_path):
    """float32 (GDAL's float sums depend on its SIMD kernels), and rasters so narrow that GDAL
    computes a level from the full raster rather than the level before."""
    assert takes_own_overviews("int16", 1100, 1300) and takes_own_overviews("int16", 1030, 7)
    assert takes_own_overviews("uint8", 1100, 1300) and not takes_own_overviews("float32", 1100, 1300)
    assert not takes_own_overviews("int16", 3000, 3)
    values = sample((3000, 3), "holes")
    # why: GDAL's second level here is not the first one averaged
    second_from_first = average_overview(gdal_levels(tmp_path, values)[0], NODATA, (750, 1))
    assert np.count_nonzero(second_from_first != gdal_levels(tmp_path, values)[1]) > 0


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_every_sum_of_a_window_rounds_as_gdal(n):
    """Every sum a 2 × 2 window of ``n`` valid int16 pixels can have, averaged and rounded
    half away from zero as GDAL does (exact integers: the float32 path must not drift)."""
    sums = np.arange(-32767 * n, 32767 * n + 1)
    parts = np.stack([sums // n + (k < sums % n) for k in range(n)])  # n parts, each in int16's range
    windows = np.full((4, sums.size), NODATA, np.int64)
    windows[:n] = parts
    values = windows.reshape(2, 2, -1).transpose(0, 2, 1).reshape(2, -1).astype(np.int16)
    got = average_overview(np.vstack([values, values]), NODATA, (2, sums.size))  # two rows: 2 × 2 windows
    want = np.sign(sums) * ((np.abs(sums) * 2 + n) // (2 * n))
    assert np.array_equal(got, [want, want])


@pytest.mark.parametrize("shape, kind", [
    ((1101, 2055), "holes"),
    *(pytest.param(s, k, marks=pytest.mark.slow)
      for s, k in [((1100, 2600), "holes"), ((2049, 1537), "holes"), ((1100, 2600), "whole"), ((1101, 2055), "whole"),
                   ((2049, 1537), "whole")]),
])
def test_levels_computed_in_column_parts_equal_gdal(tmp_path, shape, kind):
    """A wide level's rows computed in parts of columns side by side (the parts' windows
    weighted at their edges as the whole's): every level equals GDAL's, parts on threads."""
    values = sample(shape, kind, seed=5)
    calls = []
    with ThreadPoolExecutor(3) as pool:
        def parts_map(fn, parts):
            calls.append(len(parts))
            return list(pool.map(lambda p: fn(*p), parts))

        builder = OverviewBuilder(*shape, NODATA, "int16", map_parts=parts_map, parts=3)
        for r in range(0, shape[0], 512):
            for c in range(0, shape[1], 512):
                w = Window(c, r, min(512, shape[1] - c), min(512, shape[0] - r))
                builder.add(values[r:r + w.height, c:c + w.width], w)
        mine = builder.levels()
    assert calls and max(calls) == 3  # in parts indeed
    for a, b in zip(mine, gdal_levels(tmp_path, values), strict=True):
        np.testing.assert_array_equal(a, b)
