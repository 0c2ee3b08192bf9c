"""reproject-mask: a crop mask on any grid, resampled onto the LAI grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner
from conftest import ORIGIN
from rasterio.transform import from_origin

from vercye_lai.analysis import analyze, largest_grid, reproject_mask
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.cli.main import cli
from vercye_lai.errors import InputError


@pytest.fixture
def lai_dir(tmp_path, lai_writer):
    lai_writer("2022-06-01", np.ones((6, 6), np.float32))
    # the largest: 8 x 10 starting one pixel west and north
    lai_writer("2022-06-02", np.full((8, 10), 2, np.float32),
               transform=from_origin(ORIGIN[0] - 10, ORIGIN[1] + 10, 10, 10))
    return tmp_path / "lai"


@pytest.fixture
def mask20(raster_writer):
    # 20 m cells, crop in cell (1, 1) → LAI global rows 2-3, cols 2-3
    mask = np.zeros((3, 3), np.uint8)
    mask[1, 1] = 3
    mask[2, 2] = 255  # nodata → 0
    return raster_writer("mask20.tif", mask, transform=from_origin(*ORIGIN, 20, 20), nodata=255)


def test_largest_grid_and_nearest(lai_dir, mask20, tmp_path):
    ref, grid = largest_grid(sorted(lai_dir.glob("*.tif")))
    assert ref.name == "R_10m_2022-06-02_LAI.tif" and grid.shape == (8, 10)
    out = reproject_mask(mask20, tmp_path / "aligned.tif", grid)
    with rasterio.open(out) as ds:
        assert ds.shape == (8, 10) and ds.transform == grid.transform and ds.dtypes[0] == "uint8"
        data = ds.read(1)
    expected = np.zeros((8, 10), np.uint8)
    expected[3:5, 3:5] = 3  # global rows/cols 2-3, shifted by one pixel
    np.testing.assert_array_equal(data, expected)


def test_cli_lai_dir_and_lai_path(lai_dir, mask20, tmp_path):
    runner = CliRunner()
    out = tmp_path / "a.tif"
    res = runner.invoke(cli, ["reproject-mask", str(mask20), str(out), "--lai-dir", str(lai_dir),
                              "--lai-region", "R", "--res", "10"])
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        assert ds.shape == (8, 10)
    out2 = tmp_path / "b.tif"
    res = runner.invoke(cli, ["reproject-mask", str(mask20), str(out2), "--lai-path",
                              str(lai_dir / "R_10m_2022-06-01_LAI.tif")])
    assert res.exit_code == 0, res.output
    with rasterio.open(out2) as ds:
        assert ds.shape == (6, 6) and int(ds.read(1).astype(bool).sum()) == 4
    res = runner.invoke(cli, ["reproject-mask", str(mask20), str(out2)])
    assert res.exit_code == 2 and "--lai-path" in res.output


def test_aligned_mask_gives_same_statistics(lai_dir, mask20, tmp_path):
    _, grid = largest_grid(sorted(lai_dir.glob("*.tif")))
    aligned = reproject_mask(mask20, tmp_path / "aligned.tif", grid)
    a = analyze(lai_dir, tmp_path / "o1", "R", mask20, resolution=10, options=AnalysisOptions(mode="raster"))
    b = analyze(lai_dir, tmp_path / "o2", "R", aligned, resolution=10, options=AnalysisOptions(mode="raster"))
    ta, tb = pd.read_csv(a.zones[0].csv), pd.read_csv(b.zones[0].csv)
    pd.testing.assert_frame_equal(ta, tb)
    assert list(ta["n_pixels"]) == [4, 4] and list(ta["LAI Mean"]) == [1, 2]


def test_no_overlap_is_an_error(lai_dir, raster_writer, tmp_path):
    far = np.ones((2, 2), np.uint8)
    m = raster_writer("far.tif", far, transform=from_origin(ORIGIN[0] + 1e5, ORIGIN[1], 10, 10))
    _, grid = largest_grid(sorted(lai_dir.glob("*.tif")))
    with pytest.raises(InputError, match="no non-zero pixel on the LAI grid") as exc:
        reproject_mask(m, tmp_path / "x.tif", grid)
    assert exc.value.path == str(m) and not (tmp_path / "x.tif").exists()
    res = CliRunner().invoke(cli, ["reproject-mask", str(m), str(tmp_path / "x.tif"),
                                   "--lai-dir", str(lai_dir), "--lai-region", "R", "--res", "10"])
    assert res.exit_code == 1 and str(m) in res.stderr
