"""The season cube, opened with xarray and rioxarray and compared with the GeoTIFFs."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import ORIGIN, cli_error_line, write_raster
from rasterio.transform import from_origin

from vercye_lai.cli.main import cli

xr = pytest.importorskip("xarray")
pytest.importorskip("rioxarray")


@pytest.fixture
def season(tmp_path):
    lai = tmp_path / "lai"
    rng = np.random.default_rng(0)
    for i, day in enumerate(("2022-06-01", "2022-06-04")):
        v = rng.uniform(0, 6, (20, 30)).astype(np.float32)
        v[0, 0] = np.nan
        write_raster(lai / f"R_10m_{day}_LAI.tif", v, nodata=np.nan)
        write_raster(lai / f"R_10m_{day}_LAI_flags.tif", np.where(v > 5, 4, 0).astype(np.uint8), nodata=255)
    write_raster(lai / "R_10m_2022-06-01_LAI_uncertainty.tif", np.full((20, 30), 0.4, np.float32), nodata=np.nan)
    # a third date on another grid: 10 m, shifted by 5 m (resampled)
    write_raster(lai / "R_10m_2022-06-09_LAI.tif", np.full((22, 32), 2.5, np.float32), nodata=np.nan,
                 transform=from_origin(ORIGIN[0] - 15, ORIGIN[1] + 15, 10, 10))
    return lai


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_cube_values_grid_and_conventions(tmp_path, season, suffix):
    out = tmp_path / f"cube{suffix}"
    r = CliRunner().invoke(cli, ["-q", "cube", str(season), str(out), "--region", "R", "--res", "10"])
    assert r.exit_code == 0, r.output
    ds = xr.open_dataset(out, decode_coords="all", engine="zarr" if suffix == ".zarr" else None)
    assert [str(t)[:10] for t in ds["time"].values] == ["2022-06-01", "2022-06-04", "2022-06-09"]
    assert ds["LAI"].dims == ("time", "y", "x") and ds["LAI"].shape == (3, 20, 30)
    assert ds["LAI"].attrs["standard_name"] == "leaf_area_index" and ds["LAI"].attrs["units"] == "m2 m-2"
    assert ds.rio.crs.to_epsg() == 32632
    assert tuple(ds["LAI"].rio.transform())[:6] == tuple(from_origin(*ORIGIN, 10, 10))[:6]
    for i, day in enumerate(("2022-06-01", "2022-06-04")):  # on the cube's grid: exact
        np.testing.assert_array_equal(ds["LAI"].isel(time=i).values, read(season / f"R_10m_{day}_LAI.tif"))
        flags = ds["LAI_flags"].isel(time=i).values
        assert flags.dtype == np.uint8  # integers with their nodata (255), not floats with NaN
        np.testing.assert_array_equal(flags, read(season / f"R_10m_{day}_LAI_flags.tif"))
    assert "sensor" in ds.coords and list(ds["sensor"].dims) == ["time"]  # a coordinate, as documented
    resampled = ds["LAI"].isel(time=2).values
    assert np.allclose(resampled, 2.5, atol=1e-5)  # constant field: any resampling gives it back
    unc = ds["LAI_uncertainty"].values
    assert np.allclose(unc[0], 0.4) and np.isnan(unc[1]).all()  # the other dates have none
    assert ds.attrs["model"] == "" or isinstance(ds.attrs["model"], str)
    assert "R_10m_2022-06-01_LAI.tif" in ds.attrs["source_files"]
    ds.close()


def test_cube_cut_to_a_box_and_bad_names(tmp_path, season):
    from rasterio.warp import transform_bounds

    x0, y0 = ORIGIN
    w, s, e, n = transform_bounds("EPSG:32632", "EPSG:4326", x0 + 52, y0 - 98, x0 + 148, y0 - 52)
    out = tmp_path / "cut.nc"
    r = CliRunner().invoke(cli, ["-q", "cube", str(season), str(out), "--region", "R", "--res", "10",
                                 "--bbox", str(w), str(s), str(e), str(n)])
    assert r.exit_code == 0, r.output
    ds = xr.open_dataset(out, decode_coords="all")
    full = read(season / "R_10m_2022-06-01_LAI.tif")
    rows, cols = ds.sizes["y"], ds.sizes["x"]
    c0 = int(round((float(ds["x"][0]) - 5 - x0) / 10))
    r0 = int(round((y0 - float(ds["y"][0]) - 5) / 10))
    np.testing.assert_array_equal(ds["LAI"].isel(time=0).values, full[r0:r0 + rows, c0:c0 + cols])
    assert rows < 20 and cols < 30
    ds.close()
    line = cli_error_line(CliRunner().invoke(cli, ["-q", "cube", str(season), str(tmp_path / "c.tif"),
                                                   "--region", "R", "--res", "10"]))
    assert "must end in .nc" in line
    # a box upside down crashed in GDAL; one with W > E was ignored (the whole grid)
    for box in ((w, n, e, s), (e, s, w, n), (w, s, e, 95.0)):
        line = cli_error_line(CliRunner().invoke(cli, ["-q", "cube", str(season), str(tmp_path / "x.nc"), "--region",
                                                       "R", "--res", "10", "--bbox", *map(str, box)]))
        assert "give W S E N in degrees, W < E" in line and "Traceback" not in line
    assert not (tmp_path / "x.nc").exists()


def test_a_killed_zarr_write_leaves_nothing_a_rerun_keeps(tmp_path, season):
    import subprocess
    import sys

    from vercye_lai import io
    from vercye_lai.outputs.cube import build_cube

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    stale = tmp_path / f".cube.zarr.{io.HOST}~{p.pid}~abc{io.TMP_SUFFIX}"  # a dead writer's folder
    (stale / "LAI").mkdir(parents=True)
    (stale / "LAI" / "0.0.0").write_bytes(b"half")
    build_cube(season, tmp_path / "cube.zarr", region="R", resolution=10)
    assert not stale.exists() and (tmp_path / "cube.zarr").is_dir()
    assert [x.name for x in tmp_path.iterdir() if x.name.startswith(".")] == []


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_a_users_file_or_folder_under_the_name_is_never_moved(tmp_path, season, suffix):
    """Only a cube of that format is replaced; a file or folder of the user under the name is
    refused by name and stays where it was, with no hidden copy beside it."""
    def cube(out):
        return CliRunner().invoke(cli, ["-q", "cube", str(season), str(out), "--region", "R", "--res", "10"])

    mine = tmp_path / f"notes{suffix}"
    mine.write_text("my notes")
    folder = tmp_path / f"folder{suffix}"
    (folder / "keep.txt").parent.mkdir()
    (folder / "keep.txt").write_text("mine")
    for path, kind in ((mine, "a file"), (folder, "a folder")):
        line = cli_error_line(cube(path))
        assert f"exists and is {kind}, not a" in line and "not replaced" in line
    assert mine.read_text() == "my notes" and (folder / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    good = tmp_path / f"c{suffix}"
    assert cube(good).exit_code == 0 and cube(good).exit_code == 0  # a cube replaces a cube


@pytest.mark.parametrize("codec", ["zlib", "zstd"])
def test_netcdf_chunks_across_the_grid_and_every_codec(tmp_path, season, codec):
    """Chunks smaller than the grid (edge chunks padded, as HDF5 stores them), deflated on two
    threads (zlib) or by netCDF-C (the fast codecs): netCDF4 reads every value back, and the
    variable declares the codec it was written with."""
    from vercye_lai.outputs.cube import build_cube

    out = build_cube(season, tmp_path / f"{codec}.nc", region="R", resolution=10, chunk=16, codec=codec, workers=2)
    ds = xr.open_dataset(out)
    for i, day in enumerate(("2022-06-01", "2022-06-04")):
        np.testing.assert_array_equal(ds["LAI"].isel(time=i).values, read(season / f"R_10m_{day}_LAI.tif"))
        np.testing.assert_array_equal(ds["LAI_flags"].isel(time=i).values,
                                      read(season / f"R_10m_{day}_LAI_flags.tif"))
    assert np.allclose(ds["LAI_uncertainty"].values[0], 0.4)
    filters = ds["LAI"].encoding
    assert filters["chunksizes"] == (1, 16, 16)
    assert (filters.get("zlib") and filters.get("shuffle")) if codec == "zlib" else filters.get(codec, True)
    ds.close()
