"""The predict step: real stacks, SNAP test cases through the CLI, scaling, streaming, resume, bad input."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner
from conftest import DATA, cli_error_line, copy_qvidja, write_raster
from conftest import run_cli as run

from vercye_lai.cli.main import cli
from vercye_lai.errors import BandError, DataIOError, LaiError, NoDataFoundError
from vercye_lai.io import read_values
from vercye_lai.model import load_network
from vercye_lai.model.registry import SNAP_INPUT_ORDER, snap_test_cases
from vercye_lai.naming import find_rasters
from vercye_lai.predict import PredictOptions, finishing_dates, pipelined, predict_dir, predict_file, product_paths
from vercye_lai.predict import writer
from vercye_lai.predict.phases import NO_PHASES, Phases
from vercye_lai.stack import S2_BANDS_10M, S2_BANDS_20M

QVIDJA = DATA / "qvidja"
TO_STACK = [SNAP_INPUT_ORDER.index(b) for b in S2_BANDS_20M]




def read(path: Path, band: int = 1) -> np.ndarray:
    """A product's values as the project's readers see them (flags: as stored)."""
    with rasterio.open(path) as ds:
        return ds.read(band) if ds.dtypes[band - 1] == "uint8" else read_values(ds, band)


# --- real data ------------------------------------------------------------------


@pytest.mark.parametrize("res,model,bands", [(20, "sl2p", S2_BANDS_20M), (10, "sl2p-10m", S2_BANDS_10M)])
def test_real_qvidja_stacks(tmp_path, res, model, bands):
    results = predict_dir(QVIDJA, tmp_path, region="qvidja", resolution=res,
                          options=PredictOptions(model=model, workers=2, dtype="float32"))
    assert [r.status for r in results] == ["done"] * 3
    net = load_network(model, "LAI")
    for r in results:
        lai_path = tmp_path / f"qvidja_{res}m_{r.date}_LAI.tif"
        with rasterio.open(r.source) as src:
            raw = src.read(masked=True)
        lai = read(lai_path)
        valid = ~raw.mask.any(axis=0)
        # outside the field the stack is nodata, and so is LAI
        assert np.isnan(lai[~valid]).all() and np.isfinite(lai[valid]).all()
        assert valid.sum() == r.n_valid > 50
        # independent float64 computation of the same network on the same pixels
        x = raw.data[:, valid].astype(np.float64) * 1e-4
        expected = np.clip(net.forward(x.astype(np.float32)).astype(np.float64), net.out_min, net.out_max)
        np.testing.assert_allclose(lai[valid], expected, atol=1e-5)
        assert 1.0 < np.nanmean(lai) < 7.0  # a June field: a plausible LAI


def big_stack(path: Path, height: int, width: int) -> Path:
    """A real-valued stack made by sampling the pixels of a real Qvidja scene: big enough for
    overviews, with a nodata hole."""
    with rasterio.open(QVIDJA / "qvidja_20m_2023-06-09.tif") as ds:
        data = ds.read()
        valid = ~(data == ds.nodata).any(axis=0)
    field = data[:, valid]
    idx = np.random.default_rng(0).integers(0, field.shape[1], height * width)
    big = field[:, idx].reshape(11, height, width)
    big[:, 100:300, 200:260] = -32768
    return write_raster(path, big, nodata=-32768, scales=[1e-4] * 11, offsets=[0.0] * 11,
                        descriptions=list(S2_BANDS_20M), tiled=True, compress="zstd")


def test_cog_layout_metadata_and_flags(tmp_path):
    src = big_stack(tmp_path / "s2" / "big_20m_2023-06-09.tif", 1100, 1300)
    out = product_paths(src, tmp_path / "lai", ["LAI"])
    res = predict_file(src, out, options=PredictOptions(block_size=512, workers=2))
    assert res.status == "done" and res.n_valid == 1100 * 1300 - 200 * 60
    with rasterio.open(out["LAI"]) as ds:  # int16 (the default), its step declared
        assert ds.dtypes[0] == "int16" and ds.nodata == -32768 and ds.scales == (0.001,)
        assert ds.block_shapes[0] == (512, 512) and ds.compression.name.lower() == "zstd"
        assert ds.overviews(1), "COG must carry overviews"
        assert ds.descriptions[0] == "LAI"
        assert ds.tags()["VERCYE_MODEL"] == "sl2p" and ds.tags()["VERCYE_VARIABLE"] == "LAI"
        assert ds.crs == rasterio.crs.CRS.from_epsg(32632)
    flags = read(out["LAI"].with_name(out["LAI"].stem + "_flags.tif"))
    assert flags.dtype == np.uint8 and set(np.unique(flags)) <= {0, 1, 2, 4, 8, 16, 3, 5, 9, 17, 255}


# --- SNAP's test cases as pixels, through the CLI -------------------------------


@pytest.mark.parametrize("var", ["LAI", "FAPAR", "CCC"])
def test_snap_test_cases_through_cli(tmp_path, var):
    cases = snap_test_cases("snap-2.1", var)
    inputs = cases[:, :11][:, TO_STACK].T.reshape(11, 10, 10).astype(np.float32)
    write_raster(tmp_path / "s2" / "tc_20m_2020-01-01.tif", inputs, descriptions=list(S2_BANDS_20M))
    r = run("-q", "predict", tmp_path / "s2", tmp_path / "lai", "--region", "tc", "--model", "snap-2.1",
            "--variable", var, "--haze", "off", "--dtype", "float32")  # SNAP's cases are spectra of any colour
    assert r.exit_code == 0, r.output
    got = read(tmp_path / "lai" / f"tc_20m_2020-01-01_{var}.tif").ravel()
    expected = cases[:, 11]
    keep = ~np.isnan(expected)
    err = np.abs(got[keep] - expected[keep])
    assert np.all(err <= np.maximum(0.01, 1e-3 * np.abs(expected[keep])))


# --- scaling --------------------------------------------------------------------


def test_all_storage_forms_give_the_same_lai(tmp_path):
    with rasterio.open(QVIDJA / "qvidja_20m_2023-06-11.tif") as ds:
        dn = ds.read()
    valid = ~(dn == -32768).any(axis=0)
    phys = np.where(valid, dn * 1e-4, np.nan).astype(np.float32)
    d = tmp_path / "s2"
    # float reflectance, NaN nodata
    write_raster(d / "f_20m_2023-06-11.tif", phys, descriptions=list(S2_BANDS_20M))
    # Earth Engine export form: integers x 10000, nothing declared, nodata 0
    ee = np.where(valid, np.round(phys * 1e4), 0).astype(np.int16)
    write_raster(d / "ee_20m_2023-06-11.tif", ee, nodata=0)
    # L2A DN with BOA offset 1000: reflectance = (DN - 1000) / 10000, given on the command line
    l2a = np.where(valid, np.round(phys * 1e4) + 1000, 0).astype(np.uint16)
    l2a[:3] = np.where(valid, np.round(phys[:3] * 1e4), 0)  # angle bands stay x 10000
    write_raster(d / "dn_20m_2023-06-11.tif", l2a, nodata=0)
    outs = {}
    for region, extra in [("f", []), ("ee", []), ("dn", ["--scale", "1e-4", "--offset", "-1000"])]:
        r = run("-q", "predict", d, tmp_path / "lai", "--region", region, *extra)
        assert r.exit_code == 0, r.output
        outs[region] = read(tmp_path / "lai" / f"{region}_20m_2023-06-11_LAI.tif")
    for k in ("ee", "dn"):
        np.testing.assert_allclose(outs[k], outs["f"], atol=2e-4, equal_nan=True)
    assert np.isfinite(outs["f"]).sum() == valid.sum()


def _qvidja_float(scale_refl: float = 1.0, scale_angles: float = 1.0) -> np.ndarray:
    with rasterio.open(QVIDJA / "qvidja_20m_2023-06-11.tif") as ds:
        dn = ds.read()
    valid = ~(dn == -32768).any(axis=0)
    phys = np.where(valid, dn * 1e-4, np.nan)
    phys[:3] *= scale_angles
    phys[3:] *= scale_refl
    return phys.astype(np.float32)


@pytest.mark.parametrize("refl,angles,seen,hint", [
    # float stack stored x 10000, nothing declared
    (1e4, 1.0, "band B3 has a median reflectance of 584",
     "pass --scale 1e-4 (run config: scale = 1e-4 in [predict])"),
    (1e4, 1e4, "band cosVZA has a median cosine of", "gdal_edit.py -scale 1e-4"),  # the angles too
    (1e-4, 1.0, "looks scaled twice", "drop --scale"),  # reflectances scaled twice
])
def test_unphysical_float_stack_fails_the_date_with_what_to_pass(tmp_path, refl, angles, seen, hint):
    d = tmp_path / "s2"
    write_raster(d / "x_20m_2023-06-11.tif", _qvidja_float(refl, angles), descriptions=list(S2_BANDS_20M))
    write_raster(d / "x_20m_2023-06-12.tif", _qvidja_float(), descriptions=list(S2_BANDS_20M))
    r = CliRunner().invoke(cli, ["predict", str(d), str(tmp_path / "lai"), "--region", "x"])
    out = " ".join(r.output.split())  # the log wraps long lines
    assert r.exit_code != 0
    assert "x_20m_2023-06-11.tif" in out and seen in out and "Traceback" not in out
    assert hint in out
    # no product for the bad date, the good date is done, nothing temporary left
    assert sorted(p.name for p in (tmp_path / "lai").iterdir()) == [
        "x_20m_2023-06-12_LAI.tif", "x_20m_2023-06-12_LAI_flags.tif"]


def test_an_offset_applied_twice_fails_the_date_and_offset_0_reads_it(tmp_path):
    """Reflectances that hold the -0.1 offset already, declared with it again: every one 0.1
    lower, the medians still in range, LAI plausible and wrong (4.21 -> 6.01 on a Strickhof date)."""
    d = tmp_path / "s2"
    spectra = np.tile(_qvidja_float(), (1, 3, 3))  # 549 valid pixels (the check judges 100 or more)
    stack = write_raster(d / "x_20m_2023-06-11.tif", spectra, descriptions=list(S2_BANDS_20M))
    with rasterio.open(stack, "r+") as ds:
        ds.offsets = [0.0] * 3 + [-0.1] * 8
    r = CliRunner().invoke(cli, ["predict", str(d), str(tmp_path / "lai"), "--region", "x"])
    out = " ".join(r.output.split())
    assert r.exit_code != 0 and "x_20m_2023-06-11.tif" in out and "Traceback" not in out
    assert "of the valid pixels have green or red reflectance below -0.005" in out and "--offset 0" in out
    assert not (tmp_path / "lai").exists() or not list((tmp_path / "lai").iterdir())
    assert run("-q", "predict", d, tmp_path / "lai", "--region", "x", "--offset", "0").exit_code == 0
    # the rows of a table the same: read with the offset again, refused
    table = tmp_path / "rows.csv"
    v = spectra.reshape(11, -1)
    keep = np.isfinite(v).all(axis=0)
    pd.DataFrame({b: v[k][keep] for k, b in enumerate(S2_BANDS_20M)}).to_csv(table, index=False)
    line = cli_error_line(run("-q", "predict-table", table, tmp_path / "out.csv", "--offset", "-0.1"))
    assert str(table) in line and "of the valid pixels have green or red reflectance below" in line
    assert run("-q", "predict-table", table, tmp_path / "out.csv").exit_code == 0


def test_red_and_nir_swapped_are_said(tmp_path):
    """Red and NIR exchanged gave LAI 0 everywhere (flag 9), without a word."""
    d = tmp_path / "s2"
    spectra = np.tile(_qvidja_float(), (1, 3, 3))
    b4, b8a = list(S2_BANDS_20M).index("B4"), list(S2_BANDS_20M).index("B8A")
    spectra[[b4, b8a]] = spectra[[b8a, b4]]
    write_raster(d / "x_20m_2023-06-11.tif", spectra, descriptions=list(S2_BANDS_20M))
    r = CliRunner().invoke(cli, ["predict", str(d), str(tmp_path / "lai"), "--region", "x"])
    out = " ".join(r.output.split())
    assert r.exit_code == 0 and "red reflectance is above near infrared on 100% of the valid pixels" in out
    assert "x_20m_2023-06-11.tif" in out
    straight = tmp_path / "s2b"
    write_raster(straight / "x_20m_2023-06-11.tif", np.tile(_qvidja_float(), (1, 3, 3)),
                 descriptions=list(S2_BANDS_20M))
    r = CliRunner().invoke(cli, ["predict", str(straight), str(tmp_path / "lai2"), "--region", "x"])
    assert r.exit_code == 0 and "above near infrared" not in r.output


def test_scale_applies_to_float_stacks(tmp_path):
    d = tmp_path / "s2"
    write_raster(d / "big_20m_2023-06-11.tif", _qvidja_float(1e4), descriptions=list(S2_BANDS_20M))
    write_raster(d / "f_20m_2023-06-11.tif", _qvidja_float(), descriptions=list(S2_BANDS_20M))
    assert run("-q", "predict", d, tmp_path / "lai", "--region", "big", "--scale", "1e-4").exit_code == 0
    assert run("-q", "predict", d, tmp_path / "lai", "--region", "f").exit_code == 0
    big = read(tmp_path / "lai" / "big_20m_2023-06-11_LAI.tif")
    np.testing.assert_allclose(big, read(tmp_path / "lai" / "f_20m_2023-06-11_LAI.tif"), atol=2e-5, equal_nan=True)
    assert np.isfinite(big).sum() > 50


# --- streaming and parallel blocks ------------------------------------------------


def test_blocks_and_workers_do_not_change_the_result(tmp_path):
    rng = np.random.default_rng(5)
    data = np.empty((11, 700, 600), dtype=np.float32)
    data[0], data[1], data[2] = 0.995, 0.75, rng.uniform(-1, 1, (700, 600))
    data[3:] = rng.uniform(0.02, 0.35, (8, 700, 600))
    data[:, 100:140, 200:260] = np.nan
    src = write_raster(tmp_path / "s2" / "r_20m_2022-06-01.tif", data, tiled=True, blocksize=256)
    seen = []
    one = predict_file(src, {"LAI": tmp_path / "one.tif"}, options=PredictOptions(block_size=4096, workers=1))
    many = predict_file(src, {"LAI": tmp_path / "many.tif"}, options=PredictOptions(block_size=256, workers=3),
                        progress=lambda d, t: seen.append((d, t)))
    np.testing.assert_array_equal(read(tmp_path / "one.tif"), read(tmp_path / "many.tif"))
    assert seen[-1] == (9, 9) and len(seen) == 9  # 3 x 3 windows of 256 (tile-aligned)
    assert one.n_valid == many.n_valid == 700 * 600 - 40 * 60


# --- resume and atomicity ---------------------------------------------------------




def test_rerun_skips_complete_outputs_and_overwrite_redoes(tmp_path):
    s2 = copy_qvidja(tmp_path / "s2")
    assert run("-q", "predict", s2, tmp_path / "lai", "--region", "qvidja").exit_code == 0
    lai = sorted((tmp_path / "lai").glob("*_LAI.tif"))
    mtimes = [p.stat().st_mtime_ns for p in lai]
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja")
    assert r.exit_code == 0 and "3 skipped" in r.output
    assert [p.stat().st_mtime_ns for p in lai] == mtimes
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja", "--overwrite")
    assert "3 done" in r.output
    # another date's product copied over it is not "complete" (it was trusted)
    lai[0].write_bytes(lai[1].read_bytes())
    assert "1 done, 2 skipped" in run("predict", s2, tmp_path / "lai", "--region", "qvidja").output
    # another model under the same name is not "complete"
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja", "--model", "snap-3.0-s2a")
    assert "3 done" in r.output
    assert rasterio.open(lai[0]).tags()["VERCYE_MODEL"] == "snap-3.0-s2a"


@pytest.mark.parametrize("changed", [("--haze", "off"), ("--offset", "0"), ("--scale", "2e-4"), ("--flags",)])
def test_a_rerun_with_options_that_change_the_values_makes_them_again(tmp_path, changed):
    """Products made with another haze test, scale or offset (a user fixing a wrong offset) were
    kept as complete, and flags asked for later never came."""
    s2 = copy_qvidja(tmp_path / "s2")
    first = ["--no-flags"] if changed == ("--flags",) else []
    assert run("-q", "predict", s2, tmp_path / "lai", "--region", "qvidja", *first).exit_code == 0
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja", *first)
    assert "3 skipped" in r.output
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja", *changed)
    assert r.exit_code == 0 and "3 done" in r.output, r.output
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja", *changed)
    assert "3 skipped" in r.output
    if changed == ("--flags",):
        assert len(list((tmp_path / "lai").glob("*_LAI_flags.tif"))) == 3


def test_a_vrt_date_is_made_again_when_a_part_it_reads_is(tmp_path):
    s2 = copy_qvidja(tmp_path / "parts")
    part = next(s2.glob("*2023-06-11.tif"))
    vrt = tmp_path / "s2" / "qvidja_20m_2023-06-11.vrt"
    vrt.parent.mkdir()
    assert run("-q", "mosaic", s2, "-o", vrt.parent, "--region", "qvidja", "--res", "20").exit_code == 0
    assert vrt.exists()
    assert run("-q", "predict", vrt.parent, tmp_path / "lai", "--region", "qvidja").exit_code == 0
    assert "3 skipped" in run("predict", vrt.parent, tmp_path / "lai", "--region", "qvidja").output
    later = time.time() + 5
    os.utime(part, (later, later))  # the part made again (stack-bands --overwrite); the VRT unchanged
    r = run("predict", vrt.parent, tmp_path / "lai", "--region", "qvidja")
    assert "1 done" in r.output and "2 skipped" in r.output, r.output


def test_the_gdal_block_cache_stays_at_its_size_while_dates_overlap(tmp_path):
    """GDAL's block cache is the process's: a date's environment set it back to GDAL's default (5 %
    of the RAM) at its end while the next date ran (2 dates of 8000² peaked 1.86 GB, 0.93 one by one)."""
    from rasterio._env import get_gdal_config

    s2 = copy_qvidja(tmp_path / "s2")
    seen = []
    predict_dir(s2, tmp_path / "lai", region="qvidja", options=PredictOptions(gdal_cache_mb=32, overwrite=True),
                on_done=lambda res: seen.append(int(get_gdal_config("GDAL_CACHEMAX"))))
    assert seen == [32 * 1024 * 1024] * 3


def test_interrupted_run_leaves_no_final_or_temp_file(tmp_path, monkeypatch):
    s2 = copy_qvidja(tmp_path / "s2")
    import vercye_lai.predict.file as predict_mod  # where the blocks are run

    real = predict_mod.predict_block
    calls = {"n": 0}

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if the user hit Ctrl-C mid-date
        return real(*a, **k)

    monkeypatch.setattr(predict_mod, "predict_block", dying)
    out = tmp_path / "lai"
    with pytest.raises(KeyboardInterrupt):
        predict_dir(s2, out, region="qvidja", options=PredictOptions(workers=1, block_size=64))
    # the first date finished, the second was interrupted: no trace of it
    names = sorted(p.name for p in out.iterdir())
    assert names == ["qvidja_20m_2023-06-09_LAI.tif", "qvidja_20m_2023-06-09_LAI_flags.tif"]
    monkeypatch.setattr(predict_mod, "predict_block", real)
    # a leftover temporary file of a killed run is ignored and cleaned
    (out / ".qvidja_20m_2023-06-11_LAI.tif.abc123.part").write_bytes(b"half")
    results = predict_dir(s2, out, region="qvidja")
    assert [r.status for r in results] == ["skipped", "done", "done"]
    assert not list(out.glob(".*"))


# --- bad input ----------------------------------------------------------------------


def good_stack() -> np.ndarray:
    with rasterio.open(QVIDJA / "qvidja_20m_2023-06-09.tif") as ds:
        return ds.read()


def first_stack(tmp_path):
    from vercye_lai.stack import open_stack

    return open_stack(next((tmp_path / "s2").iterdir()), S2_BANDS_20M)


def test_wrong_band_count(tmp_path):
    write_raster(tmp_path / "s2" / "r_20m_2022-06-01.tif", good_stack()[:10], nodata=-32768)
    with pytest.raises(BandError, match="has 10 bands, expected 11"):
        first_stack(tmp_path)
    [res] = predict_dir(tmp_path / "s2", tmp_path / "lai", region="r")
    assert res.status == "failed" and "r_20m_2022-06-01.tif: has 10 bands" in res.error


def test_bands_out_of_order_cli(tmp_path):
    names = list(S2_BANDS_20M)
    names[3], names[4] = names[4], names[3]  # B4 before B3
    write_raster(tmp_path / "s2" / "r_20m_2022-06-01.tif", good_stack(), nodata=-32768, descriptions=names)
    r = run("predict", tmp_path / "s2", tmp_path / "lai", "--region", "r")
    assert r.exit_code == 1
    assert "r_20m_2022-06-01.tif" in r.output and "band 4 is 'B4' but should be 'B3'" in r.output
    assert not (tmp_path / "lai" / "r_20m_2022-06-01_LAI.tif").exists()


def test_not_georeferenced(tmp_path):
    p = write_raster(tmp_path / "s2" / "r_20m_2022-06-01.tif", good_stack(), crs=None,
                     transform=rasterio.Affine.identity())
    with pytest.raises(DataIOError, match="not georeferenced") as exc:
        first_stack(tmp_path)
    assert isinstance(exc.value, OSError) and str(p) in str(exc.value)


def test_corrupt_geotiff_fails_that_date_only(tmp_path):
    s2 = copy_qvidja(tmp_path / "s2")
    bad = s2 / "qvidja_20m_2023-06-11.tif"
    bad.write_bytes(bad.read_bytes()[:600])  # truncated download
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja")
    assert r.exit_code == 1
    assert "2 done" in r.output and "1 failed" in r.output and bad.name in r.output
    assert sorted(p.name for p in (tmp_path / "lai").glob("*_LAI.tif")) == [
        "qvidja_20m_2023-06-09_LAI.tif", "qvidja_20m_2023-06-14_LAI.tif"]


def test_no_files_for_region_or_resolution(tmp_path):
    s2 = copy_qvidja(tmp_path / "s2")
    with pytest.raises(NoDataFoundError, match=r"no 'qvidja_60m_<date>"):
        predict_dir(s2, tmp_path / "lai", region="qvidja", resolution=60)
    r = run("predict", s2, tmp_path / "lai", "--region", "poltava")
    assert r.exit_code == 1 and "no 'poltava_20m_<date>.{vrt|tif}' files" in r.output
    assert "Traceback" not in r.output


def test_unknown_model_and_variable(tmp_path):
    s2 = copy_qvidja(tmp_path / "s2")
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja", "--model", "snap-4.0")
    assert r.exit_code == 1 and "unknown model 'snap-4.0'" in r.output
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja", "--variable", "NDVI")
    assert r.exit_code == 2 and "NDVI" in r.output
    assert not (tmp_path / "lai").exists() or not list((tmp_path / "lai").iterdir())


def test_verbose_shows_traceback(tmp_path):
    r = CliRunner().invoke(cli, ["-v", "predict", str(tmp_path), str(tmp_path / "o"), "--region", "x"])
    assert r.exit_code != 0 and isinstance(r.exception, LaiError)


def test_two_stacks_for_one_date_are_an_error_naming_both(tmp_path):
    s2 = copy_qvidja(tmp_path / "s2")
    # what f"{20.0}m" gives in a user's script: the same region, resolution and date
    shutil.copy(s2 / "qvidja_20m_2023-06-11.tif", s2 / "qvidja_20.0m_2023-06-11.tif")
    r = run("-q", "predict", s2, tmp_path / "lai", "--region", "qvidja")
    assert r.exit_code == 1 and "Traceback" not in r.output
    line = " ".join(r.output.split())
    assert "two files for qvidja on 2023-06-11" in line
    assert "qvidja_20.0m_2023-06-11.tif" in line and "qvidja_20m_2023-06-11.tif" in line
    assert not (tmp_path / "lai").exists() or not list((tmp_path / "lai").iterdir())
    # a mosaic .vrt beside its date's .tif is the designed preference, not a duplicate
    (s2 / "qvidja_20.0m_2023-06-11.tif").rename(s2 / "qvidja_20.0m_2023-06-11.vrt")
    assert find_rasters(s2, "qvidja", 20)[dt.date(2023, 6, 11)].suffix == ".vrt"


def test_out_of_range_choice_is_tagged_and_a_change_recomputes(tmp_path):
    s2 = copy_qvidja(tmp_path / "s2")
    assert run("-q", "predict", s2, tmp_path / "lai", "--region", "qvidja").exit_code == 0
    lai = tmp_path / "lai" / "qvidja_20m_2023-06-09_LAI.tif"
    with rasterio.open(lai) as ds:
        assert ds.tags()["VERCYE_OUT_OF_RANGE"] == "clamp"  # the default
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja", "--out-of-range", "nodata")
    assert "3 done, 0 skipped" in r.output
    with rasterio.open(lai) as ds:
        assert ds.tags()["VERCYE_OUT_OF_RANGE"] == "nodata"
    assert "3 skipped" in run("predict", s2, tmp_path / "lai", "--region", "qvidja",
                              "--out-of-range", "nodata").output
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja", "--out-of-range", "drop")
    assert r.exit_code == 2 and "clamp" in r.output


# --- uncertainty (LEAF error networks) ---------------------------------------------------


def _error_net_float64(x: np.ndarray, csv_name: str) -> np.ndarray:
    """LEAF's error network for LAI, computed from its CSV in float64, independently."""
    from importlib import resources

    from vercye_lai.model.registry import parse_leaf_csv

    path = Path(str(resources.files("vercye_lai.model") / "weights" / "leaf" / csv_name))
    raw = next(r for r in parse_leaf_csv(path) if r["id"] == 1)  # variable id 1: LAI
    xn = x * raw["in_scale"][:, None] + raw["in_offset"][:, None]
    h = np.tanh(raw["w1"] @ xn + raw["b1"][:, None])
    y = raw["w2"] @ h + raw["b2"][0]
    return np.maximum((y - raw["out_b"][0]) / raw["out_w"][0], 0)


