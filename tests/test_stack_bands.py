"""stack-bands: reflectance GeoTIFFs of named bands + computed sun angles → input stacks."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import DATA, cli_error_line, write_raster
from rasterio.warp import transform as warp_transform
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from vercye_lai.io import read_values
from vercye_lai import predict
from vercye_lai.acquire.angles import solar_position
from vercye_lai.acquire.bands import (
    acquisition_time,
    newest_per_date,
    stack_from_bands,
    write_band_stack,
)
from vercye_lai.acquire.safe import open_safe, stack_tiles
from vercye_lai.cli.main import cli
from vercye_lai.errors import BandError, InputError
from vercye_lai.stack import S2_BANDS_20M, STACK_NODATA

SRF = (
    DATA
    / "strickhof_srf"
    / "S2A_MSIL2A_20220305T102921_N0400_R108_T32TMT_20220305T135811_SRF_S2.tif"
)
PRODUCT = "S2B_MSIL2A_20220601T101559_N0400_R065_T32TMT_20220601T133430"
WHEN = dt.datetime(2022, 6, 1, 10, 15, 59, tzinfo=dt.UTC)
# file order deliberately not the stack order, with an extra band (B02)
ORDER = ["B02", "B12", "B11", "B8A", "B07", "B06", "B05", "B04", "B03", "SCL"]
STACK_REFL = ["B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12"]


def synthetic(tmp_path, name=f"{PRODUCT}_SRF.tif", *, dtype="float32", scale=1.0, **kw):
    """4 × 6 px, reflectance of band k = 0.01·k + 0.001·col; SCL 4 except a cloud (9) at
    (1, 1) and a shadow (3) at (2, 4); nodata (0) in all bands at (3, 0)."""
    cols = np.arange(6)[None, :].repeat(4, 0)
    data = []
    for b in ORDER:
        if b == "SCL":
            a = np.full((4, 6), 4.0)
            a[1, 1], a[2, 4] = 9, 3
        else:
            a = (0.01 * (ORDER.index(b) + 1) + 0.001 * cols) / scale
        a[3, 0] = 0
        data.append(a)
    return write_raster(
        tmp_path / name,
        np.array(data).astype(dtype),
        descriptions=kw.pop("descriptions", ORDER),
        nodata=0,
        **kw,
    )


def expected(band: str, cols=None):
    """Reflectance written by :func:`synthetic` for ``band`` (file name) at ``cols``."""
    cols = np.arange(6) if cols is None else cols
    return 0.01 * (ORDER.index(band) + 1) + 0.001 * cols


def _file_name(b: str) -> str:
    return {"B3": "B03", "B4": "B04", "B5": "B05", "B6": "B06", "B7": "B07"}.get(b, b)


def test_bands_scl_nodata_and_angles(tmp_path):
    data, grid, tags = stack_from_bands(synthetic(tmp_path))
    assert grid.shape == (4, 6) and grid.transform.a == 10
    for b in STACK_REFL:
        want = 0.01 * (ORDER.index(_file_name(b)) + 1) + 0.001 * np.arange(6)
        np.testing.assert_allclose(data[b][0], want, atol=1e-7)
        assert np.isnan(data[b][1, 1]) and np.isnan(data[b][2, 4]) and np.isnan(data[b][3, 0])
        assert np.isfinite(data[b]).sum() == 21
    # nadir view assumed: cosVZA = 1; sun from the NOAA formula at each pixel centre
    np.testing.assert_allclose(data["cosVZA"], 1.0)
    x, y = rasterio.transform.xy(grid.transform, [0, 3], [0, 5])
    lon, lat = warp_transform(grid.crs, "EPSG:4326", x, y)
    zen, az = solar_position(WHEN, np.array(lon), np.array(lat))
    np.testing.assert_allclose(data["cosSZA"][[0, 3], [0, 5]], np.cos(np.radians(zen)), atol=1e-6)
    np.testing.assert_allclose(data["cosRAA"][[0, 3], [0, 5]], np.cos(np.radians(az)), atol=1e-6)
    assert tags["ACQUISITION_TIME"] == WHEN.isoformat() and "assumed zenith 0" in tags["ANGLES"]


def test_band_names_in_lower_case_keep_the_scl_mask(tmp_path):
    """'scl' was no SCL band: no cloud masking, said only at INFO (584 valid pixels, not 304)."""
    lower = synthetic(tmp_path, descriptions=[d.lower() for d in ORDER])
    data, _, tags = stack_from_bands(lower)
    assert np.isnan(data["B4"][1, 1]) and np.isnan(data["B4"][2, 4]) and np.isfinite(data["B4"]).sum() == 21
    assert tags["SCL_MASK"] != "no SCL band"
    bare = synthetic(tmp_path, f"{PRODUCT}_bare.tif", descriptions=None)
    data, _, _ = stack_from_bands(bare, band_names=[b.lower() for b in ORDER])
    assert np.isnan(data["B4"][1, 1]) and np.isfinite(data["B4"]).sum() == 21


def test_reflectance_x_10000_in_a_float_file_is_refused_with_what_to_pass(tmp_path):
    """It wrote a stack of nodata, exit 0, warning that the offset looked missing."""
    big = synthetic(tmp_path, f"{PRODUCT}_big.tif", scale=1e-4)  # reflectance x 10000, as floats
    with pytest.raises(InputError, match="B3's median is .*a file of reflectance x 10000 needs --scale 1e-4"):
        stack_from_bands(big)
    data, _, _ = stack_from_bands(big, scale=1e-4)
    np.testing.assert_allclose(data["B4"][0], expected("B04"), atol=1e-6)
    with pytest.raises(InputError, match="scaled twice"):
        stack_from_bands(synthetic(tmp_path), scale=1e-4)
    # an offset alone keeps the file's own scale (it set it to 1)
    declared = synthetic(tmp_path, f"{PRODUCT}_declared.tif", dtype="int16", scale=1e-4)
    with rasterio.open(declared, "r+") as ds:
        ds.scales = [1e-4] * ds.count
    np.testing.assert_allclose(stack_from_bands(declared, offset=0.0)[0]["B4"][0], expected("B04"), atol=1e-4)


def test_a_stack_made_with_other_options_is_made_again(tmp_path):
    from vercye_lai.acquire.bands import write_band_stack

    src, dst = synthetic(tmp_path), tmp_path / "out" / "f_10m_2022-06-01.tif"
    assert write_band_stack(src, dst)
    assert not write_band_stack(src, dst)  # resumable
    for changed in ({"cloud_buffer": 3}, {"scale": 1.0}, {"view_zenith": 30.0}, {"scl_classes": ()}):
        assert write_band_stack(src, dst, **changed), changed
        assert not write_band_stack(src, dst, **changed)


def test_view_geometry_option(tmp_path):
    data, _, tags = stack_from_bands(synthetic(tmp_path), view_zenith=60, view_azimuth=90)
    np.testing.assert_allclose(data["cosVZA"], 0.5, atol=1e-6)
    assert "zenith 60" in tags["ANGLES"]


def test_integer_data_and_scales(tmp_path):
    src = synthetic(tmp_path, dtype="uint16", scale=1e-4)
    data, _, tags = stack_from_bands(src)
    np.testing.assert_allclose(data["B4"][0], expected("B04"), atol=1e-4)
    assert "scale 1e-4" in tags["REFLECTANCE_SCALING"]
    # a declared scale/offset is honoured; an explicit one wins
    src2 = synthetic(
        tmp_path,
        f"{PRODUCT}_b.tif",
        dtype="uint16",
        scale=2e-4,
        scales=[2e-4] * 10,
        offsets=[0.0] * 10,
    )
    np.testing.assert_allclose(stack_from_bands(src2)[0]["B4"][0], expected("B04"), atol=2e-4)
    np.testing.assert_allclose(
        stack_from_bands(src2, scale=1e-4, offset=-0.1)[0]["B4"][0],
        expected("B04") / 2 - 0.1,
        atol=2e-4,
    )


def test_coarser_resolution_averages(tmp_path):
    data, grid, _ = stack_from_bands(synthetic(tmp_path), resolution=20, scl_classes=())
    assert grid.shape == (2, 3) and grid.transform.a == 20
    np.testing.assert_allclose(data["B5"][0], expected("B05", np.array([0.5, 2.5, 4.5])), atol=1e-7)
    assert np.isfinite(data["B5"][1, 0])  # 3 of 4 pixels valid: averaged, not nodata


def test_time_from_name_or_option(tmp_path, caplog):
    assert acquisition_time(SRF) == dt.datetime(2022, 3, 5, 10, 29, 21, tzinfo=dt.UTC)
    assert acquisition_time("x.tif", dt.datetime(2022, 3, 5, 10)).tzinfo == dt.UTC
    # a --time that contradicts the name is taken, and said
    assert acquisition_time(SRF, dt.datetime(2022, 3, 5, 10, 30)).minute == 30 and not caplog.records
    assert acquisition_time(SRF, dt.datetime(2022, 4, 5, 10)).month == 4
    assert "is not the acquisition its name holds (2022-03-05T10:29:21+00:00)" in caplog.text
    with pytest.raises(InputError, match="no acquisition time") as e:
        acquisition_time(tmp_path / "field.tif")
    assert "field.tif" in str(e.value)


def test_band_errors(tmp_path):
    with pytest.raises(BandError, match="lacks band\\(s\\) B11") as e:
        stack_from_bands(synthetic(tmp_path, descriptions=[d.replace("B11", "B10") for d in ORDER]))
    assert PRODUCT in str(e.value)
    bare = synthetic(tmp_path, f"{PRODUCT}_bare.tif", descriptions=None)
    with pytest.raises(BandError, match="--band-names"):
        stack_from_bands(bare)
    np.testing.assert_allclose(
        stack_from_bands(bare, band_names=ORDER)[0]["B4"][0], expected("B04"), atol=1e-7
    )
    with pytest.raises(BandError, match="3 band names given for 10 bands"):
        stack_from_bands(bare, band_names=["B03", "B04", "B05"])


def test_newest_of_a_date_is_kept(tmp_path, caplog):
    old = synthetic(tmp_path, f"{PRODUCT}_SRF.tif")
    new = synthetic(tmp_path, f"{PRODUCT.replace('20220601T133430', '20220722T190205')}_SRF.tif")
    other = synthetic(tmp_path, f"{PRODUCT.replace('20220601T1', '20220604T1')}_SRF.tif")
    with caplog.at_level(logging.WARNING):
        picked = newest_per_date([new, old, other])
    assert picked == {dt.date(2022, 6, 1): new, dt.date(2022, 6, 4): other}
    assert newest_per_date([old, new])[dt.date(2022, 6, 1)] == new
    assert "same date" in caplog.text and new.name in caplog.text


def test_sun_angles_agree_with_the_safe_metadata(tmp_path):
    """The cropped real SAFE written as a band GeoTIFF: stack-bands' computed sun angles vs
    stack-safe's angles from MTD_TL.xml, and the reflectances are the same."""
    safe = (
        DATA / "safe_T29UNU" / "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
    )
    tile = open_safe(safe)
    region = shape(
        transform_geom("EPSG:32629", "EPSG:4326", mapping(box(521700, 5892960, 532260, 5899920)))
    )
    ref, grid = stack_tiles([tile], region, 60, scl_classes=())
    src = write_raster(
        tmp_path / f"{tile.product}_bands.tif",
        np.array([ref[b] for b in STACK_REFL]).astype("float32"),
        crs="EPSG:32629",
        transform=grid.transform,
        nodata=float("nan"),
        descriptions=STACK_REFL,
    )
    # with the tile's sensing time, and with the product name's datatake start (2.6 min earlier)
    for when, tol in ((tile.sensing_time, 3e-4), (None, 1.5e-3)):
        got, g2, _ = stack_from_bands(src, when=when)
        ok = np.isfinite(ref["B4"])
        assert g2 == grid
        for b in STACK_REFL:
            np.testing.assert_array_equal(got[b][ok], ref[b][ok])
        d_sza = np.abs(got["cosSZA"][ok] - ref["cosSZA"][ok]).max()
        assert d_sza < tol, d_sza


