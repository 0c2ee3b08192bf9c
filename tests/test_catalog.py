"""The STAC catalogue of a run's products, loaded with pystac and odc-stac, offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import write_raster

from vercye_lai.cli.main import cli
from vercye_lai.io import files_under
from vercye_lai.outputs.catalog import write_catalog

pystac = pytest.importorskip("pystac")


@pytest.fixture
def root(tmp_path):
    out = tmp_path / "run"
    rng = np.random.default_rng(3)
    for day in ("2022-06-01", "2022-06-04"):
        write_raster(out / "lai" / "R" / f"R_10m_{day}_LAI.tif", rng.uniform(0, 6, (12, 16)).astype(np.float32),
                     nodata=np.nan)
        write_raster(out / "lai" / "R" / f"R_10m_{day}_LAI_flags.tif", np.zeros((12, 16), np.uint8), nodata=255)
        write_raster(out / "stacks" / "R" / f"R_10m_{day}.tif", np.ones((11, 12, 16), np.int16), nodata=-32768)
    write_raster(out / "lai" / "R" / "R_30m_2022-06-02_L30_LAI.tif", np.full((4, 6), 2.0, np.float32), nodata=np.nan)
    return out


def test_catalog_items_assets_and_pixels(root, tmp_path):
    r = CliRunner().invoke(cli, ["-q", "catalog", str(root)])
    assert r.exit_code == 0, r.output
    # moved elsewhere, it still works: every link is relative
    moved = tmp_path / "moved"
    shutil.move(root, moved)
    cat = pystac.read_file(str(moved / "stac" / "catalog.json"))
    (coll,) = list(cat.get_children())
    assert coll.id == "R"
    items = sorted(coll.get_items(), key=lambda i: i.id)
    assert [i.id for i in items] == ["R_2022-06-01", "R_2022-06-02_L30", "R_2022-06-04"]
    first = items[0]
    assert set(first.assets) == {"LAI", "LAI_flags", "stack"}
    lai = first.assets["LAI"].to_dict()
    assert lai["proj:shape"] == [12, 16] and lai["raster:bands"][0]["data_type"] == "float32"
    assert lai["raster:bands"][0]["unit"] == "m2 m-2"
    bits = first.assets["LAI_flags"].to_dict()["classification:bitfields"]
    assert [b["offset"] for b in bits] == [0, 1, 2, 3, 4, 5, 6]  # SNAP's bits, calibration domain, haze
    assert bits[6]["name"] == "haze"
    for item in (json.loads((moved / "stac" / "R" / i.id / f"{i.id}.json").read_text()) for i in items):
        assert all(not a["href"].startswith("/") for a in item["assets"].values())
    odc_stac = pytest.importorskip("odc.stac")
    ds = odc_stac.load([items[0], items[2]], bands=["LAI"], chunks=None)
    for k, item in enumerate((items[0], items[2])):
        with rasterio.open(item.assets["LAI"].get_absolute_href()) as src:
            np.testing.assert_array_equal(ds["LAI"].isel(time=k).values, src.read(1))
    # a rerun replaces the catalogue (no stray temporary folder)
    assert CliRunner().invoke(cli, ["-q", "catalog", str(moved)]).exit_code == 0
    assert not [p for p in (*moved.iterdir(), *(moved / "stac").iterdir()) if p.name.startswith(".")]
    assert not (moved / "R").exists() and not (moved / "catalog.json").exists()  # nothing in the user's root


def test_another_runs_temporary_folders_are_not_read(root):
    """A catalogue or cube being written by another run (a hidden ``….part`` folder) holds no
    product of this one; walking into it raced with its removal (FileNotFoundError)."""
    hidden = root / "stac" / ".catalog.json.otherhost~1~abc.part" / "R"
    write_raster(hidden / "R_10m_2022-06-09_LAI.tif", np.ones((2, 2), np.float32), nodata=np.nan)
    assert not [p for p in files_under(root, ".tif") if ".part" in str(p)]
    cat = pystac.read_file(write_catalog(root))
    assert sorted(i.id for i in cat.get_items(recursive=True)) == ["R_2022-06-01", "R_2022-06-02_L30", "R_2022-06-04"]


@pytest.mark.slow
def test_two_runs_writing_one_catalogue_at_once_both_succeed(root):
    """Two processes write the catalogue of one folder 15 times each, side by side: no error
    (one walked into the other's temporary folder as it was moved away, another removed an
    item the other had just moved: 1-2 failures in 40 writes each), and the catalogue is whole."""
    script = "import sys; from vercye_lai.outputs.catalog import write_catalog\n" \
             "for _ in range(15): write_catalog(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(root)], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    items = list(pystac.read_file(root / "stac" / "catalog.json").get_items(recursive=True))
    assert len(items) == 3 and all(Path(i.get_self_href()).exists() for i in items)
