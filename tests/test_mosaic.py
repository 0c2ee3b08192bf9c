"""VRT mosaics: pixels equal to the parts, relative paths, checks naming the file."""

from __future__ import annotations

import datetime as dt
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import cli_error_line, write_raster
from rasterio.transform import from_origin

from vercye_lai.io import read_values
from vercye_lai import predict
from vercye_lai.acquire.mosaic import build_vrt, find_parts, mosaic_region, vrt_xml
from vercye_lai.cli.main import cli
from vercye_lai.errors import InputError, NoDataFoundError
from vercye_lai.stack import S2_BANDS_20M

X0, Y0, RES = 500000.0, 5600000.0, 20.0
NODATA = -32768
DATE = dt.date(2023, 6, 1)


def part(
    path, rows, cols, row0=0, col0=0, *, bands=11, value=None, nodata=NODATA, dtype="int16", **kw
):
    """A part of a 11-band stack whose pixel values encode (band, global row, global col)."""
    b, r, c = np.meshgrid(
        np.arange(bands), np.arange(row0, row0 + rows), np.arange(col0, col0 + cols), indexing="ij"
    )
    data = (
        (b * 1000 + r * 37 + c).astype(dtype)
        if value is None
        else np.full((bands, rows, cols), value, dtype)
    )
    kw.setdefault("descriptions", list(S2_BANDS_20M[:bands]))
    kw.setdefault("scales", [1e-4] * bands)
    kw.setdefault("offsets", [0.0] * bands)
    return write_raster(
        path,
        data,
        crs=kw.pop("crs", "EPSG:32636"),
        transform=kw.pop("transform", from_origin(X0 + col0 * RES, Y0 - row0 * RES, RES, RES)),
        nodata=nodata,
        **kw,
    )


def read(path):
    """Pixels and the header fields the tests compare."""
    with rasterio.open(path) as ds:
        meta = SimpleNamespace(
            transform=ds.transform,
            crs=ds.crs,
            nodata=ds.nodata,
            descriptions=ds.descriptions,
            scales=ds.scales,
            dtypes=ds.dtypes,
        )
        return ds.read(), meta


def test_earth_engine_parts_equal_the_whole(tmp_path):
    parts_dir, vrt_dir = tmp_path / "parts", tmp_path / "vrt"
    # a 30 × 25 image split in 4 parts, as Earth Engine names them
    pieces = [(0, 0, 16, 12), (0, 12, 16, 13), (16, 0, 14, 12), (16, 12, 14, 13)]
    for r0, c0, h, w in pieces:
        part(
            parts_dir / f"Poltava_20m_2023-06-01-{r0 * 1000:010d}-{c0 * 1000:010d}.tif",
            h,
            w,
            r0,
            c0,
            tiled=True,
            blocksize=16,
        )
    part(parts_dir / "Poltava_20m_2023-06-02.tif", 5, 5)  # a plain single part
    part(parts_dir / "Other_20m_2023-06-01.tif", 5, 5)  # another region: ignored
    out = mosaic_region("Poltava", parts_dir, vrt_dir, 20)
    assert list(out) == [DATE, dt.date(2023, 6, 2)]
    assert out[DATE].name == "Poltava_20m_2023-06-01.vrt"
    data, ds = read(out[DATE])
    whole = part(tmp_path / "whole.tif", 30, 25)
    want, ref = read(whole)
    np.testing.assert_array_equal(data, want)
    assert ds.transform == ref.transform and ds.crs == ref.crs
    assert ds.nodata == NODATA and ds.descriptions == S2_BANDS_20M
    assert ds.scales == (1e-4,) * 11 and ds.dtypes[0] == "int16"
    # paths are relative to the VRT, so the two folders can move together
    assert 'relativeToVRT="1">../parts/' in out[DATE].read_text()
    moved = tmp_path / "moved"
    shutil.copytree(parts_dir, moved / "parts")
    shutil.copytree(vrt_dir, moved / "vrt")
    shutil.rmtree(parts_dir)
    np.testing.assert_array_equal(read(moved / "vrt" / out[DATE].name)[0], want)
    single, _ = read(moved / "vrt" / "Poltava_20m_2023-06-02.vrt")
    np.testing.assert_array_equal(single, read(moved / "parts" / "Poltava_20m_2023-06-02.tif")[0])


