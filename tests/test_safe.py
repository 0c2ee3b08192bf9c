"""stack-safe on a real (cropped) L2A SAFE product, and on the full tile when available."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import DATA, cli_error_line
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from vercye_lai.io import read_values
from vercye_lai import predict
from vercye_lai.acquire.angles import interpolate_angles, mean_angles, parse_tile_angles
from vercye_lai.acquire.safe import (
    group_by_date,
    open_safe,
    stack_safe,
    stack_tiles,
    write_date_stack,
)
from vercye_lai.cli.main import cli
from vercye_lai.errors import InputError
from vercye_lai.model.sl2p import FLAG_HAZE, FLAG_NODATA
from vercye_lai.naming import flags_path
from vercye_lai.stack import S2_BANDS_20M, STACK_NODATA

NAME = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454"
MINI = DATA / "safe_T29UNU" / f"{NAME}.SAFE"
GRANULE = "GRANULE/L2A_T29UNU_A038058_20221005T115407"
R60 = f"{GRANULE}/IMG_DATA/R60m"
UTM = "EPSG:32629"
# the crop: x 521580–532380, y 5892840–5900040 (180 × 120 px at 60 m)
CROP = (521580.0, 5892840.0, 532380.0, 5900040.0)
DATE = dt.date(2022, 10, 5)


def utm_region(left, bottom, right, top):
    """A UTM box as a shapely geometry in EPSG:4326 (what regions are)."""
    return shape(transform_geom(UTM, "EPSG:4326", mapping(box(left, bottom, right, top))))


def jp2(safe: Path, band: str, res: int = 60) -> np.ndarray:
    path = next((safe / GRANULE / "IMG_DATA" / f"R{res}m").glob(f"*_{band}_{res}m.jp2"))
    with rasterio.open(path) as ds:
        return ds.read(1)


def read_stack(path):
    with rasterio.open(path) as ds:
        assert (
            ds.descriptions == S2_BANDS_20M and ds.nodata == STACK_NODATA and ds.scales[0] == 1e-4
        )
        return ds.read(), ds.transform, ds.crs


@pytest.fixture(scope="module")
def inner_stack(tmp_path_factory):
    """Stack at 60 m over an inner box of the crop: 2 px margin on each side."""
    out = tmp_path_factory.mktemp("inner")
    region = utm_region(CROP[0] + 120, CROP[1] + 120, CROP[2] - 120, CROP[3] - 120)
    paths = stack_safe([MINI], region, "ie", 60, out)
    return read_stack(paths[DATE]) + (paths[DATE],)


def test_open_safe_reads_the_metadata():
    t = open_safe(MINI)
    assert t.product == NAME and t.tile == "29UNU" and t.date == DATE
    assert t.sensing_time == dt.datetime(2022, 10, 5, 11, 56, 49, 581767, tzinfo=dt.UTC)
    assert t.quantification == 10000 and t.offsets["B4"] == -1000 and t.offsets["B8A"] == -1000
    assert t.crs.to_epsg() == 32629 and t.bounds == (499980, 5790240, 609780, 5900040)
    assert set(t.images["SCL"]) == {20, 60} and set(t.images["B11"]) == {60}


def test_reflectance_arithmetic_and_scl_mask(inner_stack):
    data, transform, crs, _ = inner_stack
    assert crs.to_epsg() == 32629 and transform.a == 60
    # the output grid is the product's 60 m grid: find the output's offset in the crop
    c0, r0 = round((transform.c - CROP[0]) / 60), round((CROP[3] - transform.f) / 60)
    h, w = data.shape[1:]
    scl = jp2(MINI, "SCL")[r0 : r0 + h, c0 : c0 + w]
    masked = np.isin(scl, [0, 1, 3, 8, 9, 10, 11])
    inside = data[0] != STACK_NODATA
    assert masked.any() and (~masked).any()
    assert not (inside & masked).any()  # every masked class is nodata
    # the stored int16 is round((DN − 1000) / 10000 × 10000) = DN − 1000, exactly
    for i, band in enumerate(["B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12"], start=3):
        dn = jp2(MINI, band)[r0 : r0 + h, c0 : c0 + w].astype(int)
        ok = inside & (dn > 0)
        np.testing.assert_array_equal(data[i][ok], dn[ok] - 1000)
    # clear pixels inside the region (not on the polygon's edge) are all there
    core = np.zeros_like(inside)
    core[2:-2, 2:-2] = True
    assert (inside[core] == ~masked[core]).all()


def test_angles_are_the_interpolated_metadata_grids(inner_stack):
    data, transform, crs, _ = inner_stack
    a = interpolate_angles(
        parse_tile_angles(MINI / GRANULE / "MTD_TL.xml"),
        transform=transform,
        crs=crs,
        shape=data.shape[1:],
    )
    ok = data[0] != STACK_NODATA
    np.testing.assert_allclose(
        data[1][ok] * 1e-4, np.cos(np.radians(a["sun_zenith"][ok])), atol=1e-4
    )
    np.testing.assert_allclose(
        data[0][ok] * 1e-4, np.cos(np.radians(a["view_zenith"][ok])), atol=1e-4
    )
    raa = np.cos(np.radians(a["sun_azimuth"] - a["view_azimuth"]))
    np.testing.assert_allclose(data[2][ok] * 1e-4, raa[ok], atol=1e-4)


def test_coarser_resolution_averages_and_masks_any_invalid_part(tmp_path):
    region = utm_region(CROP[0] + 1, CROP[1] + 1, CROP[2] - 1, CROP[3] - 1)
    stack, grid = stack_tiles([open_safe(MINI)], region, 120)
    c0, r0 = round((grid.transform.c - CROP[0]) / 60), round((CROP[3] - grid.transform.f) / 60)
    assert (c0, r0) == (0, 0)  # anchored on the tile corner, which the crop shares
    b4 = jp2(MINI, "B04")[: 2 * grid.shape[0], : 2 * grid.shape[1]].astype(float)
    scl = jp2(MINI, "SCL")[: 2 * grid.shape[0], : 2 * grid.shape[1]]
    h, w = b4.shape[0] // 2, b4.shape[1] // 2

    def blocks(a):
        return a[: 2 * h, : 2 * w].reshape(h, 2, w, 2)

    want = (blocks(b4).mean(axis=(1, 3)) - 1000) / 10000
    any_bad = blocks(np.isin(scl, [0, 1, 3, 8, 9, 10, 11])).any(axis=(1, 3))
    got = stack["B4"][:h, :w]
    ok = np.isfinite(got)
    assert not (ok & any_bad).any()
    core = np.zeros_like(ok)
    core[1:-1, 1:-1] = True
    assert ok[core & ~any_bad].all()
    np.testing.assert_allclose(got[ok], want[ok], atol=1e-6)


def test_zip_gives_the_same_stack(tmp_path, inner_stack):
    zpath = tmp_path / f"{NAME}.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in MINI.rglob("*"):
            if f.is_file():
                zf.write(f, f"{NAME}.SAFE/{f.relative_to(MINI).as_posix()}")
    region = utm_region(CROP[0] + 120, CROP[1] + 120, CROP[2] - 120, CROP[3] - 120)
    paths = stack_safe([zpath], region, "ie", 60, tmp_path / "out")
    np.testing.assert_array_equal(read_stack(paths[DATE])[0], inner_stack[0])


def _copy_safe(src: Path, dst: Path, edit=None) -> Path:
    """Copy a SAFE; ``edit(band, array)`` may change the 60 m images (re-encoded losslessly)."""
    shutil.copytree(src, dst)
    if edit:
        for f in (dst / R60).glob("*.jp2"):
            with rasterio.open(f) as ds:
                arr, prof = ds.read(1), ds.profile
            prof = {k: v for k, v in prof.items() if k not in ("blockxsize", "blockysize", "tiled")}
            with rasterio.open(f, "w", **prof, QUALITY=100, REVERSIBLE="YES") as ds:
                ds.write(edit(f.name.split("_")[-2], arr), 1)
    return dst


def test_two_tiles_of_one_date_are_mosaicked(tmp_path, inner_stack):
    """Left half from one product, right half from another tile: the whole comes back."""

    def half(keep_left):
        def edit(band, arr):
            arr = arr.copy()
            if band != "SCL":
                arr[:, 90:] = 0 if keep_left else arr[:, 90:]
                arr[:, :90] = arr[:, :90] if keep_left else 0
            return arr

        return edit

    a = _copy_safe(MINI, tmp_path / f"{NAME}.SAFE", half(True))
    b_name = NAME.replace("T29UNU", "T29UNV")  # another tile id, same date
    b = _copy_safe(MINI, tmp_path / f"{b_name}.SAFE", half(False))
    mtd = (b / "MTD_MSIL2A.xml").read_text().replace(NAME, b_name)
    (b / "MTD_MSIL2A.xml").write_text(mtd)
    tiles = group_by_date([open_safe(a), open_safe(b)])[DATE]
    assert len(tiles) == 2
    region = utm_region(CROP[0] + 120, CROP[1] + 120, CROP[2] - 120, CROP[3] - 120)
    dst = tmp_path / "out" / "ie_60m_2022-10-05.tif"
    assert write_date_stack(tiles, region, dst, 60)
    np.testing.assert_array_equal(read_stack(dst)[0], inner_stack[0])


def test_same_tile_twice_keeps_the_latest_processing():
    t = open_safe(MINI)
    older = dataclasses.replace(t, product=NAME.replace("20221005T164454", "20221005T120000"))
    assert group_by_date([t, older])[DATE] == [t]
    assert group_by_date([older, t])[DATE] == [t]


def test_resumable(tmp_path):
    region = utm_region(CROP[0] + 600, CROP[1] + 600, CROP[0] + 1200, CROP[1] + 1200)
    dst = stack_safe([MINI], region, "ie", 60, tmp_path)[DATE]
    mtime = dst.stat().st_mtime_ns
    assert not write_date_stack([open_safe(MINI)], region, dst, 60)
    assert dst.stat().st_mtime_ns == mtime
    assert write_date_stack([open_safe(MINI)], region, dst, 60, overwrite=True)


@pytest.mark.slow  # 0.5 s
def test_a_stack_made_with_other_options_or_region_is_made_again(tmp_path):
    region = utm_region(CROP[0] + 600, CROP[1] + 600, CROP[0] + 1200, CROP[1] + 1200)
    dst = stack_safe([MINI], region, "ie", 60, tmp_path)[DATE]
    # made with other options or another region: made again (it was kept: "acquire skipped")
    assert write_date_stack([open_safe(MINI)], region, dst, 60, cloud_buffer=2)
    assert not write_date_stack([open_safe(MINI)], region, dst, 60, cloud_buffer=2)
    assert write_date_stack([open_safe(MINI)], region, dst, 60, cloud_buffer=2, scl_classes=(8, 9))
    wider = utm_region(CROP[0] + 600, CROP[1] + 600, CROP[0] + 1800, CROP[1] + 1800)
    assert write_date_stack([open_safe(MINI)], wider, dst, 60, cloud_buffer=2, scl_classes=(8, 9))
    with rasterio.open(dst, "r+") as ds:  # a stack of a version that did not say how it was made
        ds.update_tags(VERCYE_STACK_MADE="")
    assert write_date_stack([open_safe(MINI)], wider, dst, 60, cloud_buffer=2, scl_classes=(8, 9))


def run_stack_safe(safe, geometry, out_dir, *extra):
    """``vercye-lai -q stack-safe SAFE --geometry G --resolution 60 --out-dir D [extra]``."""
    args = ["-q", "stack-safe", str(safe), "--geometry", str(geometry), "--resolution", "60"]
    return CliRunner().invoke(cli, [*args, "--out-dir", str(out_dir), *extra])


def test_safe_without_tile_metadata_is_an_error(tmp_path):
    bad = _copy_safe(MINI, tmp_path / f"{NAME}.SAFE")
    (bad / GRANULE / "MTD_TL.xml").unlink()
    with pytest.raises(InputError, match="no GRANULE/\\*/MTD_TL.xml") as e:
        open_safe(bad)
    assert str(bad) in str(e.value)
    r = run_stack_safe(
        bad, DATA / "naturalearth" / "poltava_oblast_ne10m.geojson", tmp_path / "out"
    )
    line = cli_error_line(r)
    assert str(bad) in line and "MTD_TL.xml" in line
    (bad / "MTD_MSIL2A.xml").unlink()
    with pytest.raises(InputError, match="MTD_MSIL2A.xml is missing"):
        open_safe(bad)


def test_a_band_file_cut_short_is_an_error_naming_it(tmp_path, monkeypatch):
    """A JP2 of many tiles, cut short (a download that stopped), decoded on GDAL's own threads
    (its default for JP2) raised nothing: stack-safe wrote a stack whose B4 held garbage."""
    import rasterio.shutil

    monkeypatch.setenv("GDAL_NUM_THREADS", "ALL_CPUS")  # GDAL's JP2 default, whatever the machine says
    bad = _copy_safe(MINI, tmp_path / f"{NAME}.SAFE")
    b04 = next((bad / R60).glob("*_B04_60m.jp2"))
    tiled = tmp_path / "tiled.jp2"
    rasterio.shutil.copy(b04, tiled, driver="JP2OpenJPEG", blockxsize=32, blockysize=32, reversible="YES",
                         quality=100)
    tiled.write_bytes(tiled.read_bytes()[: tiled.stat().st_size // 2])
    b04.unlink()
    tiled.rename(b04)
    geo = tmp_path / "field_ie.geojson"
    gpd.GeoDataFrame(geometry=[box(*CROP)], crs=UTM).to_file(geo)
    line = cli_error_line(run_stack_safe(bad, geo, tmp_path / "out"))
    assert str(b04) in line and "cut short" in line
    assert not list(tmp_path.glob("out/*.tif"))  # no stack, nothing half-written


def test_whole_jp2_files_pass_and_cut_ones_fail_wherever_cut(tmp_path):
    import rasterio.shutil

    from vercye_lai.acquire.warp import check_whole_jp2
    from vercye_lai.errors import DataIOError

    src = next((MINI / R60).glob("*_B04_60m.jp2"))
    bare = tmp_path / "b.j2k"
    rasterio.shutil.copy(src, bare, driver="JP2OpenJPEG", codec="J2K", blockxsize=32, blockysize=32)
    for whole in (*sorted((MINI / R60).glob("*.jp2")), bare):
        check_whole_jp2(whole)
        data = whole.read_bytes()
        for cut in (12, 40, len(data) // 3, len(data) - 1):
            part = tmp_path / f"cut{whole.suffix}"
            part.write_bytes(data[:cut])
            with pytest.raises(DataIOError, match="cut short|no JPEG 2000 codestream") as e:
                check_whole_jp2(part)
            assert str(part) in str(e.value)
    (tmp_path / "x.jp2").write_text("<html>not found</html>")
    with pytest.raises(DataIOError, match="not a JPEG 2000 file"):
        check_whole_jp2(tmp_path / "x.jp2")


def test_a_cut_geotiff_source_names_the_file_and_the_cause(tmp_path):
    """(a Landsat or HLS band cut short said "RasterioIOError: Read failed. See previous exception")"""
    from rasterio.enums import Resampling
    from rasterio.transform import from_origin

    from vercye_lai.acquire.warp import warp_to_grid
    from vercye_lai.errors import DataIOError
    from vercye_lai.grid import Grid

    path = tmp_path / "LC08_SR_B4.TIF"
    noise = np.random.default_rng(0).integers(0, 10000, (600, 600)).astype("uint16")
    with rasterio.open(path, "w", driver="GTiff", width=600, height=600, count=1, dtype="uint16", crs=UTM,
                       transform=from_origin(*CROP[::3], 30, 30), tiled=True, compress="deflate") as ds:
        ds.write(noise, 1)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with rasterio.open(path) as ds, pytest.raises(DataIOError, match="cannot read band 1: TIFFFillTile") as e:
        warp_to_grid(ds, Grid.of(ds), resampling=Resampling.nearest)
    assert str(path) in str(e.value)


def test_region_outside_the_tile_is_an_error(tmp_path):
    poltava = DATA / "naturalearth" / "poltava_oblast_ne10m.geojson"
    region = gpd.read_file(poltava).geometry.union_all()
    with pytest.raises(InputError, match="does not intersect tile\\(s\\) T29UNU") as e:
        stack_safe([MINI], region, "Poltava", 60, tmp_path)
    assert str(MINI) in str(e.value)
    r = run_stack_safe(MINI, poltava, tmp_path / "out")
    line = cli_error_line(r)
    assert str(MINI) in line and "does not intersect" in line


def test_cli_with_geometry_file(tmp_path):
    geo = tmp_path / "field_ie.geojson"
    gpd.GeoDataFrame(
        geometry=[box(CROP[0] + 600, CROP[1] + 600, CROP[0] + 1800, CROP[1] + 1800)], crs=UTM
    ).to_file(geo)
    r = run_stack_safe(MINI, geo, tmp_path / "out", "--scl-mask", "")
    assert r.exit_code == 0, r.output
    data, _, _ = read_stack(tmp_path / "out" / "field_ie_60m_2022-10-05.tif")
    assert data.shape == (11, 20, 20) and (data != STACK_NODATA).all()  # no SCL mask: all valid
    with rasterio.open(tmp_path / "out" / "field_ie_60m_2022-10-05.tif") as ds:
        assert ds.tags()["SCL_MASK"] == "none"  # said (an empty tag is no tag)


def test_predict_runs_on_the_result(tmp_path, inner_stack):
    src = inner_stack[3]
    outputs = predict.product_paths(src, tmp_path / "lai", ["LAI"])
    predict.predict_file(src, outputs)
    with rasterio.open(outputs["LAI"]) as ds:
        lai = read_values(ds)
    with rasterio.open(flags_path(outputs["LAI"])) as ds:
        hazy = (ds.read(1) & FLAG_HAZE).astype(bool) & (ds.read(1) != FLAG_NODATA)
    valid = inner_stack[0][0] != STACK_NODATA
    # a 60 % cloudy scene: the veils at the cloud edges that SCL called clear are masked, and flagged
    assert 0 < hazy.sum() < 0.2 * valid.sum()
    assert np.isfinite(lai[valid & ~hazy]).all() and np.isnan(lai[~valid | hazy]).all()
    assert 0 <= np.nanmin(lai) and np.nanmax(lai) < 10


@pytest.mark.slow
def test_full_tile_mean_angles_match_the_xml(tmp_path, shared_safe):
    """All data pixels of the real tile (no SCL mask): mean angles vs the XML means."""
    assert shared_safe.name == f"{NAME}.SAFE"
    t = open_safe(shared_safe)
    region = shape(transform_geom(UTM, "EPSG:4326", mapping(box(*t.bounds))))
    dst = tmp_path / "ie_60m_2022-10-05.tif"
    write_date_stack([t], region, dst, 60, scl_classes=())
    data, _, _ = read_stack(dst)
    ok = data[0] != STACK_NODATA
    assert ok.mean() > 0.5  # the swath covers about 60 % of the tile
    m = mean_angles(shared_safe / GRANULE / "MTD_TL.xml")
    sza = np.degrees(np.arccos(data[1][ok] * 1e-4)).mean()
    vza = np.degrees(np.arccos(data[0][ok] * 1e-4)).mean()
    assert sza == pytest.approx(m["sun_zenith"], abs=0.15)  # measured: 0.07°
    assert vza == pytest.approx(m["view_zenith"], abs=0.3)  # measured: 0.12°
    raa = np.cos(np.radians(m["sun_azimuth"] - m["view_azimuth"]))
    assert (data[2][ok] * 1e-4).mean() == pytest.approx(raa, abs=0.05)


def test_a_safe_of_60_m_bands_stacked_at_20_m_says_so_once(tmp_path, caplog):
    import logging

    from vercye_lai.acquire import safe as safe_mod

    safe_mod._say_refined.cache_clear()
    region = utm_region(CROP[0] + 600, CROP[1] + 600, CROP[0] + 1200, CROP[1] + 1200)
    with caplog.at_level(logging.INFO, logger="vercye_lai.acquire.safe"):
        stack_safe([MINI], region, "ie", 20, tmp_path)
    said = [r.getMessage() for r in caplog.records if "resampled (bilinear) to 20 m" in r.getMessage()]
    assert said == [f"{MINI.name}: no image at 20 m or finer; its 60 m bands are resampled (bilinear) to 20 m"]


def test_s2c_product_whose_dns_hold_the_offset_already(tmp_path, inner_stack, caplog):
    """An S2C product (name and SPACECRAFT_NAME) whose DNs were shifted by -1000 while its
    MTD_MSIL2A.xml still says BOA_ADD_OFFSET -1000: the offset is dropped (warned once, tagged),
    the reflectances are the original product's, and the stack names its unit."""
    name = NAME.replace("S2A_", "S2C_")
    dst = _copy_safe(MINI, tmp_path / f"{name}.SAFE",
                     lambda band, arr: arr if band == "SCL" else np.where(arr > 0, np.maximum(arr, 1001) - 1000, 0))
    mtd = (dst / "MTD_MSIL2A.xml").read_text().replace(NAME, name).replace("Sentinel-2A", "Sentinel-2C")
    (dst / "MTD_MSIL2A.xml").write_text(mtd)
    tile = open_safe(dst)
    assert tile.platform == "sentinel-2c" and tile.baseline == 4.0 and tile.product == name
    region = utm_region(CROP[0] + 120, CROP[1] + 120, CROP[2] - 120, CROP[3] - 120)
    with caplog.at_level(logging.WARNING):
        out = stack_safe([dst], region, "ie", 60, tmp_path / "out")[DATE]
    data = read_stack(out)[0]
    with rasterio.open(out) as ds:
        tags = ds.tags()
    assert tags["PLATFORM"] == "sentinel-2c"
    assert f"{name}: 0, the BOA_ADD_OFFSET offset -0.1 dropped" in tags["REFLECTANCE_OFFSET"]
    assert caplog.text.count(f"{name}: with the BOA_ADD_OFFSET offset -0.1") == 1
    original = inner_stack[0]
    bright = original[3:] > 1  # DN > 1001: unchanged by the clip above
    np.testing.assert_array_equal(data[3:][bright], original[3:][bright])