def test_real_strickhof_file_and_predict(tmp_path):
    dst = tmp_path / "strickhof_10m_2022-03-05.tif"
    assert write_band_stack(SRF, dst)
    assert not write_band_stack(SRF, dst)  # resumable
    with rasterio.open(dst) as ds:
        assert ds.descriptions == S2_BANDS_20M and ds.res == (10, 10) and ds.shape == (90, 90)
        data = ds.read()
    with rasterio.open(SRF) as s:
        srf = s.read()
    valid = data[3] != STACK_NODATA
    # B03/B04 only exist inside the fields; there the stored value is round(ρ × 10000)
    assert 0 < valid.sum() < valid.size
    np.testing.assert_array_equal(data[3][valid], np.round(srf[1][valid] * 10000).astype(int))
    # 5 March 2022, 10:29 UTC at 47.45°N: sun zenith about 54°
    sza = np.degrees(np.arccos(data[1][valid] * 1e-4))
    assert 52 < sza.mean() < 56
    outputs = predict.product_paths(dst, tmp_path / "lai", ["LAI"])
    predict.predict_file(dst, outputs)
    with rasterio.open(outputs["LAI"]) as ds:
        lai = read_values(ds)
    assert np.isfinite(lai[valid]).mean() > 0.99 and 0 <= np.nanmean(lai) < 3


