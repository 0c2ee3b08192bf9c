"""``vercye-lai run``: config validation, the example config, skipping, --dry-run, --only,
the summary and the log, and the exit code."""

from __future__ import annotations

import json
import os
import shutil
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import AOI, DATA, QVIDJA, qvidja_config, write_run_config

from vercye_lai.cli.main import cli
from vercye_lai.errors import ConfigError
from vercye_lai.run import EXAMPLE_CONFIG, STEPS, load_config, parse_config, run_pipeline


def invoke(*args):
    return CliRunner().invoke(cli, ["-q", *map(str, args)])


def counts(summary: dict) -> dict[str, tuple[int, int, int]]:
    return {s["step"]: (s["done"], s["skipped"], s["failed"]) for s in summary["steps"]}


# --- the config -----------------------------------------------------------------------


def test_example_config_prints_and_loads(tmp_path):
    r = invoke("run", "--example-config")
    assert r.exit_code == 0, r.output
    assert r.output == EXAMPLE_CONFIG
    cfg = load_config(write_run_config(tmp_path / "example.toml", r.output))  # as printed: no file to add
    assert cfg.output_root == tmp_path / "vercye-lai-run"  # relative to the config file
    assert cfg.regions[0].name == "strickhof" and cfg.executor == "threads"
    assert cfg.analyses[0].options.adjustment == "wheat" and cfg.dask.cluster == "local"


@pytest.mark.slow
def test_the_example_config_runs_as_printed(tmp_path):
    """``run --example-config > run.toml && run run.toml``: the bundled demo season, whole."""
    cfg = write_run_config(tmp_path / "run.toml", invoke("run", "--example-config").output)
    r = invoke("-q", "run", str(cfg))
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "vercye-lai-run" / "run_summary.json").read_text())
    assert summary["ok"] and [s["step"] for s in summary["steps"]] == list(STEPS)
    assert len(list((tmp_path / "vercye-lai-run" / "lai" / "strickhof").glob("strickhof_10m_*_LAI.tif"))) == 34


def test_yaml_config(tmp_path):
    pytest.importorskip("yaml")
    import yaml

    data = tomllib.loads(qvidja_config(tmp_path).read_text())
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(data))
    assert load_config(p).regions[0].start.isoformat() == "2023-06-09"


@pytest.mark.parametrize(
    "change, message",
    [
        (("executor", {"kind": "mpi"}), "executor.kind: 'mpi' is not allowed; allowed values: serial, threads, dask"),
        (("source", {"kind": "ftp"}), "source.kind: 'ftp' is not allowed; allowed values: local, bands, safe, stac, gee"),
        (("dask", {"cluster": "lsf"}), "dask.cluster: 'lsf' is not allowed; allowed values: local, slurm, pbs"),
        (("predict", {"blok_size": 5}), "predict: unknown key(s) blok_size; allowed keys:"),
        (("predict", {"block_size": "big"}), "predict.block_size: expected an integer, got 'big'"),
        (("predict", {"variables": ["LIA"]}), "predict.variables: 'LIA' is not allowed; allowed values: LAI,"),
        (("analyses", [{"geometry": "x.geojson", "mode": "polygons"}]),
         "analyses[0].mode: 'polygons' is not allowed; allowed values: raster, poly_agg, poly_iter"),
        (("analyses", [{"geometry": "x.geojson", "adjustment": "rice"}]),
         "analyses[0].adjustment: 'rice' is not allowed; allowed values: none, wheat, maize"),
        (("regions", [{"name": "a", "start_date": "2023-06-09"}]), "regions[0].end_date: required key is missing"),
        (("regions", [{"name": "a", "start_date": "2023-06-10", "end_date": "2023-06-09"}]),
         "regions[0]: start_date 2023-06-10 is after end_date 2023-06-09"),
        (("resolution", "20m"), "resolution: expected a number, got '20m'"),
        (("outputroot", "x"), "unknown key(s) outputroot"),
        (("dask", {"cluster": "slurm"}), "dask: cluster = 'slurm' needs 'cores' and 'memory'"),
        # names that name files and folders ("../evil" wrote stacks outside the output folder)
        (("regions", [{"name": "../evil", "start_date": "2023-06-09", "end_date": "2023-06-14"}]),
         "regions[0].name name '../evil': it names files and folders: no '/'"),
        (("regions", [{"name": "", "start_date": "2023-06-09", "end_date": "2023-06-14"}]),
         "regions[0].name name '': it names files and folders"),
        (("analyses", [{"geometry": "x.geojson", "name": "../../x"}]), "analyses[0].name name '../../x'"),
        (("resolution", float("nan")), "resolution: must be a positive number of metres, not nan"),
        (("predict", {"variables": []}), "predict.variables: none given; choose from LAI,"),
        (("analyses", [{"geometry": "x.geojson", "smooth": "savgol", "savgol_window": 4}]),
         "savgol_window: must be odd (a window centred on an observation), not 4"),  # it became 3, silently
    ],
)
def test_config_errors_name_the_key_and_the_allowed_values(tmp_path, change, message):
    data = tomllib.loads(qvidja_config(tmp_path).read_text())
    data[change[0]] = change[1]
    (tmp_path / "x.geojson").write_text("{}")
    with pytest.raises(ConfigError) as exc:
        parse_config(data, base_dir=tmp_path)
    assert message in str(exc.value)