def test_uncertainty_raster_is_the_error_network_output(tmp_path):
    s2 = copy_qvidja(tmp_path / "s2")
    r = run("-q", "predict", s2, tmp_path / "lai", "--region", "qvidja", "--uncertainty", "--dtype", "float32")
    assert r.exit_code == 0, r.output
    src = s2 / "qvidja_20m_2023-06-11.tif"
    with rasterio.open(src) as ds:
        raw = ds.read(masked=True)
    unc_path = tmp_path / "lai" / "qvidja_20m_2023-06-11_LAI_uncertainty.tif"
    unc = read(unc_path)
    valid = ~raw.mask.any(axis=0)
    expected = _error_net_float64(raw.data[:, valid].astype(np.float64) * 1e-4,
                                  "s2_sl2p_weiss_or_prosail_NNT3_Single_0_1_Error.csv")
    np.testing.assert_allclose(unc[valid], expected, atol=2e-5)
    assert np.isnan(unc[~valid]).all() and 0 < np.nanmean(unc) < 3  # LAI units
    with rasterio.open(unc_path) as ds:
        assert ds.descriptions == ("LAI_uncertainty",) and ds.units == ("m2 m-2",)
    # a rerun skips; products made without uncertainty are redone when it is asked for
    assert "3 skipped" in run("predict", s2, tmp_path / "lai", "--region", "qvidja", "--uncertainty",
                              "--dtype", "float32").output
    unc_path.unlink()
    assert "1 done, 2 skipped" in run("predict", s2, tmp_path / "lai", "--region", "qvidja",
                                      "--uncertainty", "--dtype", "float32").output