def test_gaps_are_nodata_and_nodata_does_not_cover_other_parts(tmp_path):
    a = part(tmp_path / "R_20m_2023-06-01-0000000000-0000000000.tif", 4, 4, value=5)
    # overlapping part, all nodata except one pixel, two pixels apart: leaves a gap column
    b_data = np.full((11, 4, 4), NODATA, np.int16)
    b_data[:, 0, 0] = 9
    b = write_raster(
        tmp_path / "R_20m_2023-06-01-0000000000-0000000003.tif",
        b_data,
        crs="EPSG:32636",
        transform=from_origin(X0 + 2 * RES, Y0 - 2 * RES, RES, RES),
        nodata=NODATA,
    )
    build_vrt([a, b], tmp_path / "m.vrt")
    data, _ = read(tmp_path / "m.vrt")
    assert data.shape == (11, 6, 6)
    assert (data[:, :4, :4][:, :2] == 5).all()
    assert (data[:, 2, 2] == 9).all()  # b's valid pixel drawn over a
    assert (data[:, 3, 3] == 5).all()  # b's nodata did not cover a
    assert (data[:, 5, 0] == NODATA).all() and (data[:, 0, 5] == NODATA).all()  # outside both


def test_float_parts_without_nodata_use_simple_sources(tmp_path):
    a = part(
        tmp_path / "a.tif", 3, 3, bands=2, dtype="float32", nodata=None, scales=None, offsets=None
    )
    b = part(
        tmp_path / "b.tif",
        3,
        3,
        0,
        3,
        bands=2,
        dtype="float32",
        nodata=None,
        scales=None,
        offsets=None,
    )
    xml = vrt_xml([a, b], tmp_path / "m.vrt")
    assert "<SimpleSource>" in xml and "NoDataValue" not in xml and "<Scale>" not in xml
    build_vrt([a, b], tmp_path / "m.vrt")
    data, _ = read(tmp_path / "m.vrt")
    np.testing.assert_array_equal(
        data, read(part(tmp_path / "w.tif", 3, 6, bands=2, dtype="float32", nodata=None))[0]
    )


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"nodata": 0}, "nodata 0"),
        ({"dtype": "int32"}, "data type int32"),
        ({"crs": "EPSG:32635"}, "CRS"),
        ({"transform": from_origin(X0 + 40, Y0, 10, 10)}, "pixel size 10×10"),
        ({"bands": 10}, "10 bands"),
        ({"transform": from_origin(X0 + 45, Y0, RES, RES)}, "off its pixel grid"),
    ],
)
def test_mismatched_parts_are_an_error_naming_the_file(tmp_path, kw, message):
    a = part(tmp_path / "R_20m_2023-06-01-0000000000-0000000000.tif", 4, 4)
    b = part(tmp_path / "R_20m_2023-06-01-0000000000-0000000004.tif", 4, 4, 0, 4, **kw)
    with pytest.raises(InputError, match=message) as e:
        build_vrt([a, b], tmp_path / "m.vrt")
    assert str(e.value).startswith(str(b))
    assert not (tmp_path / "m.vrt").exists()


def test_resumable_and_rewritten_when_parts_change(tmp_path):
    part(tmp_path / "R_20m_2023-06-01-0000000000-0000000000.tif", 4, 4)
    dst = tmp_path / "R_20m_2023-06-01.vrt"
    assert build_vrt(*find_parts(tmp_path, "R", 20).values(), dst) is True
    assert build_vrt(*find_parts(tmp_path, "R", 20).values(), dst) is False
    assert build_vrt(*find_parts(tmp_path, "R", 20).values(), dst, overwrite=True) is True
    part(tmp_path / "R_20m_2023-06-01-0000000000-0000000004.tif", 4, 4, 0, 4)
    assert build_vrt(*find_parts(tmp_path, "R", 20).values(), dst) is True
    assert read(dst)[0].shape == (11, 4, 8)


def test_no_parts(tmp_path):
    part(tmp_path / "R_10m_2023-06-01.tif", 2, 2)
    with pytest.raises(NoDataFoundError, match="R_20m_<date>") as e:
        find_parts(tmp_path, "R", 20)
    assert str(tmp_path) in str(e.value)


def test_cli(tmp_path):
    part(tmp_path / "in" / "R_20m_2023-06-01-0000000000-0000000000.tif", 4, 4)
    part(tmp_path / "in" / "R_20m_2023-06-01-0000000000-0000000004.tif", 4, 4, 0, 4)
    runner = CliRunner()
    r = runner.invoke(cli, ["-q", "mosaic", "R", str(tmp_path / "in"), str(tmp_path / "vrt"), "20"])
    assert r.exit_code == 0, r.output
    assert read(tmp_path / "vrt" / "R_20m_2023-06-01.vrt")[0].shape == (11, 4, 8)
    bad = part(tmp_path / "in" / "R_20m_2023-06-01-0000000004-0000000000.tif", 4, 4, 4, 0, nodata=0)
    r = runner.invoke(cli, ["-q", "mosaic", "R", str(tmp_path / "in"), str(tmp_path / "vrt"), "20"])
    line = cli_error_line(r)
    assert str(bad) in line and "nodata" in line
    assert "--help" not in r.output
    assert runner.invoke(cli, ["mosaic", "--help"]).exit_code == 0