@pytest.mark.parametrize("key", ["regions", "analyses"])
def test_config_input_files_must_exist(tmp_path, key):
    data = tomllib.loads(qvidja_config(tmp_path).read_text())
    data[key][0]["geometry"] = "nope.geojson"
    with pytest.raises(ConfigError) as exc:
        parse_config(data, base_dir=tmp_path)
    assert str(exc.value) == f"{key}[0].geometry: file does not exist: {tmp_path / 'nope.geojson'}"


def test_config_error_on_the_command_line(tmp_path):
    p = write_run_config(tmp_path / "bad.toml", 'output_root = "o"\n[[regions]]\nname = "x"\n'
                         'start_date = 2023-01-01\nend_date = 2023-01-02\n[source]\nkind = "local"\n'
                         'path = "s"\n[executor]\nkind = "cluster"\n')
    r = invoke("run", p)
    assert r.exit_code == 1
    assert "executor.kind: 'cluster' is not allowed; allowed values: serial, threads, dask" in r.output
    r = invoke("run", tmp_path / "missing.toml")
    assert r.exit_code == 1 and "cannot read the config file" in r.output
    (tmp_path / "broken.toml").write_text("output_root = ")
    assert "invalid TOML" in invoke("run", tmp_path / "broken.toml").output
    (tmp_path / "latin1.toml").write_bytes('# café\noutput_root = "o"\n'.encode("latin-1"))
    r = invoke("run", tmp_path / "latin1.toml")
    assert r.exit_code == 1 and "latin1.toml: not UTF-8 text (byte 5: b'\\xe9'); save it as UTF-8" in r.output