def test_uncertainty_needs_an_error_network(tmp_path):
    s2 = copy_qvidja(tmp_path / "s2")
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja", "--model", "snap-3.0-s2a", "--uncertainty")
    assert r.exit_code == 1 and "has no error network" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "lai").exists() or not list((tmp_path / "lai").iterdir())
    # a Sentinel-2 network as the Landsat model: each Landsat date failed on its band count
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja", "--landsat-model", "sl2p")
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "landsat_model: sl2p takes cosVZA" in out and "(sl2p-l8, or a Landsat" in out
    # an error network given as the model wrote its σ as the LAI product
    from importlib import resources

    errors = Path(str(resources.files("vercye_lai.model") / "weights" / "leaf" /
                      "s2_sl2p_weiss_or_prosail_NNT3_Single_0_1_Error.csv"))
    r = run("predict", s2, tmp_path / "lai", "--region", "qvidja", "--model", errors)
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "is an error network" in out and "without '_Error.csv', and --uncertainty" in out


@pytest.mark.slow  # (the Strickhof stacks take 1.3 s to make: the quick loop keeps under 30 s)
def test_commands_take_region_and_resolution_from_the_files(tmp_path, strickhof_stacks):
    """The demo's stacks are 10 m and of one region: predict, analyze, cube and validate need
    neither --region nor --resolution; a wrong one says what is there."""
    from vercye_lai.run.demo import demo_fields, demo_insitu

    span = ("--start-date", "2022-05-01", "--end-date", "2022-05-20")
    lai = tmp_path / "lai"
    r = run("-q", "predict", strickhof_stacks, "-o", lai, *span)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in lai.glob("*_LAI.tif"))[0].startswith("strickhof_10m_2022-05-")
    r = run("-q", "analyze", lai, demo_fields(), "-o", tmp_path / "an", "--id-column", "name")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "an").glob("strickhof_*_STATS.csv"))) == 3
    assert run("-q", "cube", lai, tmp_path / "c.nc").exit_code == 0
    r = run("-q", "validate", demo_insitu(), lai, "-o", tmp_path / "val", "--group-column", "parcel")
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["-q", "predict", str(strickhof_stacks), "-o", str(tmp_path / "x"), "--res", "20"])
    assert r.exit_code == 1
    assert "found strickhof_10m_* (34 dates): use --resolution 10" in " ".join(r.output.split())


