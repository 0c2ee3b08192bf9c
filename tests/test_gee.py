"""Earth Engine export, offline: pure planning/state parts, and the ``ee`` calls against a
recording test double of the ``ee`` module (Earth Engine itself is unreachable here)."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from itertools import count

import pytest
from click.testing import CliRunner
from shapely.geometry import box

from vercye_lai.acquire import gee
from vercye_lai.bands import S2_BANDS_20M
from vercye_lai.cli.main import cli
from vercye_lai.errors import DataIOError, DependencyError, InputError, NoDataFoundError
from vercye_lai.naming import date_range

# --------------------------------------------------------------------------- the ee double


class Node:
    """A server-side object of the fake: remembers the call that made it (op, receiver, args)."""

    def __init__(self, fake, op, recv=None, args=(), kwargs=None):
        self._fake, self.op, self.recv, self.args, self.kwargs = fake, op, recv, args, kwargs or {}

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return Method(self._fake, self, name)

    def __repr__(self):
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        head = f"{self.recv!r}." if self.recv is not None else ""
        return f"{head}{self.op}({', '.join(parts)})"


class Lambda:
    """The body a ``map`` callback built, applied to a placeholder element ``img``."""

    def __init__(self, body):
        self.body = body

    def __repr__(self):
        return f"lambda img: {self.body!r}"


class Method:
    """An attribute path such as ``ee.Image.constant`` or ``coll.filterDate``; calling it
    records the call and returns a new :class:`Node` (or a canned answer)."""

    def __init__(self, fake, recv, name):
        self._fake, self.recv, self.name = fake, recv, name

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return Method(self._fake, self.recv, f"{self.name}.{name}")

    def __call__(self, *args, **kwargs):
        fake = self._fake
        args = tuple(
            Lambda(a(Node(fake, "img"))) if callable(a) and not isinstance(a, Node | Method) else a
            for a in args
        )
        recv = None if self.recv is fake.root else self.recv
        node = Node(fake, self.name, recv, args, kwargs)
        fake.calls.append(node)
        special = fake.special.get(self.name)
        return special(node) if special else node


class FakeEE:
    """Stands in for the ``ee`` module: records every call, returns chainable fakes.

    ``info[op]`` is what ``x.op(...).getInfo()`` returns; ``task_states[id]`` is the list of
    states ``ee.data.getTaskStatus`` reports for a task, one per poll (the last one sticks).
    """

    class EEException(Exception):
        pass

    def __init__(self):
        self.calls: list[Node] = []
        self.root = object()
        self.info: dict[str, object] = {}
        self.tasks: list[FakeTask] = []
        self.task_states: dict[str, list[str]] = {}
        self._ids = count(1)
        self.special = {
            "getInfo": lambda n: self.info[n.recv.op],
            "batch.Export.image.toDrive": self._to_drive,
            "data.getTaskStatus": self._status,
        }

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return Method(self, self.root, name)

    def _to_drive(self, node):
        task = FakeTask(f"TASK{next(self._ids)}", node.kwargs)
        self.tasks.append(task)
        return task

    def _status(self, node):
        out = []
        for tid in node.args[0]:
            seq = self.task_states.setdefault(tid, ["RUNNING"])
            state = seq.pop(0) if len(seq) > 1 else seq[0]
            out.append(
                {
                    "id": tid,
                    "state": state,
                    **({"error_message": "boom"} if state == "FAILED" else {}),
                }
            )
        return out

    def ops(self, op):
        return [c for c in self.calls if c.op == op]


class FakeTask:
    def __init__(self, tid, params):
        self.id, self.params, self.started = tid, params, False

    def start(self):
        self.started = True


def evaluate(node, props):
    """Evaluate the numeric part of an angle expression for a scene with ``props``."""
    if not isinstance(node, Node):
        return node
    recv = evaluate(node.recv, props) if node.recv is not None else None
    args = [evaluate(a, props) for a in node.args]
    ops = {
        "img": lambda: None,
        "getNumber": lambda: props[args[0]],
        "subtract": lambda: recv - args[0],
        "multiply": lambda: recv * args[0],
        "Image.constant": lambda: args[0],
        "cos": lambda: math.cos(recv),
        "rename": lambda: recv,
        "toFloat": lambda: recv,
    }
    return ops[node.op]()


def renamed(node):
    """The band name given by the last ``rename`` in a chain."""
    while node.op != "rename":
        node = node.recv
    return node.args[0]


@pytest.fixture
def fake_ee(monkeypatch):
    fake = FakeEE()
    monkeypatch.setitem(sys.modules, "ee", fake)
    return fake


PROPS = {
    "MEAN_INCIDENCE_ZENITH_ANGLE_B8A": 8.0,
    "MEAN_INCIDENCE_AZIMUTH_ANGLE_B8A": 104.0,
    "MEAN_SOLAR_ZENITH_ANGLE": 57.0,
    "MEAN_SOLAR_AZIMUTH_ANGLE": 166.0,
}


def ms(date: str, hour: int = 11) -> int:
    return int(dt.datetime.fromisoformat(f"{date}T{hour:02d}:30:00+00:00").timestamp() * 1000)


# --------------------------------------------------------------------------- pure parts


def test_names_folder_and_description():
    assert (
        gee.export_name("Poltava_Oblast", 20, dt.date(2022, 10, 5))
        == "Poltava_Oblast_20m_2022-10-05"
    )
    assert gee.export_name("x", 10.5, dt.date(2022, 1, 2)) == "x_10.5m_2022-01-02"
    assert gee.drive_folder("Poltava") == "Poltava/"
    assert gee.drive_folder("Poltava", "/vercye_2022/") == "vercye_2022/"
    with pytest.raises(InputError, match="one folder name"):
        gee.drive_folder("Poltava", "vercye/Poltava")
    assert gee.task_description("Kyiv/città_20m") == "Kyiv_citt__20m"
    assert len(gee.task_description("a" * 300)) == 100


def test_date_planning():
    assert date_range(dt.date(2022, 2, 27), dt.date(2022, 3, 1)) == [
        dt.date(2022, 2, 27),
        dt.date(2022, 2, 28),
        dt.date(2022, 3, 1),
    ]
    with pytest.raises(InputError, match="before"):
        date_range(dt.date(2022, 3, 2), dt.date(2022, 3, 1))
    stamps = [ms("2022-10-05"), ms("2022-10-05", 12), ms("2022-10-07", 23), ms("2022-10-09")]
    assert gee.scene_dates(stamps, dt.date(2022, 10, 5), dt.date(2022, 10, 8)) == [
        dt.date(2022, 10, 5),
        dt.date(2022, 10, 7),
    ]


def test_state_file_roundtrip_and_plan(tmp_path):
    path = tmp_path / "state.json"
    st = gee.ExportState(path)
    d = [dt.date(2022, 10, day) for day in (1, 2, 3, 4, 5)]
    names = [gee.export_name("r", 20, x) for x in d]
    for name, s in zip(names[:4], ["RUNNING", "COMPLETED", "FAILED", "READY"]):
        st.update(name, date="x", task_id=f"id-{s}", state=s)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left
    doc = json.loads(path.read_text())
    assert doc["tasks"][names[1]]["state"] == "COMPLETED"

    again = gee.ExportState(path)
    assert {r.name for r in again.active()} == {names[0], names[3]}
    plan = gee.plan_exports(d, region="r", resolution=20, folder="r/", state=again)
    assert [(p.action, p.reason) for p in plan] == [
        ("skip", "RUNNING (task id-RUNNING)"),
        ("skip", "COMPLETED"),
        ("export", "retry after FAILED"),
        ("skip", "READY (task id-READY)"),
        ("export", "new"),
    ]
    plan = gee.plan_exports(d, region="r", resolution=20, folder="r/", state=again, overwrite=True)
    assert [p.action for p in plan] == ["skip", "export", "export", "skip", "export"]
    text = gee.format_plan(plan)
    assert names[4] in text and "3 export(s) to submit, 2 skipped" in text


def test_corrupt_state_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(DataIOError, match="state file") as exc:
        gee.ExportState(path)
    assert str(path) in str(exc.value)


def test_backoff_delays():
    it = gee.backoff_delays(10, 2, 50)
    assert [next(it) for _ in range(5)] == [10, 20, 40, 50, 50]


# --------------------------------------------------------------------------- ee calls


def test_scene_angles_and_masks(fake_ee):
    img = Node(fake_ee, "img")
    stack = gee.scene_stack(fake_ee, img, mask=gee.CloudMask(scl_classes=(3, 8, 9)))
    # angle bands: evaluate the recorded expression numerically
    cat = fake_ee.ops("Image.cat")[0]
    assert [renamed(a) for a in cat.args] == ["cosVZA", "cosSZA", "cosRAA"]
    got = [evaluate(a, PROPS) for a in cat.args]
    want = [
        math.cos(math.radians(8.0)),
        math.cos(math.radians(57.0)),
        math.cos(math.radians(166.0 - 104.0)),
    ]
    assert got == pytest.approx(want)
    # reflectances: the 8 bands in stack order, DN / 10000
    sel = [c for c in fake_ee.ops("select") if c.recv is img]
    assert sel[0].args[0] == list(S2_BANDS_20M[3:])
    assert fake_ee.ops("divide")[0].args == (10000,)
    # SCL: the listed classes map to 0 (masked), everything else to 1
    remap = fake_ee.ops("remap")[0]
    assert remap.recv.op == "select" and remap.recv.args == ("SCL",)
    assert remap.args == ([3, 8, 9], [0, 0, 0], 1)
    assert stack.op == "updateMask" and stack.recv.op == "addBands"


def test_cloud_score_mask(fake_ee):
    mask = gee.CloudMask("cloudscore", cs_threshold=0.65)
    gee.scene_stack(fake_ee, Node(fake_ee, "img"), mask=mask)
    assert not fake_ee.ops("remap")
    gte = fake_ee.ops("gte")[0]
    assert gte.args == (0.65,) and gte.recv.args == ("cs",)
    with pytest.raises(InputError, match="cloud mask"):
        gee.CloudMask("fmask")


def test_date_image_filters_and_scaling(fake_ee):
    geom = fake_ee.Geometry({"type": "Polygon"})
    image = gee.date_image(
        fake_ee,
        collection="COPERNICUS/S2_SR_HARMONIZED",
        geometry=geom,
        date=dt.date(2022, 10, 5),
        max_cloud=20,
        mask=gee.CloudMask("cloudscore"),
    )
    assert fake_ee.ops("ImageCollection")[0].args == ("COPERNICUS/S2_SR_HARMONIZED",)
    assert fake_ee.ops("filterBounds")[0].args == (geom,)
    assert fake_ee.ops("filterDate")[0].args == ("2022-10-05", "2022-10-06")  # one whole UTC day
    assert fake_ee.ops("Filter.lte")[0].args == ("CLOUDY_PIXEL_PERCENTAGE", 20)
    assert fake_ee.ops("sort")[0].args == ("CLOUDY_PIXEL_PERCENTAGE", False)
    link = fake_ee.ops("linkCollection")[0]
    assert link.args[0].args == (gee.CLOUD_SCORE_PLUS,) and link.args[1] == ["cs"]
    # mosaic -> 11 bands in contract order -> ×10000 -> int16 -> nodata inside region -> clip
    chain = []
    node = image
    while node is not None and node.op != "map":
        chain.append((node.op, node.args))
        node = node.recv
    assert chain == [
        ("clip", (geom,)),
        ("unmask", (-32768, False)),
        ("toInt16", ()),
        ("round", ()),
        ("multiply", (10000,)),
        ("select", (list(S2_BANDS_20M),)),
        ("mosaic", ()),
    ]
    assert "lambda img:" in repr(image) and "linkCollection" in repr(image)


def test_export_parameters(fake_ee):
    task = gee.export_task(
        fake_ee,
        "IMG",
        name="r_20m_2022-10-05",
        folder="r/",
        region="GEOM",
        scale=20,
        crs="EPSG:32629",
    )
    assert task.params == {
        "image": "IMG",
        "description": "r_20m_2022-10-05",
        "folder": "r",
        "fileNamePrefix": "r_20m_2022-10-05",
        "region": "GEOM",
        "scale": 20,
        "crs": "EPSG:32629",
        "maxPixels": 10**13,
        "fileFormat": "GeoTIFF",
        "formatOptions": {"noData": -32768},
    }


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def region_file(tmp_path):
    import geopandas as gpd

    path = tmp_path / "Poltava.geojson"
    gpd.GeoDataFrame(
        {"name": ["Poltava"]}, geometry=[box(34.0, 49.0, 35.0, 50.0)], crs=4326
    ).to_file(path)
    return path


def run_export(tmp_path, region_file, *extra):
    args = [
        "export-gee",
        "--project",
        "p",
        "--shpfile",
        str(region_file),
        "--start-date",
        "2022-10-01",
        "--end-date",
        "2022-10-10",
        "--state-file",
        str(tmp_path / "tasks.json"),
        *extra,
    ]
    return CliRunner().invoke(cli, args)


def test_cli_dry_run(fake_ee, tmp_path, region_file):
    fake_ee.info["aggregate_array"] = [ms("2022-10-05"), ms("2022-10-08"), ms("2022-10-08", 12)]
    res = run_export(tmp_path, region_file, "--dry-run", "--max-cloud", "30")
    assert res.exit_code == 0, res.output
    assert "2022-10-05  export  Poltava_20m_2022-10-05  Poltava/  new" in res.output
    assert "Poltava_20m_2022-10-08" in res.output and "2 export(s) to submit" in res.output
    assert not fake_ee.tasks and not (tmp_path / "tasks.json").exists()
    assert fake_ee.ops("Initialize")[0].kwargs == {"project": "p"}
    assert fake_ee.ops("Filter.lte")[0].args == ("CLOUDY_PIXEL_PERCENTAGE", 30.0)


def test_cli_reruns_use_the_state_file(fake_ee, tmp_path, region_file):
    fake_ee.info["aggregate_array"] = [ms("2022-10-05"), ms("2022-10-08")]
    res = run_export(tmp_path, region_file)
    assert res.exit_code == 0, res.output
    assert [t.params["fileNamePrefix"] for t in fake_ee.tasks] == [
        "Poltava_20m_2022-10-05",
        "Poltava_20m_2022-10-08",
    ]
    assert all(t.started for t in fake_ee.tasks)
    assert (
        fake_ee.tasks[0].params["crs"] == "EPSG:32636"
        and fake_ee.tasks[0].params["folder"] == "Poltava"
    )
    state = json.loads((tmp_path / "tasks.json").read_text())["tasks"]
    assert {v["task_id"]: v["state"] for v in state.values()} == {
        "TASK1": "READY",
        "TASK2": "READY",
    }

    # rerun while both still run: nothing new is submitted
    fake_ee.task_states.update(TASK1=["RUNNING"], TASK2=["RUNNING"])
    assert run_export(tmp_path, region_file).exit_code == 0
    assert len(fake_ee.tasks) == 2

    # one completed, one failed: only the failed date is exported again
    fake_ee.task_states.update(TASK1=["COMPLETED"], TASK2=["FAILED"])
    assert run_export(tmp_path, region_file).exit_code == 0
    assert [t.params["fileNamePrefix"] for t in fake_ee.tasks[2:]] == ["Poltava_20m_2022-10-08"]
    state = json.loads((tmp_path / "tasks.json").read_text())["tasks"]
    assert state["Poltava_20m_2022-10-05"]["state"] == "COMPLETED"
    assert state["Poltava_20m_2022-10-08"]["task_id"] == "TASK3"


def test_cli_wait_polls_until_done(fake_ee, tmp_path, region_file, monkeypatch):
    sleeps = []
    monkeypatch.setattr(gee.time, "sleep", sleeps.append)
    fake_ee.info["aggregate_array"] = [ms("2022-10-05"), ms("2022-10-06")]
    fake_ee.task_states.update(
        TASK1=["RUNNING", "COMPLETED"], TASK2=["READY", "RUNNING", "RUNNING", "COMPLETED"]
    )
    res = run_export(tmp_path, region_file, "--wait")
    assert res.exit_code == 0, res.output
    assert "2 COMPLETED" in res.output
    assert sleeps == [10.0, 15.0, 22.5]  # backoff between polls
    fake_ee.task_states.update(TASK3=["FAILED"])
    fake_ee.info["aggregate_array"] = [ms("2022-10-07")]
    res = run_export(tmp_path, region_file, "--wait")
    assert res.exit_code == 1 and "did not complete" in res.output


def test_cli_no_scenes_and_missing_extra(fake_ee, tmp_path, region_file, monkeypatch):
    fake_ee.info["aggregate_array"] = []
    res = run_export(tmp_path, region_file)
    assert res.exit_code == 1
    assert "no COPERNICUS/S2_SR_HARMONIZED scene over region 'Poltava'" in res.output
    with pytest.raises(NoDataFoundError):
        gee.export_gee(
            region="r",
            geometry=box(0, 0, 1, 1),
            start=dt.date(2022, 1, 1),
            end=dt.date(2022, 1, 2),
            resolution=20,
            state_file=tmp_path / "s.json",
        )
    monkeypatch.setitem(sys.modules, "ee", None)
    with pytest.raises(DependencyError, match=r"pip install 'vercye-lai\[gee\]'"):
        gee.import_ee()


def test_cli_region_from_library(fake_ee, tmp_path, region_file):
    fake_ee.info["aggregate_array"] = [ms("2022-10-05")]
    base = [
        "export-gee",
        "--library",
        str(tmp_path),
        "--start-date",
        "2022-10-01",
        "--end-date",
        "2022-10-05",
        "--dry-run",
        "--state-file",
        str(tmp_path / "t.json"),
    ]
    res = CliRunner().invoke(cli, [*base, "--region", "Poltava"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, [*base, "--region", "Poltavaa"])
    assert res.exit_code != 0 and "Poltava" in res.output


def test_cli_cloud_score_and_drive_folder(fake_ee, tmp_path, region_file):
    fake_ee.info["aggregate_array"] = [ms("2022-10-05")]
    res = run_export(
        tmp_path, region_file, "--cloud-mask", "cloudscore", "--cs-threshold", "0.7",
        "--drive-folder", "vercye_2022", "--crs", "EPSG:3857", "--resolution", "10",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    (task,) = fake_ee.tasks
    assert task.params["folder"] == "vercye_2022" and task.params["scale"] == 10
    assert task.params["crs"] == "EPSG:3857"
    assert task.params["fileNamePrefix"] == "Poltava_10m_2022-10-05"
    assert fake_ee.ops("gte")[0].args == (0.7,) and not fake_ee.ops("remap")
