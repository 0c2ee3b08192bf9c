"""vercye_lai.grid: tiny grids with numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from vercye_lai.errors import InputError
from vercye_lai.grid import Grid, utm_crs

UTM = CRS.from_epsg(32629)


def grid(width=10, height=8, x0=1000.0, y0=2000.0, res=10.0) -> Grid:
    return Grid(UTM, Affine(res, 0, x0, 0, -res, y0), (height, width))


def test_properties():
    g = grid()
    assert (g.height, g.width, g.shape) == (8, 10, (8, 10))
    assert g.bounds == (1000.0, 1920.0, 1100.0, 2000.0)
    assert g.res == (10.0, 10.0)
    assert g.full_window == Window(0, 0, 10, 8)
    assert Grid("EPSG:32629", g.transform, (np.int64(8), 10)).crs == UTM  # normalised


def test_from_bounds_anchoring():
    # anchored on a tile corner at x = 3, y = 7: lines at 3 + 20 k and 7 + 20 k
    g = Grid.from_bounds((15.0, -30.0, 50.0, 10.0), 20, "EPSG:32629", anchor=(3.0, 7.0))
    assert g.transform == Affine(20, 0, 3.0, 0, -20, 27.0)
    assert g.shape == (3, 3)  # x 3…63, y -33…27
    assert g.bounds == (3.0, -33.0, 63.0, 27.0)
    # bounds on the lines (within float noise) add no row or column
    on = Grid.from_bounds((3.0 + 1e-9, -33.0, 63.0 - 1e-9, 27.0), 20, UTM, anchor=(3.0, 7.0))
    assert on == g
    # default anchor: the CRS origin
    assert Grid.from_bounds((1.0, 1.0, 2.0, 2.0), 10, UTM).transform == Affine(10, 0, 0, 0, -10, 10)
    # degenerate bounds still give one pixel
    assert Grid.from_bounds((5.0, 5.0, 5.0, 5.0), 10, UTM).shape == (1, 1)


def test_window_for_edges_and_centres():
    g = grid()  # pixel (r, c) covers x 1000 + 10c … +10, y 2000 - 10r … -10
    assert g.window_for(g.bounds) == Window(0, 0, 10, 8)
    # edges exactly on pixel edges, and within 1e-6 pixel of them: whole pixels only
    assert g.window_for((1010.0, 1960.0, 1030.0, 1980.0)) == Window(1, 2, 2, 2)
    assert g.window_for((1010.0 - 1e-7, 1960.0, 1030.0 + 1e-7, 1980.0)) == Window(1, 2, 2, 2)
    # a little more than that into a pixel takes it
    assert g.window_for((1009.99, 1960.0, 1030.0, 1980.0)) == Window(0, 2, 3, 2)
    # bounds through pixel centres take those pixels
    assert g.window_for((1015.0, 1965.0, 1025.0, 1975.0)) == Window(1, 2, 2, 2)
    # a point gives one pixel; bounds past the edge give a window outside the grid
    assert g.window_for((1015.0, 1965.0, 1015.0, 1965.0)) == Window(1, 3, 1, 1)
    assert g.window_for((980.0, 1990.0, 1000.0, 2010.0)) == Window(-2, -1, 2, 2)


def test_window_for_rotated():
    g = Grid(UTM, Affine(10, 1, 0, 0, -10, 0), (2, 2))
    with pytest.raises(InputError, match="rotated"):
        g.window_for((0, 0, 1, 1))


def test_overlap():
    g = grid()  # 10 wide, 8 high
    rows, cols, inner = g.overlap(Window(-2, 6, 4, 5))  # partly outside: left and bottom
    assert (rows, cols, inner) == (slice(0, 2), slice(2, 4), Window(0, 6, 2, 2))
    assert g.overlap(Window(2, 2, 3, 3)) == (slice(0, 3), slice(0, 3), Window(2, 2, 3, 3))
    assert g.overlap(Window(10, 0, 2, 2)) is None  # touches the right edge only
    assert g.overlap(Window(-5, -5, 2, 2)) is None


def test_window_subgrid():
    g = grid()
    sub = g.window(Window(2, 3, 4, 1))
    assert sub == Grid(UTM, Affine(10, 0, 1020.0, 0, -10, 1970.0), (1, 4))
    assert sub.bounds == (1020.0, 1960.0, 1060.0, 1970.0)


def test_tiles_ragged_last_tile():
    g = grid(width=10, height=7)
    tiles = g.tiles(4)
    assert [(w.col_off, w.row_off, w.width, w.height) for w in tiles] == [
        (0, 0, 4, 4), (4, 0, 4, 4), (8, 0, 2, 4),
        (0, 4, 4, 3), (4, 4, 4, 3), (8, 4, 2, 3),
    ]
    # aligned to 3 × 3 blocks: 4 rounds down to 3
    assert {(w.width, w.height) for w in g.tiles(4, align=(3, 3))} == {
        (3, 3), (1, 3), (3, 1), (1, 1)
    }
    # striped (one row high, full width blocks): whole rows, about block² pixels each
    rows = [(w.row_off, w.height) for w in g.tiles(4, align=(1, 10))]
    assert rows == [(r, 1) for r in range(7)]  # 16 // 10 = 1 row a window
    assert [(w.row_off, w.height) for w in grid(width=4, height=7).tiles(4, align=(1, 4))] == [
        (0, 4), (4, 3)
    ]


def test_profile(tmp_path):
    small = grid()  # smaller than a 512² tile: striped
    p = small.profile(dtype=np.float32, count=2, nodata=np.nan)
    assert "tiled" not in p and "blockxsize" not in p and p["compress"] == "zstd"
    assert (p["width"], p["height"], p["count"], p["dtype"]) == (10, 8, 2, "float32")
    assert p["crs"] == UTM and p["transform"] == small.transform
    assert small.profile(dtype="uint8", always_tiled=True)["tiled"] is True
    big = grid(width=600, height=512)
    p = big.profile(dtype="int16", nodata=-32768, predictor=2, compress=None, zstd_level=None)
    assert (p["tiled"], p["blockxsize"], p["predictor"]) == (True, 512, 2)
    assert "compress" not in p and "zstd_level" not in p
    with rasterio.open(tmp_path / "x.tif", "w", **p) as ds:
        assert Grid.of(ds) == big and ds.block_shapes[0] == (512, 512)


def test_equality_and_hash():
    a = grid()
    noisy = Grid(UTM, Affine(10.0, 0, 1000.0 + 1e-9, 0, -10.0, 2000.0 - 1e-9), (8, 10))
    assert a == noisy and hash(a) == hash(noisy)
    assert len({a, noisy}) == 1
    assert a != grid(x0=1000.001)
    assert a != grid(width=11)
    assert a != Grid(CRS.from_epsg(32630), a.transform, a.shape)
    assert a != (a.crs, a.transform, a.shape)


def test_utm_crs():
    assert utm_crs(34.55, 49.59) == "EPSG:32636"  # Poltava
    assert utm_crs(-8.0, 53.0) == "EPSG:32629"  # Ireland
    assert utm_crs(-70.6, -33.4) == "EPSG:32719"  # Santiago
    assert utm_crs(180.0, 0.0) == "EPSG:32660"