def test_the_region_defaults_to_the_only_one_of_the_parts(tmp_path):
    """--help said so; leaving it out failed with 'give --region'."""
    part(tmp_path / "in" / "R_20m_2023-06-01-0000000000-0000000000.tif", 4, 4)
    part(tmp_path / "in" / "R_20m_2023-06-02.tif", 4, 4)
    r = CliRunner().invoke(cli, ["-q", "mosaic", str(tmp_path / "in"), "-o", str(tmp_path / "vrt")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "vrt").iterdir()) == ["R_20m_2023-06-01.vrt", "R_20m_2023-06-02.vrt"]
    part(tmp_path / "in" / "S_20m_2023-06-01.tif", 4, 4)
    line = cli_error_line(CliRunner().invoke(cli, ["-q", "mosaic", str(tmp_path / "in"), "-o", str(tmp_path / "v")]))
    assert "several regions (R, S): give --region NAME" in line


def test_float_parts_with_nan_nodata(tmp_path):
    a = part(
        tmp_path / "a.tif",
        2,
        2,
        bands=1,
        dtype="float32",
        nodata=float("nan"),
        scales=None,
        offsets=None,
    )
    b = part(
        tmp_path / "b.tif",
        2,
        2,
        0,
        2,
        bands=1,
        dtype="float32",
        value=np.nan,
        nodata=float("nan"),
        scales=None,
        offsets=None,
    )
    build_vrt([a, b], tmp_path / "m.vrt")
    data, meta = read(tmp_path / "m.vrt")
    assert np.isnan(meta.nodata) and data.shape == (1, 2, 4)
    np.testing.assert_array_equal(data[0, :, :2], read(a)[0][0])
    assert np.isnan(data[0, :, 2:]).all()


def test_predict_reads_a_mosaic_like_the_whole(tmp_path):
    """Stacks split in Earth Engine-style parts, mosaicked: predict gives the same LAI."""
    from vercye_lai.stack import write_stack

    rng = np.random.default_rng(0)
    h, w = 20, 30
    data = np.concatenate(
        [
            np.stack([np.full((h, w), 0.98), np.full((h, w), 0.6), np.full((h, w), -0.5)]),
            rng.uniform(0.02, 0.45, (8, h, w)),
        ]
    )
    data[3:, 5, 7] = np.nan  # a cloud
    t = from_origin(X0, Y0, RES, RES)
    whole = write_stack(
        tmp_path / "whole" / "R_20m_2023-06-01.tif", data, transform=t, crs="EPSG:32636"
    )
    parts = tmp_path / "parts"
    for r0, c0, name in (
        (0, 0, "0000000000-0000000000"),
        (0, 16, "0000000000-0000000016"),
        (12, 0, "0000000012-0000000000"),
        (12, 16, "0000000012-0000000016"),
    ):
        sub = data[:, r0 : r0 + 12, c0 : c0 + 16]
        write_stack(
            parts / f"R_20m_2023-06-01-{name}.tif",
            sub,
            transform=t * rasterio.Affine.translation(c0, r0),
            crs="EPSG:32636",
        )
    vrt = mosaic_region("R", parts, tmp_path / "vrt", 20)[DATE]
    lai = []
    for src in (whole, vrt):
        out = predict.product_paths(src, tmp_path / f"lai_{src.suffix[1:]}", ["LAI"])
        predict.predict_file(src, out)
        with rasterio.open(out["LAI"]) as ds:
            lai.append(read_values(ds))
    np.testing.assert_array_equal(lai[0], lai[1])
    assert np.isnan(lai[1][5, 7]) and np.isfinite(lai[1]).any()


def test_a_mosaic_whose_part_is_gone_names_the_missing_part(tmp_path):
    from vercye_lai.stack import write_stack

    data = np.concatenate([np.stack([np.full((6, 8), 0.98), np.full((6, 8), 0.6), np.full((6, 8), -0.5)]),
                           np.full((8, 6, 8), 0.2)])
    t = from_origin(X0, Y0, RES, RES)
    parts = tmp_path / "parts"
    for c0, name in ((0, "0000000000-0000000000"), (4, "0000000000-0000000004")):
        write_stack(parts / f"R_20m_2023-06-01-{name}.tif", data[:, :, c0:c0 + 4],
                    transform=t * rasterio.Affine.translation(c0, 0), crs="EPSG:32636")
    vrt = mosaic_region("R", parts, tmp_path / "vrt", 20)[DATE]
    gone = parts / "R_20m_2023-06-01-0000000000-0000000004.tif"
    gone.unlink()
    r = CliRunner().invoke(cli, ["-q", "predict", str(tmp_path / "vrt"), str(tmp_path / "lai"), "--region", "R"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "Traceback" not in out
    assert f"{vrt}: source file of the VRT is missing: {gone}" in out, out