def test_a_truncated_stack_is_named_truncated_not_ungeoreferenced(tmp_path, strickhof_stacks):
    """A demo stack cut to 3 kB (a half-copied sync) keeps its first directory but loses its
    georeferencing tags: the error says the file is truncated, not that it lacks a CRS."""
    s2 = tmp_path / "s2"
    s2.mkdir()
    stack = sorted(strickhof_stacks.glob("*.tif"))[0]
    (s2 / stack.name).write_bytes(stack.read_bytes()[:3000])
    r = run("-q", "predict", s2, "-o", tmp_path / "lai")
    assert r.exit_code == 1
    assert "raster is truncated or damaged" in r.output and "not georeferenced" not in r.output


def test_snap_3_0_picks_each_stacks_unit_network(tmp_path):
    """A season of S2A, S2B and S2C dates predicted with --model snap-3.0: each date gets the
    coefficients of its unit (S2C: S2B's), the same pixels as the explicit model gives, and
    its product says which; a stack without a PLATFORM tag is a clear error for that date."""
    stacks = copy_qvidja(tmp_path / "stacks")
    units = {"2023-06-09": "sentinel-2a", "2023-06-11": "sentinel-2b", "2023-06-14": "sentinel-2c"}
    for date, platform in units.items():
        with rasterio.open(stacks / f"qvidja_20m_{date}.tif", "r+") as ds:
            ds.update_tags(PLATFORM=platform)
    for model in ("snap-3.0", "snap-3.0-s2a", "snap-3.0-s2b"):
        r = run("-q", "predict", stacks, tmp_path / model, "--region", "qvidja", "--res", "20", "--model", model)
        assert r.exit_code == 0, r.output

    def lai(model, date):
        with rasterio.open(tmp_path / model / f"qvidja_20m_{date}_LAI.tif") as ds:
            return ds.read(1), ds.tags()

    for date, platform in units.items():
        unit = "snap-3.0-s2a" if platform == "sentinel-2a" else "snap-3.0-s2b"
        other = "snap-3.0-s2b" if unit == "snap-3.0-s2a" else "snap-3.0-s2a"
        got, tags = lai("snap-3.0", date)
        assert np.array_equal(got, lai(unit, date)[0], equal_nan=True), date
        assert not np.array_equal(got, lai(other, date)[0], equal_nan=True), date  # the units' networks differ
        assert tags["VERCYE_MODEL"] == unit and tags["VERCYE_PLATFORM"] == platform

    with rasterio.open(stacks / "qvidja_20m_2023-06-14.tif", "r+") as ds:
        ds.update_tags(PLATFORM="")
    r = run("-q", "predict", stacks, tmp_path / "untagged", "--region", "qvidja", "--res", "20", "--model",
            "snap-3.0")
    assert "qvidja_20m_2023-06-14.tif: snap-3.0 picks the network" in r.output
    assert "choose snap-3.0-s2a or snap-3.0-s2b" in r.output


