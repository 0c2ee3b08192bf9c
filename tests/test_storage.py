"""predict --dtype: int16 and LERC products read as float32 values by every reader of the project."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner
from conftest import copy_qvidja, strickhof_run_config

from vercye_lai.cli.main import cli
from vercye_lai.io import read_values
from vercye_lai.model import load_network
from vercye_lai.predict.storage import Storage, storage_step
from vercye_lai.run import load_config, run_pipeline
from vercye_lai.run.demo import demo_insitu

#: half the int16 step of LAI: the most a stored value may differ from the float32 one
HALF_STEP = 0.0005 + 1e-6


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_the_int16_steps_fit_every_variable_in_int16():
    steps = {v: storage_step(load_network("sl2p", v)) for v in ("LAI", "FAPAR", "FCOVER", "CCC", "CWC")}
    assert steps == pytest.approx({"LAI": 1e-3, "FAPAR": 1e-4, "FCOVER": 1e-4, "CCC": 0.1, "CWC": 1e-4})
    for v, step in steps.items():
        net = load_network("sl2p", v)
        assert net.out_max / step < 32767 and net.out_max / (step / 10) > 32767  # the finest that fits
    s = Storage.of("int16", load_network("sl2p"))
    coded = s.encode(np.array([0.0, 2.4434, np.nan, 8.0, 99.0], np.float32))
    assert coded.dtype == np.int16 and coded.tolist() == [0, 2443, -32768, 8000, 32767]
    with pytest.raises(TypeError, match="already stored"):  # never rescaled twice
        s.encode(coded)


@pytest.mark.parametrize("dtype", ["int16", "lerc"])
def test_products_are_smaller_and_read_back_within_half_a_step(tmp_path, dtype):
    s2 = copy_qvidja(tmp_path / "s2")
    assert run("-q", "predict", s2, tmp_path / "f", "--region", "qvidja", "--uncertainty",
               "--dtype", "float32").exit_code == 0
    r = run("-q", "predict", s2, tmp_path / "i", "--region", "qvidja", "--uncertainty", "--dtype", dtype)
    assert r.exit_code == 0, r.output
    for name in ("qvidja_20m_2023-06-11_LAI.tif", "qvidja_20m_2023-06-11_LAI_uncertainty.tif"):
        with rasterio.open(tmp_path / "f" / name) as a, rasterio.open(tmp_path / "i" / name) as b:
            fa, fb = read_values(a), read_values(b)
            assert b.dtypes[0] == ("int16" if dtype == "int16" else "float32")
            if dtype == "int16":
                assert b.scales == (0.001,) and b.nodata == -32768 and b.tags()["VERCYE_STORAGE"] == "int16 scale 0.001"
            else:
                assert b.profile["compress"] == "lerc_zstd"
        np.testing.assert_array_equal(np.isnan(fa), np.isnan(fb))
        assert np.nanmax(np.abs(fa - fb)) <= HALF_STEP
    # a rerun with another storage makes the products again
    assert "3 done" in run("predict", s2, tmp_path / "i", "--region", "qvidja", "--uncertainty",
                           "--dtype", "float32" if dtype == "int16" else "int16").output


@pytest.mark.slow
def test_int16_products_through_every_reader(tmp_path, strickhof_stacks):
    """The demo's season predicted as float32 and as int16 (with uncertainty): analysis, its
    quicklook, the report, validate, the cube (int16 with CF scale_factor) and the catalogue
    read the int16 products as values within half a step on observed days; on gap-filled days
    interpolation (Akima, poly_iter smoothing) spreads the rounding of its neighbours: measured
    at most 0.00103 here, bounded at three half steps."""
    roots = {}
    for dtype in ("float32", "int16"):
        cfg = strickhof_run_config(tmp_path, strickhof_stacks, dtype, extra="",
                                   variables='["LAI"]\nuncertainty = true\ndtype = "' + dtype + '"')
        text = cfg.read_text().replace("quicklook = false", 'quicklook = true\nid_column = "name"')
        cfg.write_text(text)
        assert run_pipeline(load_config(cfg), write_summary=False).ok
        roots[dtype] = tmp_path / dtype
    csvs = {k: sorted((r / "analysis").rglob("*_STATS.csv")) for k, r in roots.items()}
    assert len(csvs["float32"]) == len(csvs["int16"]) == 3
    worst_observed = worst_filled = 0.0
    for a, b in zip(csvs["float32"], csvs["int16"]):
        fa, fb = pd.read_csv(a), pd.read_csv(b)
        assert fa["interpolated"].tolist() == fb["interpolated"].tolist()
        assert fa["outlier"].tolist() == fb["outlier"].tolist()
        obs = fa["interpolated"] == 0
        for col in ("LAI Mean", "LAI Median", "LAI Uncertainty"):
            d = (fa[col] - fb[col]).abs()
            worst_observed = max(worst_observed, d[obs].max())
            worst_filled = max(worst_filled, d[~obs].max())
    assert worst_observed <= HALF_STEP and worst_filled <= 3 * HALF_STEP
    for k, r in roots.items():  # quicklooks and the report of each
        assert len(list((r / "analysis").rglob("*.png"))) == 3
    # validate, series mode: the same figures within half a step
    metrics = {}
    for k, r in roots.items():
        out = tmp_path / f"val_{k}"
        v = run("-q", "validate", demo_insitu(), "--series", next((r / "analysis").rglob("fields")),
                "--zone-column", "parcel", "-o", out)
        assert v.exit_code == 0, v.output
        metrics[k] = pd.read_csv(next(out.glob("*metrics.csv"))).set_index(["estimate", "group"])
    diff = (metrics["float32"][["rmse", "bias"]] - metrics["int16"][["rmse", "bias"]]).abs().to_numpy()
    assert np.nanmax(diff) <= HALF_STEP
    # validate, point mode against the products themselves
    points = {}
    for k, r in roots.items():
        out = tmp_path / f"pts_{k}"
        v = run("-q", "validate", demo_insitu(), r / "lai" / "strickhof", "-o", out)
        assert v.exit_code == 0, v.output
        points[k] = pd.read_csv(next(out.glob("*matched.csv")))
    assert np.nanmax(np.abs(points["float32"]["LAI"] - points["int16"]["LAI"])) <= HALF_STEP
    # the cube: int16 with CF scale_factor, decoded by xarray to the float32 cube's values
    xr = pytest.importorskip("xarray")
    cubes = {}
    for k, r in roots.items():
        c = run("-q", "cube", r / "lai" / "strickhof", tmp_path / f"{k}.nc", "--region", "strickhof", "--res", "10")
        assert c.exit_code == 0, c.output
        cubes[k] = xr.open_dataset(tmp_path / f"{k}.nc")
    raw = xr.open_dataset(tmp_path / "int16.nc", decode_cf=False)
    assert raw["LAI"].dtype == np.int16 and raw["LAI"].attrs["scale_factor"] == pytest.approx(0.001)
    assert raw["LAI_uncertainty"].dtype == np.int16
    for var in ("LAI", "LAI_uncertainty"):
        a, b = cubes["float32"][var].to_numpy(), cubes["int16"][var].to_numpy()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        assert np.nanmax(np.abs(a - b)) <= HALF_STEP
    assert (tmp_path / "int16.nc").stat().st_size < 0.8 * (tmp_path / "float32.nc").stat().st_size
    # the Zarr cube alike: int16 with its scale_factor, decoded to the same values
    c = run("-q", "cube", roots["int16"] / "lai" / "strickhof", tmp_path / "int16.zarr", "--region", "strickhof",
            "--res", "10")
    assert c.exit_code == 0, c.output
    z = xr.open_dataset(tmp_path / "int16.zarr", engine="zarr")
    assert xr.open_dataset(tmp_path / "int16.zarr", engine="zarr", decode_cf=False)["LAI"].dtype == np.int16
    np.testing.assert_allclose(z["LAI"].to_numpy(), cubes["int16"]["LAI"].to_numpy(), atol=1e-6)  # float64 vs 32
    # the catalogue declares the scale of each int16 asset; the report reads the run
    for args in (("catalog", roots["int16"]), ("report", roots["int16"])):
        assert run("-q", *args).exit_code == 0
    item = next((roots["int16"] / "stac").rglob("strickhof_2022-05-14.json"))
    bands = json.loads(item.read_text())["assets"]["LAI"]["raster:bands"][0]
    assert bands["data_type"] == "int16" and bands["scale"] == pytest.approx(0.001) and bands["nodata"] == -32768
    assert (roots["int16"] / "report.html").exists()