def test_cli(tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    r = runner.invoke(
        cli, ["-q", "stack-bands", str(SRF), "--region", "strickhof", "--out-dir", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert (out / "strickhof_10m_2022-03-05.tif").exists()
    r = runner.invoke(
        cli,
        [
            "-q",
            "stack-bands",
            str(SRF),
            "--region",
            "strickhof",
            "--out-dir",
            str(out),
            "--resolution",
            "20",
        ],
    )
    assert r.exit_code == 0, r.output
    with rasterio.open(out / "strickhof_20m_2022-03-05.tif") as ds:
        assert ds.shape == (45, 45)
    bad = synthetic(tmp_path, "field.tif")
    r = runner.invoke(cli, ["-q", "stack-bands", str(bad), "--region", "x", "--out-dir", str(out)])
    line = cli_error_line(r)
    assert str(bad) in line and "--time" in line
    r = runner.invoke(
        cli,
        [
            "-q",
            "stack-bands",
            str(bad),
            "--region",
            "x",
            "--out-dir",
            str(out),
            "--time",
            "2022-06-01T10:15:59",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (out / "x_10m_2022-06-01.tif").exists()
    r = runner.invoke(cli, ["-q", "stack-bands", str(bad), "--out-dir", str(out)])
    assert r.exit_code == 2 and "--region" in r.output


def test_clip_to_region(tmp_path):
    src = synthetic(tmp_path)
    # columns 1–3, rows 0–1 of the 10 m grid (origin 475780, 5255000; EPSG:32632)
    utm = box(475790, 5254980, 475820, 5255000)
    region = shape(transform_geom("EPSG:32632", "EPSG:4326", mapping(utm)))
    data, grid, _ = stack_from_bands(src, geometry=region, scl_classes=())
    assert grid.shape == (2, 3) and grid.transform.c == 475790
    np.testing.assert_allclose(data["B5"][0], expected("B05", np.arange(1, 4)), atol=1e-7)
    far = shape(transform_geom("EPSG:32632", "EPSG:4326", mapping(box(0, 0, 10, 10))))
    with pytest.raises(InputError, match="does not intersect the raster"):
        stack_from_bands(src, geometry=far)


def test_undeclared_fill_values_are_nodata(tmp_path, caplog):
    """Some EOdal files hold 1e20 (not the declared nodata) in bands and SCL."""
    src = synthetic(tmp_path)
    with rasterio.open(src, "r+") as ds:
        arr = ds.read()
        arr[1:, 0, 2] = 1e20  # every band but B02, SCL included
        ds.write(arr)
    with caplog.at_level(logging.WARNING):
        data, _, _ = stack_from_bands(src, scl_classes=())
    assert np.isnan(data["B4"][0, 2]) and np.isfinite(data["B4"][0, 3])
    assert "undeclared fill value" in caplog.text
    data, _, _ = stack_from_bands(src)  # the SCL fill value alone masks the pixel too
    assert np.isnan(data["B4"][0, 2])


def test_geographic_raster_is_refused(tmp_path):
    src = synthetic(
        tmp_path, crs="EPSG:4326", transform=rasterio.transform.from_origin(8.6, 47.4, 1e-4, 1e-4)
    )
    with pytest.raises(InputError, match="projected CRS") as e:
        stack_from_bands(src)
    assert str(src) in str(e.value)


def test_cloud_buffer_masks_the_edges_of_clouds_and_shadows(tmp_path):
    """--cloud-buffer 1: the 8 neighbours of the cloud (1, 1) and of the shadow (2, 4) are masked
    too (a 3 x 3 square each), the nodata pixel is not grown; window by window the same; the
    value is in the tags. The file is an S2C product: its platform is tagged."""
    src = synthetic(tmp_path, f"{PRODUCT.replace('S2B_', 'S2C_')}_SRF.tif")
    masked = {}
    for px in (0, 1):
        data, _, tags = stack_from_bands(src, cloud_buffer=px)
        masked[px] = np.isnan(data["B4"])
        assert tags["CLOUD_BUFFER"] == str(px) and tags["PLATFORM"] == "sentinel-2c"
    want = np.zeros((4, 6), bool)
    want[0:3, 0:3] = want[1:4, 3:6] = True
    want[3, 0] = True  # nodata
    assert masked[0].sum() == 3 and np.array_equal(masked[1], want)
    dst = tmp_path / "w.tif"
    assert write_band_stack(src, dst, block=2, cloud_buffer=1)  # 2 x 2 px windows
    with rasterio.open(dst) as ds:
        assert np.array_equal(ds.read(S2_BANDS_20M.index("B4") + 1) == STACK_NODATA, want)


@pytest.mark.parametrize(("args", "said"), [
    (["--res", "0"], "must be a positive number of metres, not 0.0"),  # divided by zero
    (["--res", "-20"], "must be a positive number of metres, not -20.0"),  # wrote a 1x1 stack
    (["--region", "../escaped"], "region name '../escaped': it names files and folders"),  # wrote outside -o
    (["--region", "My Farm/Field"], "region name 'My Farm/Field'"),  # made a subfolder
])
def test_a_resolution_or_region_name_that_cannot_name_files_is_refused(tmp_path, args, said):
    from click.testing import CliRunner

    from vercye_lai.cli.main import cli

    base = ["-q", "stack-bands", str(synthetic(tmp_path)), "-o", str(tmp_path / "out")]
    if "--region" not in args:
        base += ["--region", "f"]
    r = CliRunner().invoke(cli, [*base, *args])
    assert r.exit_code != 0 and said in " ".join(r.output.split()), r.output
    assert not list(tmp_path.rglob("*_m_*.tif")) and not (tmp_path / "escaped").exists()
    assert "Traceback" not in r.output


def test_a_pattern_that_matches_nothing_or_no_file_is_said(tmp_path):
    """A glob matching nothing was read as a file name ("no acquisition time: the file name holds
    no Sentinel-2 product name"); no file at all made "acquire done (0 of 0)"."""
    from vercye_lai.acquire import expand_patterns

    (tmp_path / "a.tif").write_bytes(b"")
    assert expand_patterns([tmp_path / "*.tif", tmp_path / "a.tif"]) == [str(tmp_path / "a.tif")]
    with pytest.raises(InputError, match="matches no file") as e:
        expand_patterns([tmp_path / "*.nope"])
    assert str(tmp_path / "*.nope") in str(e.value)
    with pytest.raises(InputError, match="no file given"):
        expand_patterns([])
    assert expand_patterns(["/vsis3/bucket/x.tif"]) == ["/vsis3/bucket/x.tif"]  # not a pattern: GDAL opens it