def test_a_model_or_calibration_that_cannot_load_stops_the_run_before_any_step(tmp_path):
    """Its model has no error network for [predict] uncertainty, an analysis' calibration file
    is not one, its fields are points: the run says so at once, naming the file, rather than
    after the acquisition (hours, for Earth Engine) and prediction."""
    cfg = qvidja_config(tmp_path, extra='[predict]\nuncertainty = true\nmodel = "snap-3.0-s2a"\n')
    r = invoke("run", cfg)
    assert r.exit_code == 1
    assert "run.toml: [predict] model 'snap-3.0-s2a' has no error network for uncertainty" in " ".join(r.output.split())
    assert not (tmp_path / "out" / "run_summary.json").exists() and not (tmp_path / "out" / "lai").exists()
    only = invoke("run", cfg, "--only", "analyze")  # a step that does not predict runs (and finds no LAI)
    assert "[predict]" not in only.output and (tmp_path / "out" / "run_summary.json").exists()
    (tmp_path / "cal.json").write_text('{"kind": "poly9"}')  # an analysis' calibration file, the same
    text = cfg.read_text().replace("uncertainty = true", "uncertainty = false")
    cfg.write_text(text.replace('mode = "poly_agg"', f'mode = "poly_agg"\nadjustment = "{tmp_path / "cal.json"}"'))
    r = invoke("run", cfg, "--only", "predict", "--only", "analyze")
    assert r.exit_code == 1 and "cal.json: not a calibration file of vercye-lai calibrate" in r.output
    points = tmp_path / "points.geojson"  # fields that are points: seen in the file's metadata
    points.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
                      '"geometry": {"type": "Point", "coordinates": [22.4, 60.3]}}]}')
    cfg.write_text(cfg.read_text().replace(f'adjustment = "{tmp_path / "cal.json"}"', "").replace(str(AOI), str(points)))
    r = invoke("run", cfg)
    assert r.exit_code == 1 and "points.geojson: geometries must be polygons in the polygon modes" in r.output
    mask = tmp_path / "mask.tif"  # a crop mask without georeferencing
    with rasterio.open(mask, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8") as ds:
        ds.write(np.ones((1, 4, 4), np.uint8))
    cfg.write_text(cfg.read_text().replace(str(points), str(mask)).replace('mode = "poly_agg"', 'mode = "raster"'))
    r = invoke("run", cfg)
    assert r.exit_code == 1 and "mask.tif: raster is not georeferenced" in r.output
    assert not (tmp_path / "out" / "lai").exists()  # before predict ran


# --- running --------------------------------------------------------------------------


@pytest.mark.slow  # 2 s: three runs of the pipeline
def test_run_skip_dry_run_and_only(tmp_path):
    cfg_path = qvidja_config(tmp_path, quicklook=True)
    out = tmp_path / "out"
    r = invoke("run", cfg_path)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["ok"] and [s["step"] for s in summary["steps"]] == list(STEPS)
    assert counts(summary) == {"acquire": (0, 1, 0), "mosaic": (0, 1, 0), "predict": (3, 0, 0),
                               "analyze": (1, 0, 0), "quicklook": (1, 0, 0)}
    lai = sorted((out / "lai" / "qvidja").glob("*_LAI.tif"))
    assert len(lai) == 3
    field_dir = out / "analysis" / "qvidja" / "field"
    assert len(list(field_dir.glob("*_STATS.csv"))) == 1 and len(list(field_dir.glob("*_QUICKLOOK.png"))) == 1
    log_text = (out / "run.log").read_text()
    assert "predict qvidja 2023-06-09: done" in log_text
    for s in summary["steps"]:
        assert {"done", "skipped", "failed", "seconds", "units"} <= set(s)
    assert "run summary" in r.output and "predict" in r.output

    # a second run does nothing
    r = invoke("run", cfg_path)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "run_summary.json").read_text())
    assert all(s["done"] == 0 and s["failed"] == 0 for s in summary["steps"])

    # a newer stack: that date, the analysis and the quicklook are due again
    stack = tmp_path / "stacks" / "qvidja_20m_2023-06-11.tif"
    future = lai[1].stat().st_mtime + 10
    os.utime(stack, (future, future))
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    r = invoke("run", cfg_path, "--dry-run")
    assert r.exit_code == 0, r.output
    assert "predict qvidja 2023-06-11: planned" in r.output
    assert "analyze qvidja field: planned - after predict" in r.output  # its LAI input will change
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before  # nothing written

    r = invoke("run", cfg_path, "--only", "predict")
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "run_summary.json").read_text())
    assert counts(summary) == {"predict": (1, 2, 0)}
    # the LAI file changed: the analysis' manifest no longer matches
    summary = run_pipeline(load_config(cfg_path), only=["analyze", "quicklook"])
    assert [(s.step, s.count("done")) for s in summary.steps] == [("analyze", 1), ("quicklook", 1)]


