"""Writes that the OS refuses: a full disk, a read-only folder. One line naming the folder and
the cause, exit 1, no traceback, no temporary file; a full disk stops the run.

A real tmpfs is mounted where the tests may (root, as in CI); elsewhere the OS error is
raised where the rename onto the final name happens, which exercises the same handling.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DATA, copy_qvidja, qvidja_config

from vercye_lai import io
from vercye_lai.cli.main import cli
from vercye_lai.run.config import Layout, load_config
from vercye_lai.run.runner import run_pipeline


def _mount(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       capture_output=True, check=False)
    return r.returncode == 0


@contextlib.contextmanager
def _mounted(path: Path, options: str, monkeypatch, err: int):
    if _mount(path, options):
        try:
            yield "tmpfs"
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False)
        return

    real = os.replace

    def refuse(src, dst):  # no mount allowed here: the OS error where the rename happens
        if Path(dst).is_relative_to(path):
            raise OSError(err, os.strerror(err), str(dst))
        return real(src, dst)
    monkeypatch.setattr(io.os, "replace", refuse)
    yield "simulated"


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder on a file system with no byte left."""
    d = tmp_path / "full"
    with _mounted(d, "size=256k", monkeypatch, errno.ENOSPC) as kind:
        if kind == "tmpfs":
            with contextlib.suppress(OSError), open(d / "filler", "wb", buffering=0) as fh:
                while True:
                    fh.write(b"x" * 4096)
        yield d


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    d = tmp_path / "ro"
    with _mounted(d, "ro,size=64k", monkeypatch, errno.EROFS):
        yield d


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def test_predict_on_a_full_disk_stops_at_the_first_date_and_says_so(tmp_path, full_disk):
    s2 = copy_qvidja(tmp_path / "s2")
    r = CliRunner().invoke(cli, ["-q", "predict", str(s2), str(full_disk), "--region", "qvidja"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "Traceback" not in out
    assert f"{full_disk}: No space left on device (writing qvidja_20m_2023-06-09_LAI" in out
    assert "the 2 later date(s) were not attempted" in out and "1 failed" in out
    assert not list(full_disk.glob("qvidja*")) and _hidden(full_disk) == []


def test_plain_geotiffs_on_a_full_disk_are_not_renamed_into_place(tmp_path, full_disk):
    """GDAL writes a GeoTIFF's last bytes when it closes it, and rasterio raised nothing when that
    failed: --no-cog products and stacks were empty files under their final names, exit 0."""
    s2 = copy_qvidja(tmp_path / "s2")
    r = CliRunner().invoke(cli, ["-q", "predict", str(s2), str(full_disk), "--region", "qvidja", "--no-cog"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "No space left on device" in out and "Traceback" not in out
    assert not list(full_disk.glob("qvidja*")) and _hidden(full_disk) == []


def test_a_geotiff_not_written_whole_is_never_renamed_into_place(tmp_path, monkeypatch):
    dst = tmp_path / "x.tif"
    with pytest.raises(OSError, match="x.tif: not written whole: it is empty"):
        with io.atomic_output(dst) as tmp:
            tmp.write_bytes(b"")  # what a failed close left
    assert not dst.exists() and _hidden(tmp_path) == []
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: type("U", (), {"free": 0})())
    with pytest.raises(io.DiskFullError, match="No space left on device"):
        with io.atomic_output(dst) as tmp:
            tmp.write_bytes(b"II*\x00")
    assert not dst.exists()


def test_a_netcdf_write_error_is_one_line_and_a_full_disk_is_said(tmp_path, monkeypatch):
    """netCDF4 raises RuntimeError('NetCDF: HDF error') on a full disk: it was a traceback."""
    def write(name):
        with io.atomic_output(tmp_path / name) as tmp:
            tmp.write_bytes(b"CDF")
            raise RuntimeError("NetCDF: HDF error")

    with pytest.raises(io.DataIOError, match="c.nc: cannot write it: NetCDF: HDF error"):
        write("c.nc")
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: type("U", (), {"free": 0})())
    with pytest.raises(io.DiskFullError, match="No space left on device"):
        write("d.nc")
    assert _hidden(tmp_path) == [] and not list(tmp_path.glob("*.nc"))


def test_a_zarr_cube_or_catalogue_on_a_full_disk_names_where(tmp_path, monkeypatch):
    """They said only 'Error: No space left on device'."""
    pytest.importorskip("zarr")
    import numpy as np
    from conftest import write_raster

    from vercye_lai.outputs import build_cube, write_catalog
    from vercye_lai.outputs import cube as cube_mod

    lai = tmp_path / "lai"
    write_raster(lai / "R_10m_2022-06-01_LAI.tif", np.ones((4, 4), np.float32), nodata=np.nan)
    real = cube_mod.os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(cube_mod.os, "replace", full)
    with pytest.raises(io.DiskFullError, match=f"{tmp_path}: No space left on device .writing c.zarr"):
        build_cube(lai, tmp_path / "c.zarr", region="R", resolution=10)
    monkeypatch.setattr(cube_mod.os, "replace", real)
    from vercye_lai.outputs import catalog as catalog_mod

    monkeypatch.setattr(catalog_mod.shutil, "move", full)
    monkeypatch.setattr(catalog_mod.os, "replace", full)
    with pytest.raises(io.DiskFullError, match="No space left on device .writing catalog.json"):
        write_catalog(tmp_path)


def test_run_on_a_full_disk_stops(tmp_path, full_disk):
    cfg = dataclasses.replace(load_config(qvidja_config(tmp_path)), output_root=tmp_path / "out",
                              layout=Layout(lai=str(full_disk)))
    summary = run_pipeline(cfg)
    assert summary.ok is False
    assert summary.stopped == "No space left on device: stopped in step predict; not run: analyze, quicklook"
    (predict,) = [s for s in summary.steps if s.step == "predict"]
    assert [u.status for u in predict.units] == ["failed"]  # the two later dates not attempted
    assert json.loads((tmp_path / "out" / "run_summary.json").read_text())["stopped"] == summary.stopped
    assert _hidden(full_disk) == []
    # the whole output root on the full disk: not even the summary can be written
    cfg = qvidja_config(tmp_path)
    cfg.write_text(cfg.read_text().replace('output_root = "out"', f'output_root = "{full_disk}"'))
    r = CliRunner().invoke(cli, ["-q", "run", str(cfg)])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "Traceback" not in out and "Logging error" not in out
    assert "No space left on device" in out
    assert _hidden(full_disk) == []


def test_predict_into_a_read_only_folder(tmp_path, read_only):
    s2 = copy_qvidja(tmp_path / "s2")
    r = CliRunner().invoke(cli, ["-q", "predict", str(s2), str(read_only), "--region", "qvidja"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "Traceback" not in out
    assert f"{read_only}: read-only file system: cannot write qvidja_20m_2023-06-09_LAI" in out
    assert not list(read_only.iterdir())
    # a folder to create inside it: the CLI's one line
    r = CliRunner().invoke(cli, ["-q", "predict", str(s2), str(read_only / "lai"), "--region", "qvidja"])
    line = " ".join(r.output.split())
    assert r.exit_code == 1 and "Traceback" not in line and str(read_only / "lai") in line


def _non_utf8(parent: Path, name: bytes) -> Path:
    p = os.fsencode(parent) + b"/" + name
    os.mkdir(p)
    return Path(os.fsdecode(p))  # what Python hands over: surrogates for the bad bytes


def test_non_utf8_folder_names_fail_that_path_in_one_line(tmp_path):
    s2 = copy_qvidja(_non_utf8(tmp_path, b"caf\xff"))
    r = CliRunner().invoke(cli, ["-q", "predict", str(s2), str(tmp_path / "lai"), "--region", "qvidja"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "Traceback" not in out and "UnicodeEncodeError" not in out
    assert "caf\\xff/qvidja_20m_2023-06-09.tif: path is not valid UTF-8" in out
    ok = copy_qvidja(tmp_path / "s2")
    lai = _non_utf8(tmp_path, b"lai\xfe")
    r = CliRunner().invoke(cli, ["-q", "predict", str(ok), str(lai), "--region", "qvidja"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "lai\\xfe/qvidja_20m_2023-06-09_LAI.tif: path is not valid UTF-8" in out
    assert not list(lai.iterdir())
    # analyze with a geometry file under such a folder
    r = CliRunner().invoke(cli, ["-q", "predict", str(ok), str(tmp_path / "lai"),
                               "--region", "qvidja"])
    assert r.exit_code == 0, r.output
    geom = lai / "aoi.geojson"
    geom.write_bytes((DATA / "qvidja" / "qvidja_ec_field_aoi.geojson").read_bytes())
    r = CliRunner().invoke(cli, ["-q", "analyze", str(tmp_path / "lai"), str(tmp_path / "out"), "qvidja",
                                 str(geom), "--res", "20"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "Traceback" not in out and "lai\\xfe/aoi.geojson" in out, out
