"""The demo end to end on the bundled real data, and the in-situ agreement arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner

from vercye_lai.io import read_values
from vercye_lai.cli.main import cli
from vercye_lai.insitu.agreement import Agreement
from vercye_lai.run import load_config
from vercye_lai.run.demo import demo_insitu

pytestmark = pytest.mark.slow  # the whole demo, twice


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    r = CliRunner().invoke(cli, ["-q", "demo", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out, r.output


def test_demo_writes_every_step(demo_run):
    out, output = demo_run
    # what it ran, to copy: a run config of the same season, and the run's record
    cfg = load_config(out / "run.toml")
    assert cfg.output_root == out / "run" and cfg.resolution == 10 and cfg.sources[0].kind == "bands"
    assert json.loads((out / "run_summary.json").read_text())["ok"]
    stacks = sorted((out / "stacks").glob("strickhof_10m_*.tif"))
    lai = sorted((out / "lai").glob("strickhof_10m_*_LAI.tif"))
    assert len(stacks) == len(lai) == 34  # 37 files, 34 distinct dates
    # the docs' figure: the 15 June product has 108 pixels that SCL calls clear; the haze test
    # masks the 44 seen through the veil at the edge of that day's cloud: 64 of mean LAI 2.44
    with rasterio.open(out / "lai" / "strickhof_10m_2022-06-15_LAI.tif") as ds:
        values = read_values(ds)
    with rasterio.open(out / "lai" / "strickhof_10m_2022-06-15_LAI_flags.tif") as ds:
        flags = ds.read(1)
    assert np.isfinite(values).sum() == 64 and ((flags != 255) & (flags & 64 > 0)).sum() == 44
    assert np.nanmean(values) == pytest.approx(2.443, abs=0.005)
    stats = sorted((out / "analysis").glob("*_STATS.csv"))
    # strickhof_fields_{field}_…: the geometry's name holds the region, which is not repeated
    assert [p.name.split("_")[2] for p in stats] == ["Bramenwies", "Fluegenrain", "Hohrueti"]
    assert all(p.name.startswith("strickhof_fields_") for p in stats)
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 5 and all(p.stat().st_size > 20_000 for p in pngs)
    for p in stats + pngs:
        assert str(p) in output  # the CLI says where every output is


def test_demo_insitu_agreement_is_reported(demo_run, tmp_path):
    out, output = demo_run
    pairs = pd.read_csv(out / "strickhof_insitu_matched.csv")
    # 34 field-days measured between 2022-03-11 and 06-17; the first date before the first image is dropped
    assert 25 <= len(pairs) <= 36 and set(pairs["zone"]) == {"Bramenwies", "Fluegenrain", "Hohrueti"}
    a = Agreement.of(pairs["LAI Mean"], pairs["insitu"])
    # the docs' figures (n 32, RMSE 1.15, bias +0.06, r 0.87), to a tolerance far below a
    # change of the science and far above the ulps a CPU's kernels may move them
    assert a.n == 32
    assert (a.rmse, a.bias, a.r) == pytest.approx((1.153, 0.057, 0.866), abs=0.005)
    assert f"| LAI Mean | all | {a.n} | {a.rmse:.2f} |" in output
    metrics = pd.read_csv(out / "strickhof_insitu_metrics.csv")
    assert metrics.loc[metrics.group.eq("all") & metrics.estimate.eq("LAI Mean"), "rmse"].item() == \
        pytest.approx(a.rmse, abs=1e-4)
    # the same figures as the command (its outputs elsewhere: the demo's folder is the other tests' to count)
    r = CliRunner().invoke(cli, ["-q", "validate", str(demo_insitu()), "--series", str(out / "analysis"), "--zone-column",
                                 "parcel", "-o", str(tmp_path / "val")])
    assert r.exit_code == 0, r.output
    assert f"| LAI Mean | all | {a.n} | {a.rmse:.2f} |" in r.output


def test_demo_rerun_redoes_nothing(demo_run):
    """A rerun goes through the same runner and finds every output up to date: no file is
    written again (stacks, products, analysis, quicklooks, maps, in-situ comparison)."""
    out, first = demo_run
    def products():  # the run's record (run_summary.json) is of each run: not a product
        return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "run_summary.json"}

    files = products()
    assert len(files) > 3 * 34 + 10
    r = CliRunner().invoke(cli, ["-q", "demo", "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert products() == files
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["ok"] and all(s["status"] == "skipped" for s in summary["steps"])  # this rerun's record
    table = first[first.index("| estimate"):]
    assert table in r.output  # the same figures reported


def test_agreement_arithmetic():
    a = Agreement.of(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 3.0]))
    assert a.n == 3 and a.bias == pytest.approx(0.0) and a.rmse == pytest.approx(np.sqrt(2 / 3))
    assert a.mae == pytest.approx(2 / 3) and a.slope == pytest.approx(1.0)
    assert Agreement.of(np.array([1.0, np.nan]), np.array([2.0, 3.0])).n == 1  # NaN pairs left out