def test_failures_are_reported_and_exit_1(tmp_path):
    cfg_path = qvidja_config(tmp_path)
    bad = tmp_path / "stacks" / "qvidja_20m_2023-06-14.tif"
    bad.write_bytes(b"not a tiff")
    r = invoke("run", cfg_path)
    assert r.exit_code == 1
    assert "predict qvidja 2023-06-14: failed" in r.output
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    assert not summary["ok"]
    assert counts(summary)["predict"] == (2, 0, 1)
    unit = [u for s in summary["steps"] for u in s["units"] if u["status"] == "failed"][0]
    assert "cannot open raster" in unit["reason"]
    # the other dates were analysed all the same
    assert counts(summary)["analyze"] == (1, 0, 0)


def test_an_interrupted_run_says_so_in_its_summary(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM in a step left a summary that said "ok": true, "stopped": ""."""
    from vercye_lai.run import runner

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setitem(runner._STEP_FUNCS, "analyze", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(load_config(qvidja_config(tmp_path)))
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    assert not summary["ok"] and summary["stopped"].startswith("interrupted in step analyze; not run: ")
    assert [s["step"] for s in summary["steps"]][-1] == "predict"


def test_a_failed_acquisition_fails_once_and_the_steps_after_it_say_not_run(tmp_path):
    """The cause is reported where it happened; the steps that had nothing to read because of
    it say so ('not run: acquire failed'), not a failure each of their own. A dry run says the
    steps wait for the earlier ones, not that a folder is missing."""
    cfg = load_config(qvidja_config(tmp_path))
    shutil.rmtree(tmp_path / "stacks")
    summary = run_pipeline(cfg, only=["acquire", "predict", "analyze"])
    assert not summary.ok
    assert [s.status for s in summary.steps] == ["failed", "skipped", "skipped"]
    assert "does not exist" in summary.steps[0].units[0].reason
    assert [u.reason for s in summary.steps[1:] for u in s.units] == ["not run: acquire failed"] * 2
    dry = run_pipeline(load_config(qvidja_config(tmp_path / "fresh")), dry_run=True)
    reasons = [u.reason for s in dry.steps if s.step in ("analyze",) for u in s.units]
    assert reasons and all(r.startswith("after the earlier steps (nothing to read yet") for r in reasons)


def test_only_rejects_unknown_steps(tmp_path):
    cfg = load_config(qvidja_config(tmp_path))
    with pytest.raises(ConfigError, match="allowed values: acquire, mosaic, predict, analyze, quicklook"):
        run_pipeline(cfg, only=["predcit"])
    r = invoke("run", qvidja_config(tmp_path), "--only", "predcit")
    assert r.exit_code == 2


def test_mosaic_step_builds_vrts_of_multi_part_dates(tmp_path):
    """A date split into parts (Earth Engine export) gets a VRT that predict then reads."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    src = QVIDJA / "qvidja_20m_2023-06-09.tif"
    with rasterio.open(src) as ds:
        data, profile = ds.read(), ds.profile
        descriptions, scales = ds.descriptions, ds.scales
        half = ds.width // 2
        for n, (c0, w) in enumerate(((0, half), (half, ds.width - half))):
            win = Window(c0, 0, w, ds.height)
            p = dict(profile, width=w, transform=ds.window_transform(win))
            dst = parts_dir / f"qvidja_20m_2023-06-09-0000000000-{n:010d}.tif"
            with rasterio.open(dst, "w", **p) as out:
                out.write(data[:, :, c0:c0 + w])
                for i, d in enumerate(descriptions, 1):
                    out.set_band_description(i, d)
                out.scales = scales
    cfg_path = qvidja_config(tmp_path)
    text = cfg_path.read_text().replace(str(tmp_path / "stacks"), str(parts_dir))
    cfg = load_config(write_run_config(cfg_path, text))
    summary = run_pipeline(cfg, only=["mosaic", "predict"])
    assert summary.ok, summary.to_dict()
    vrt = tmp_path / "out" / "stacks" / "qvidja" / "qvidja_20m_2023-06-09.vrt"
    assert vrt.exists()
    assert [s.count("done") for s in summary.steps] == [1, 1]
    # same LAI as from the whole stack
    ref = run_pipeline(load_config(qvidja_config(tmp_path / "ref")), only=["predict"])
    assert ref.ok
    name = "qvidja_20m_2023-06-09_LAI.tif"
    with rasterio.open(tmp_path / "out" / "lai" / "qvidja" / name) as a, \
            rasterio.open(tmp_path / "ref" / "out" / "lai" / "qvidja" / name) as b:
        assert np.array_equal(a.read(), b.read(), equal_nan=True)
    again = run_pipeline(cfg, only=["mosaic"])
    assert again.steps[0].units[0].status == "skipped"


def test_safe_source_acquires_then_predicts(tmp_path):
    """source.kind = "safe": stacks from a real (cropped) L2A SAFE, then predict on them."""
    import geopandas as gpd
    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping, shape

    safe = DATA / "safe_T29UNU" / "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
    inner = box(521580.0 + 120, 5892840.0 + 120, 532380.0 - 120, 5900040.0 - 120)  # inside the crop
    region = shape(transform_geom("EPSG:32629", "EPSG:4326", mapping(inner)))
    gpd.GeoDataFrame(geometry=[region], crs="EPSG:4326").to_file(tmp_path / "ie.geojson")
    cfg = load_config(write_run_config(tmp_path / "safe.toml", f"""
output_root = "out"
resolution = 60
[[regions]]
name = "ie"
geometry = "ie.geojson"
start_date = 2022-10-01
end_date = 2022-10-31
[source]
kind = "safe"
safes = ["{safe.parent}/*.SAFE"]
[executor]
kind = "serial"
"""))
    summary = run_pipeline(cfg, only=["acquire", "mosaic", "predict"])
    assert summary.ok, summary.to_dict()
    assert [s.count("done") for s in summary.steps] == [1, 0, 1]
    assert (tmp_path / "out" / "stacks" / "ie" / "ie_60m_2022-10-05.tif").exists()
    assert (tmp_path / "out" / "lai" / "ie" / "ie_60m_2022-10-05_LAI.tif").exists()
    again = run_pipeline(cfg, only=["acquire", "predict"])
    assert [s.units[0].status for s in again.steps] == ["skipped", "skipped"]


@pytest.mark.slow  # 0.8 s: two runs
def test_outputs_truncated_outside_the_tool_are_made_again(tmp_path):
    """A half-copied product or CSV (a sync cut short), newer than its inputs, is not "up to date"."""
    cfg_path = qvidja_config(tmp_path)
    out = tmp_path / "out"
    assert invoke("run", cfg_path).exit_code == 0

    def cut(p: Path) -> bytes:
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        os.utime(p, (time.time() + 60, time.time() + 60))  # only its whole-ness can tell
        return data

    lai = out / "lai" / "qvidja" / "qvidja_20m_2023-06-11_LAI.tif"
    cut(lai)
    assert invoke("run", cfg_path).exit_code == 0
    summary = json.loads((out / "run_summary.json").read_text())
    assert counts(summary)["predict"] == (1, 2, 0)
    assert f"{lai}: existing file cannot be read whole" in (out / "run.log").read_text()
    with rasterio.open(lai) as ds:
        ds.read()  # whole again
    csv = next((out / "analysis" / "qvidja" / "field").glob("*_STATS.csv"))
    whole = cut(csv)
    assert invoke("run", cfg_path).exit_code == 0
    summary = json.loads((out / "run_summary.json").read_text())
    assert counts(summary)["predict"] == (0, 3, 0) and counts(summary)["analyze"] == (1, 0, 0)
    assert csv.read_bytes() == whole
    # cut at a line's end (it still reads whole): not the analysis' any more, made again
    lines = whole.decode().splitlines(keepends=True)
    csv.write_text("".join(lines[: len(lines) // 2]))
    assert invoke("run", cfg_path).exit_code == 0
    assert counts(json.loads((out / "run_summary.json").read_text()))["analyze"] == (1, 0, 0)
    assert csv.read_bytes() == whole


@pytest.mark.slow  # 0.7 s
def test_an_analysis_that_failed_half_way_is_not_vouched_for_by_its_old_manifest(tmp_path, monkeypatch):
    """Outputs are replaced zone by zone: a rerun with other options that failed after the first
    left new files beside old ones, which the old manifest vouched for when the old options came back."""
    from vercye_lai.analysis import finish

    cfg_path = qvidja_config(tmp_path)
    out = tmp_path / "out"
    assert invoke("run", cfg_path).exit_code == 0
    folder = out / "analysis" / "qvidja" / "field"
    assert (folder / "MANIFEST.json").exists()

    def fails(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(finish, "write_stats_csv", fails)
    text = cfg_path.read_text().replace('mode = "poly_agg"', 'mode = "poly_agg"\nsmooth = "savgol"')
    cfg_path.write_text(text)
    assert invoke("run", cfg_path, "--only", "analyze").exit_code == 1
    assert not (folder / "MANIFEST.json").exists()  # nothing vouches for the folder now
    monkeypatch.undo()
    cfg_path.write_text(text.replace('\nsmooth = "savgol"', ""))
    assert invoke("run", cfg_path, "--only", "analyze").exit_code == 0
    assert counts(json.loads((out / "run_summary.json").read_text()))["analyze"] == (1, 0, 0)


@pytest.mark.slow  # 0.5 s
def test_run_publishes_a_catalogue_and_a_report(tmp_path):
    pytest.importorskip("bokeh")
    cfg_path = qvidja_config(tmp_path)
    assert invoke("run", cfg_path).exit_code == 0
    out = tmp_path / "out"
    import pystac

    items = list(pystac.read_file(str(out / "stac" / "catalog.json")).get_items(recursive=True))
    assert len(items) == 3 and all("LAI" in i.assets for i in items)
    page = (out / "report.html").read_text()
    assert "Run summary" in page and "<script src=" not in page
    # a report that cannot be written is the run's failure (it said "ok": true, exit 0)
    (out / "report.html").unlink()
    (out / "report.html").mkdir()
    r = invoke("run", cfg_path)
    summary = json.loads((out / "run_summary.json").read_text())
    assert r.exit_code == 1 and not summary["ok"] and summary["unpublished"][0].startswith("report not written")


def test_two_sources_of_one_sensor_are_refused_by_name(tmp_path):
    """Two Sentinel-2 sources would write one stack name per date: the second's tile would be
    dropped while both say done. The config names the pair; sources of two sensors are fine."""
    cfg = qvidja_config(tmp_path)
    text = cfg.read_text().replace('[source]\nkind = "local"', '[[source]]\nkind = "local"')
    two = text + f'\n[[source]]\nkind = "bands"\nfiles = ["{tmp_path}/x/*.tif"]\n'
    with pytest.raises(ConfigError, match=r"source\[1\] \(bands\) and source\[0\] \(local\) both make S2 stacks"):
        load_config(write_run_config(tmp_path / "two.toml", two))
    mixed = text.replace('start_date', f'geometry = "{AOI}"\nstart_date', 1) + \
        '\n[[source]]\nkind = "hls"\npaths = ["hls/"]\nproducts = ["L30"]\n'
    assert [s.kind for s in load_config(write_run_config(tmp_path / "mixed.toml", mixed)).sources] == ["local", "hls"]