def test_phases_time_each_step_and_change_nothing(tmp_path):
    src = copy_qvidja(tmp_path / "s2")
    stack = sorted(src.glob("*.tif"))[0]
    phases = Phases()
    predict_file(stack, {"LAI": tmp_path / "timed.tif"}, options=PredictOptions(workers=2), phases=phases)
    predict_file(stack, {"LAI": tmp_path / "plain.tif"}, options=PredictOptions(workers=2))
    assert set(phases.seconds) == {"read", "check", "network", "encode", "write", "overviews", "cog", "cog_flags"}
    assert all(s > 0 for s in phases.seconds.values())
    np.testing.assert_array_equal(read(tmp_path / "timed.tif"), read(tmp_path / "plain.tif"))
    NO_PHASES.add("read", 1.0)  # the default timer keeps nothing
    assert NO_PHASES.seconds == {}


@pytest.mark.parametrize("dtype", ["int16", "float32", "lerc"])
def test_plain_geotiffs_without_cog(tmp_path, dtype):
    """``--no-cog``: tiled GeoTIFFs without overviews (each codec and predictor in the GTiff
    driver's own spelling), the same values as the COGs."""
    src = big_stack(tmp_path / "s2" / "big_20m_2023-06-09.tif", 600, 530)
    cog, plain = (product_paths(src, tmp_path / d, ["LAI"]) for d in ("cog", "plain"))
    predict_file(src, cog, options=PredictOptions(workers=2, dtype=dtype))
    res = predict_file(src, plain, options=PredictOptions(workers=2, dtype=dtype, cog=False, uncertainty=True))
    assert res.status == "done"
    for name in ("LAI", "LAI_flags", "LAI_uncertainty"):
        with rasterio.open(plain["LAI"].with_name(plain["LAI"].name.replace("LAI", name))) as ds:
            assert ds.overviews(1) == [] and ds.block_shapes[0] == (512, 512) and ds.compression is not None
    for name in ("LAI", "LAI_flags"):
        a, b = (p["LAI"].with_name(p["LAI"].name.replace("LAI", name)) for p in (cog, plain))
        np.testing.assert_array_equal(read(a), read(b))


