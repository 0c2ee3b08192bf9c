"""A run killed with SIGKILL (the whole process group) and started again completes, with
outputs identical to an uninterrupted run and no half-written or temporary file left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_same_outputs, proc_stat, strickhof_run_config

from vercye_lai.run import load_config, run_pipeline

pytestmark = pytest.mark.slow  # every test kills a run and runs it again

CLI = [sys.executable, "-c", "from vercye_lai.cli.main import main; main()"]


def config(tmp_path: Path, stacks: Path, root: str, kind: str = "threads") -> Path:
    return strickhof_run_config(tmp_path, stacks, root, variables='["LAI", "FAPAR"]', kind=kind,
                                extra="[dask]\nn_workers = 2", fields=many_fields(tmp_path, stacks))


def many_fields(folder: Path, stacks: Path, n: int = 6) -> Path:
    """``n`` x ``n`` square fields tiling the stacks. With the demo's 3 fields the run is done
    some 40 ms after its first CSV, too soon to kill it there reliably; writing ``n * n`` CSVs
    and max maps takes long enough (measured: the first CSV ~1.4 s before the run summary)."""
    import geopandas as gpd
    import rasterio
    from shapely.geometry import box

    with rasterio.open(next(stacks.glob("*.tif"))) as ds:
        (x0, y0, x1, y1), crs = ds.bounds, ds.crs
    w, h = (x1 - x0) / n, (y1 - y0) / n
    boxes = [box(x0 + i * w, y0 + j * h, x0 + (i + 1) * w, y0 + (j + 1) * h)
             for j in range(n) for i in range(n)]
    path = folder / "fields.geojson"
    gpd.GeoDataFrame({"name": [f"f{k:03d}" for k in range(n * n)]}, geometry=boxes,
                     crs=crs).to_crs(4326).to_file(path, driver="GeoJSON")
    return path


def hidden_or_partial(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".") or p.name.endswith(".part")]


def alive_in_group(pgid: int) -> list[int]:
    """Processes of a process group that are not dead (zombies wait for a reaper: dead)."""
    pids = (int(p.name) for p in Path("/proc").glob("[0-9]*"))
    return [pid for pid in pids if (st := proc_stat(pid)) and int(st[2]) == pgid and st[0] != "Z"]


def kill_when(proc: subprocess.Popen, ready, *, timeout: float = 60) -> bool:
    """SIGKILL the process group of ``proc`` as soon as ``ready()``; False if it ended first."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            return False
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            time.sleep(0.2)
            assert alive_in_group(proc.pid) == []  # nothing of the run survived (Dask workers too)
            return True
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the run produced nothing in time")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, strickhof_stacks) -> Path:
    """An uninterrupted run (in this process)."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    assert run_pipeline(load_config(config(tmp, strickhof_stacks, "ref"))).ok
    return tmp / "ref"


@pytest.mark.parametrize("moment, kind", [
    ("first-product", "threads"),
    ("first-analysis-part", "threads"),
    ("first-analysis-file", "threads"),
    ("first-part", "dask"),  # the scheduler, workers and all: the whole process group
])
def test_killed_run_rerun_equals_uninterrupted(tmp_path, strickhof_stacks, reference, moment, kind):
    if kind == "dask":
        pytest.importorskip("distributed")
    cfg = config(tmp_path, strickhof_stacks, "killed", kind)
    out = tmp_path / "killed"
    lai = out / "lai" / "strickhof"
    fields = out / "analysis" / "strickhof" / "fields"
    ready = {
        # a whole date: LAI, FAPAR and their flags (a date's products are finished side by side)
        "first-product": lambda: lai.is_dir() and any(
            all(p.with_name(p.name.replace("_LAI.tif", end)).exists()
                for end in ("_LAI_flags.tif", "_FAPAR.tif", "_FAPAR_flags.tif"))
            for p in lai.glob("*_LAI.tif")),
        "first-analysis-part": lambda: fields.is_dir() and any(fields.glob(".analysis-part.*.npz")),
        "first-analysis-file": lambda: fields.is_dir() and any(fields.glob("*_STATS.csv")),
        "first-part": lambda: lai.is_dir() and any(lai.glob(".*.npz")),
    }[moment]
    proc = subprocess.Popen([*CLI, "-q", "run", str(cfg)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert kill_when(proc, ready), f"the run ended before {moment}: nothing was interrupted"
    assert not (out / "run_summary.json").exists()  # it really died before the end
    # whatever is under a final name opens: no half-written product
    import rasterio

    for p in lai.glob("*.tif"):
        with rasterio.open(p) as ds:
            ds.read(1)

    r = subprocess.run([*CLI, "-q", "run", str(cfg)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["ok"]
    if moment == "first-product":
        predict = next(s for s in summary["steps"] if s["step"] == "predict")
        assert predict["skipped"] >= 1 and predict["done"] >= 1  # resumed, not redone
    assert assert_same_outputs(reference, out) > 3 * 34 + 36  # rasters bit for bit, CSV text
    assert hidden_or_partial(out) == []