@pytest.mark.parametrize("budget_mb", [pytest.param(0, marks=pytest.mark.slow), 256])  # (0: the copy path, in CI)
def test_cog_overviews_are_gdals_own(tmp_path, monkeypatch, budget_mb):
    """A COG's overviews, computed as its blocks are written, equal those GDAL's COG driver
    computes from its full-resolution values (odd width: weighted windows), LAI's AVERAGE and
    the flags' NEAREST, whether the scratch is in memory or on disk; nothing is left behind;
    whatever the caller's GDAL settings (cloud ones hide a file's neighbours: the COGs of
    predict-stac had no overviews)."""
    src = big_stack(tmp_path / "s2" / "odd_20m_2023-06-09.tif", 1100, 1027)
    out = product_paths(src, tmp_path / "lai", ["LAI"])
    copies = []
    real_copy = writer.rasterio.shutil.copy
    monkeypatch.setattr(writer.rasterio.shutil, "copy",
                        lambda *a, **kw: copies.append(kw["overviews"]) or real_copy(*a, **kw))
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        predict_file(src, out, options=PredictOptions(workers=2, block_size=256, scratch_memory_mb=budget_mb))
    assert copies == ["FORCE_USE_EXISTING"] * 2  # GDAL computed none
    flags = out["LAI"].with_name(out["LAI"].stem + "_flags.tif")
    assert sorted(p.name for p in out["LAI"].parent.iterdir()) == [out["LAI"].name, flags.name]
    for product, resampling in ((out["LAI"], "AVERAGE"), (flags, "NEAREST")):
        with rasterio.open(product) as ds:
            full, nodata, n = ds.read(1), ds.nodata, len(ds.overviews(1))
        assert n == 2  # 550 x 513, 275 x 256
        ref = tmp_path / f"ref_{resampling}.tif"
        write_raster(tmp_path / "full.tif", full, nodata=nodata, tiled=True)
        real_copy(tmp_path / "full.tif", ref, driver="COG", blocksize=512, compress="ZSTD", resampling=resampling)
        for level in range(n):
            with rasterio.open(product, OVERVIEW_LEVEL=level) as a, rasterio.open(ref, OVERVIEW_LEVEL=level) as b:
                np.testing.assert_array_equal(a.read(1), b.read(1))


@pytest.mark.parametrize("budget_mb", [0, 1, 512])
def test_cog_scratch_in_memory_within_its_budget_else_on_disk(tmp_path, monkeypatch, budget_mb):
    """The scratch a COG is copied from stays in memory while the budget allows (one write
    of the product, none of a scratch), else it goes to disk; the products are the same."""
    src = copy_qvidja(tmp_path / "s2")
    stack = sorted(src.glob("*.tif"))[0]
    with rasterio.open(stack) as ds:
        # bytes of the uint8 flags' raw whole 512² tiles; the int16 LAI takes twice
        raw = -(-ds.width // 512) * 512 * -(-ds.height // 512) * 512
    taken = 1024 * 1024 - raw if budget_mb == 1 else 0  # of 1 MB, room left for the flags only
    monkeypatch.setattr(writer.SCRATCH_MEMORY, "used", taken)
    sources, real_copy = {}, writer.rasterio.shutil.copy

    def spy(scratch, dst, **kw):
        sources[kw["resampling"]] = str(scratch)
        assert writer.SCRATCH_MEMORY.used <= budget_mb * 1024 * 1024
        return real_copy(scratch, dst, **kw)

    monkeypatch.setattr(writer.rasterio.shutil, "copy", spy)
    out = tmp_path / f"lai_{budget_mb}" / "LAI.tif"
    predict_file(stack, {"LAI": out}, options=PredictOptions(workers=2, scratch_memory_mb=budget_mb))
    in_memory = {k: v.startswith("/vsimem/") for k, v in sources.items()}
    assert in_memory == {0: {"AVERAGE": False, "NEAREST": False}, 1: {"AVERAGE": False, "NEAREST": True},
                         512: {"AVERAGE": True, "NEAREST": True}}[budget_mb]
    assert writer.SCRATCH_MEMORY.used == taken  # every reservation given back
    assert sorted(p.name for p in out.parent.iterdir()) == ["LAI.tif", "LAI_flags.tif"]  # no scratch left
    monkeypatch.undo()
    ref = tmp_path / "ref" / "LAI.tif"
    predict_file(stack, {"LAI": ref}, options=PredictOptions(workers=1))
    for a, b in ((out, ref), (out.with_name("LAI_flags.tif"), ref.with_name("LAI_flags.tif"))):
        np.testing.assert_array_equal(read(a), read(b))


def test_dates_overlap_by_their_tails_a_bounded_number():
    active, peak, log = [0], [0], []
    lock = threading.Lock()

    def job(i):
        def run(blocks_done):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                log.append(("start", i))
            time.sleep(0.02)  # the blocks
            blocks_done()
            time.sleep(0.05)  # the COG copies: the next date starts meanwhile
            with lock:
                active[0] -= 1
                log.append(("end", i))
            if i == 2:
                raise DataIOError("a bad date")
            return i
        return run

    futures = list(pipelined(job(i) for i in range(5)))
    assert [f.result() for f in futures if f.exception() is None] == [0, 1, 3, 4]
    assert peak[0] == 2  # overlapped, never a third date in memory
    assert log.index(("start", 1)) < log.index(("end", 0))

    # many workers: more tails overlap, still bounded (one computing, `finishing` finishing)
    peak[0] = 0
    futures = list(pipelined((job(i) for i in range(6)), finishing=2))
    assert [f.result() for f in futures if f.exception() is None] == [0, 1, 3, 4, 5]
    assert peak[0] == 3
    assert [finishing_dates(w) for w in (1, 2, 3, 16)] == [1, 1, 1, 8]


@pytest.mark.slow  # a subprocess each, 1.5-2.2 s
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_terminated_predict_leaves_no_partial_file(tmp_path, sig):
    """Ctrl-C, SIGTERM (a scheduler's cancel) or SIGHUP mid-date: exit 128 + the signal, the
    finished date's products kept, the date under way stopped, no temporary file."""
    import signal
    import subprocess
    import sys

    for day in ("2023-06-09", "2023-06-10"):
        big_stack(tmp_path / "s2" / f"big_20m_{day}.tif", 600, 530)
    out = tmp_path / "lai"
    # the signal comes from inside, on the 3rd block of the second date: no race with the start-up
    script = f"""
import os, signal, sys, time
import vercye_lai.predict.file as f
from vercye_lai.cli.main import main
orig, seen = f.predict_block, []
def block(*a, **kw):
    seen.append(1)
    if len(seen) == 12:  # 9 blocks a date
        os.kill(os.getpid(), signal.{sig})
        time.sleep(1)  # the main thread takes the signal meanwhile, however loaded the machine
    return orig(*a, **kw)
f.predict_block = block
sys.argv = ["vercye-lai", "-q", "predict", {str(tmp_path / "s2")!r}, {str(out)!r}, "--block-size", "256"]
main()
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # not ignored
    assert r.returncode == 128 + getattr(signal, sig), r.stderr
    assert f"stopped by {sig}" in r.stderr and "Aborted!" not in r.stderr  # one line, not click's too
    assert sorted(p.name for p in out.iterdir()) == ["big_20m_2023-06-09_LAI.tif", "big_20m_2023-06-09_LAI_flags.tif"]
    with rasterio.open(out / "big_20m_2023-06-09_LAI.tif") as ds:  # complete: every block written
        assert (ds.read(1) != ds.nodata).sum() == 600 * 530 - 200 * 60  # all but the stack's hole
