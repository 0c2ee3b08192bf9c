"""Earth Engine export, offline: pure planning/state parts, and the ``ee`` calls against a
recording test double of the ``ee`` module (Earth Engine itself is unreachable here)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import sys
from itertools import count

import numpy as np
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from vercye_lai.acquire import gee, gee_images, gee_tasks
from vercye_lai.cli.main import cli
from vercye_lai.errors import DataIOError, DependencyError, InputError, NoDataFoundError
from vercye_lai.naming import date_range
from vercye_lai.stack import S2_BANDS_20M, STACK_NODATA

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

    ``x.getInfo()`` evaluates ``x`` (:func:`evaluate`) over the scenes of ``catalog``
    (collection id → :class:`Scene` list); ``task_states[id]`` is the list of states
    ``ee.data.getTaskStatus`` reports for a task, one per poll (the last one sticks).
    """

    class EEException(Exception):
        pass

    def __init__(self):
        self.calls: list[Node] = []
        self.root = object()
        self.catalog: dict[str, list[Scene]] = {}
        self.tasks: list[FakeTask] = []
        self.task_states: dict[str, list[str]] = {}
        self._ids = count(1)
        self.special = {
            "getInfo": lambda n: evaluate(n.recv, catalog=self.catalog),
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


SHAPE = (1, 4)  # the pixels of every test image


@dataclasses.dataclass
class Scene:
    """An image the evaluator computes with: band → values, band → valid, properties."""

    bands: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    props: dict = dataclasses.field(default_factory=dict)

    def like(self, bands, masks=None):
        masks = masks if masks is not None else {b: self.masks[b] for b in bands}
        return Scene(dict(bands), dict(masks), self.props)

    def one(self):
        (name,) = self.bands
        return self.bands[name], self.masks[name]


def constant(value, name="constant"):
    return Scene({name: np.full(SHAPE, value, dtype=float)}, {name: np.ones(SHAPE, bool)})


def each(img, fn):
    """``fn`` applied to every band's values, masks kept."""
    return img.like({b: fn(v) for b, v in img.bands.items()})


def ee_round(v):
    return np.sign(v) * np.floor(np.abs(v) + 0.5)  # half away from zero, as Earth Engine


def mosaic(images):
    """Later images on top where they are valid."""
    names = list(images[0].bands)
    out = Scene({b: np.zeros(SHAPE) for b in names}, {b: np.zeros(SHAPE, bool) for b in names})
    for img in images:
        for b in names:
            m = img.masks[b]
            out.bands[b] = np.where(m, img.bands[b], out.bands[b])
            out.masks[b] = out.masks[b] | m
    return out


def day_ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(f"{iso}T00:00:00+00:00").timestamp() * 1000)


def evaluate(node, *, catalog=None, region=None, img=None):
    """Compute a recorded expression: numbers, :class:`Scene` images, lists of them (collections).

    ``catalog`` maps a collection id to its scenes, ``region`` (pixels inside) stands for every
    ``ee.Geometry``, ``img`` for the placeholder a ``map`` callback received.
    """
    env = dict(catalog=catalog or {}, region=np.ones(SHAPE, bool) if region is None else region)

    def ev(n, img=img):
        if isinstance(n, Lambda):
            return lambda x: ev(n.body, img=x)
        if isinstance(n, list | tuple):
            return type(n)(ev(a, img) for a in n)
        if not isinstance(n, Node):
            return n
        r = ev(n.recv, img) if n.recv is not None else None
        a = [ev(x, img) for x in n.args]
        _ = {k: ev(v, img) for k, v in n.kwargs.items()}  # evaluated for their errors
        op = n.op
        number = isinstance(r, int | float)
        if op == "img":
            return img
        if op == "Geometry":
            return env["region"]
        if op == "ImageCollection":
            return list(env["catalog"].get(a[0], []))
        if op == "Filter.lte":
            return lambda s: s.props[a[0]] <= a[1]
        if op == "Reducer.min":
            return np.min
        if op == "Image.constant":
            return constant(a[0])
        if op == "Image.cat":
            return Scene({b: v for i in a for b, v in i.bands.items()},
                         {b: m for i in a for b, m in i.masks.items()})
        if op == "getNumber":
            return float(r.props[a[0]])
        if op == "Number":
            return float(a[0])
        if op in ("multiply", "divide", "subtract", "add"):
            f = {"multiply": np.multiply, "divide": np.divide, "subtract": np.subtract, "add": np.add}[op]
            if isinstance(a[0], Scene):  # image with image: band by band, masks combined
                w, mw = a[0].one()
                return r.like({b: f(v, w) for b, v in r.bands.items()}, {b: m & mw for b, m in r.masks.items()})
            return float(f(r, a[0])) if number else each(r, lambda v: f(v, a[0]))
        if op == "bitwiseAnd":
            return each(r, lambda v: np.bitwise_and(v.astype(np.int64), int(a[0])).astype(float))
        if op == "cos":
            return each(r, np.cos)
        if op == "toFloat":
            return each(r, lambda v: v.astype(float))
        if op == "round":
            return each(r, ee_round)
        if op == "toInt16":
            return each(r, lambda v: np.clip(v, -32768, 32767).astype(np.int16))
        if op == "select":
            names = a[0] if isinstance(a[0], list) else list(a)
            return r.like({b: r.bands[b] for b in names})
        if op == "rename":
            names = a[0] if isinstance(a[0], list) else list(a)
            return Scene(dict(zip(names, r.bands.values())), dict(zip(names, r.masks.values())),
                         r.props)
        if op == "mask":
            return r.like({b: m.astype(float) for b, m in r.masks.items()},
                          {b: np.ones(SHAPE, bool) for b in r.bands})
        if op == "reduce":
            return Scene({"min": a[0](np.stack(list(r.bands.values())), axis=0)},
                         {"min": np.any(np.stack(list(r.masks.values())), axis=0)})
        if op in ("And", "gte", "lt", "eq", "neq", "Not", "focal_max", "remap"):
            v, m = r.one()
            if op == "And":
                w, mw = a[0].one()
                v, m = ((v != 0) & (w != 0)).astype(float), m & mw
            elif op in ("gte", "lt", "eq", "neq"):
                cmp = {"gte": np.greater_equal, "lt": np.less, "eq": np.equal, "neq": np.not_equal}[op]
                v = cmp(v, a[0]).astype(float)
            elif op == "Not":
                v = (v == 0).astype(float)
            elif op == "focal_max":  # only the form used: a square kernel, radius in pixels
                from scipy import ndimage

                assert list(a[1:]) == ["square", "pixels"]
                v = ndimage.grey_dilation(np.where(m, v, -np.inf), size=(2 * a[0] + 1,) * 2)
                v, m = np.where(np.isfinite(v), v, 0.0), np.isfinite(v)
            else:
                table = dict(zip(a[0], a[1]))
                v = np.vectorize(lambda x: table.get(int(x), a[2]))(v).astype(float)
            return Scene({"band": v}, {"band": m}, r.props)
        if op == "addBands":
            return Scene({**r.bands, **a[0].bands}, {**r.masks, **a[0].masks}, r.props)
        if op == "updateMask":
            v, m = a[0].one()
            return r.like(r.bands, {b: mb & m & (v != 0) for b, mb in r.masks.items()})
        if op == "unmask":
            same_footprint = a[1] if len(a) > 1 else True
            assert not same_footprint  # the only form used: masked pixels become valid
            return r.like({b: np.where(r.masks[b], v, np.asarray(a[0]).astype(v.dtype))
                           for b, v in r.bands.items()}, {b: np.ones(SHAPE, bool) for b in r.bands})
        if op == "clip":
            return r.like(r.bands, {b: m & a[0] for b, m in r.masks.items()})
        # collections
        if op == "filterBounds":
            return [s for s in r if (s.props["footprint"] & a[0]).any()]
        if op == "filterDate":
            lo, hi = day_ms(a[0]), day_ms(a[1])
            return [s for s in r if lo <= s.props["system:time_start"] < hi]
        if op == "filter":
            return [s for s in r if a[0](s)]
        if op == "sort":
            ascending = a[1] if len(a) > 1 else True
            return sorted(r, key=lambda s: s.props[a[0]], reverse=not ascending)
        if op == "linkCollection":
            other = {s.props["system:index"]: s for s in a[0]}
            return [Scene({**s.bands, **{b: other[s.props["system:index"]].bands[b] for b in a[1]}},
                          {**s.masks, **{b: other[s.props["system:index"]].masks[b] for b in a[1]}},
                          s.props) for s in r]
        if op == "map":
            return [a[0](s) for s in r]
        if op == "mosaic":
            return mosaic(r)
        if op == "aggregate_array":
            return [s.props[a[0]] for s in r]
        raise AssertionError(f"the test double does not evaluate {op!r}")

    return ev(node)


def scene(date="2022-10-05", *, hour=11, cloud=10.0, index=None, dn=(1000, 2000, 3000, 4000),
          scl=(4, 4, 4, 4), cs=(0.9, 0.9, 0.9, 0.9), valid=(1, 1, 1, 1), **props):
    """An S2_SR_HARMONIZED scene over the ``SHAPE`` pixels: DN ``dn`` (+ band rank) in every
    reflectance band, SCL classes ``scl``, data where ``valid``; ``cs`` goes to the Cloud Score+
    image of the same index (see :func:`score`)."""
    bands = {b: np.asarray(dn, float).reshape(SHAPE) + i for i, b in enumerate(gee_images.EE_REFLECTANCE_BANDS)}
    bands["SCL"] = np.asarray(scl, float).reshape(SHAPE)
    footprint = np.asarray(valid, bool).reshape(SHAPE)
    index = index or f"{date}-{hour}-{cloud}"
    props = {**PROPS, "system:time_start": ms(date, hour), "CLOUDY_PIXEL_PERCENTAGE": cloud,
             "system:index": index, "footprint": footprint, "cs": cs, **props}
    return Scene(bands, {b: footprint.copy() for b in bands}, props)


def score(s: Scene) -> Scene:
    """The Cloud Score+ image of scene ``s``."""
    cs = np.asarray(s.props["cs"], float).reshape(SHAPE)
    return Scene({"cs": cs, "cs_cdf": cs}, {"cs": np.ones(SHAPE, bool), "cs_cdf": np.ones(SHAPE, bool)},
                 {"system:index": s.props["system:index"]})


def with_scores(*scenes):
    """A catalogue: the scenes and their Cloud Score+ images."""
    return {gee.DEFAULT_COLLECTION: list(scenes), gee_images.CLOUD_SCORE_PLUS: [score(s) for s in scenes]}


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
    s = scene(scl=(9, 3, 8, 4), valid=(1, 1, 1, 0))
    mask = gee.CloudMask(scl_classes=(3, 8))
    stack = evaluate(gee_images.scene_stack(fake_ee, Node(fake_ee, "img"), mask=mask), img=s)
    assert list(stack.bands) == list(S2_BANDS_20M)
    want = {
        "cosVZA": math.cos(math.radians(8.0)),
        "cosSZA": math.cos(math.radians(57.0)),
        "cosRAA": math.cos(math.radians(166.0 - 104.0)),
    }
    for band, cos in want.items():
        np.testing.assert_allclose(stack.bands[band], cos)
    for band in gee_images.EE_REFLECTANCE_BANDS:  # reflectance factors: DN / 10000
        np.testing.assert_allclose(stack.bands[band], s.bands[band] / 10000)
    # every band, the angles too, masked by the listed SCL classes and where the scene has no data
    for band, valid in stack.masks.items():
        assert valid.tolist() == [[True, False, False, False]], band


def test_cloud_score_mask(fake_ee):
    s = scene(scl=(3, 3, 3, 3), valid=(1, 1, 1, 0))  # all cloud by SCL: not what is read here
    s.bands["cs"], s.masks["cs"] = np.array([[0.9, 0.5, 0.65, 0.7]]), np.ones(SHAPE, bool)
    masked = {}
    for method in ("cloudscore", "none"):
        mask = gee.CloudMask(method, cs_threshold=0.65)
        stack = evaluate(gee_images.scene_stack(fake_ee, Node(fake_ee, "img"), mask=mask), img=s)
        assert list(stack.bands) == list(S2_BANDS_20M)
        masked[method] = {b: m.tolist() for b, m in stack.masks.items()}
    assert set(map(str, masked["cloudscore"].values())) == {str([[True, False, True, False]])}
    assert set(map(str, masked["none"].values())) == {str([[True, True, True, False]])}  # no data: masked
    with pytest.raises(InputError, match="cloud mask"):
        gee.CloudMask("fmask")


def test_cloud_buffer_is_a_server_side_focal_max(fake_ee):
    """--cloud-buffer 1: the neighbours of a cloud (SCL 9) or of a low Cloud Score+ are masked
    too, by a focal_max of the cloud image; other masked classes (snow, 11) are not grown."""
    s = scene(scl=(4, 9, 4, 4), valid=(1, 1, 1, 1))
    s.bands["cs"], s.masks["cs"] = np.array([[0.9, 0.9, 0.9, 0.3]]), np.ones(SHAPE, bool)
    masks = {}
    for method, px in (("scl", 0), ("scl", 1), ("cloudscore", 1)):
        stack = evaluate(gee_images.scene_stack(fake_ee, Node(fake_ee, "img"), mask=gee.CloudMask(
            method, buffer=px, cs_threshold=0.6)), img=s)
        masks[method, px] = stack.masks["B4"].tolist()
    assert masks["scl", 0] == [[True, False, True, True]]
    assert masks["scl", 1] == [[False, False, False, True]]
    assert masks["cloudscore", 1] == [[True, True, False, False]]
    snow = scene(scl=(4, 11, 4, 4))
    stack = evaluate(gee_images.scene_stack(fake_ee, Node(fake_ee, "img"), mask=gee.CloudMask(buffer=1)), img=snow)
    assert stack.masks["B4"].tolist() == [[True, False, True, True]]
    assert gee.Options(cloud_buffer=2).mask.buffer == 2


def test_date_image_filters_and_scaling(fake_ee):
    region = np.array([[True, True, True, False]])
    catalog = with_scores(
        scene(hour=10, cloud=15, dn=(1000,) * 4, valid=(1, 1, 0, 0)),
        scene(hour=11, cloud=5, dn=(2000,) * 4, valid=(0, 1, 1, 0), cs=(0.9, 0.9, 0.3, 0.9)),
        scene(hour=12, cloud=40, dn=(9000,) * 4),  # more clouds than max_cloud
        scene("2022-10-04", hour=23, cloud=1, dn=(5000,) * 4),  # the days before and after
        scene("2022-10-06", hour=0, cloud=1, dn=(7000,) * 4),
    )
    image = gee.date_image(
        fake_ee,
        collection=gee.DEFAULT_COLLECTION,
        geometry=fake_ee.Geometry({"type": "Polygon"}),
        date=dt.date(2022, 10, 5),
        max_cloud=20,
        mask=gee.CloudMask("cloudscore"),
    )
    got = evaluate(image, catalog=catalog, region=region)
    assert list(got.bands) == list(S2_BANDS_20M)
    nodata = STACK_NODATA
    # pixel 0: the first scene only; 1: both, the less cloudy on top; 2: its cloud score too
    # low, so nodata inside the region; 3: outside the region (clipped)
    for i, band in enumerate(gee_images.EE_REFLECTANCE_BANDS):
        assert got.bands[band].dtype == np.int16
        assert got.bands[band][0, :3].tolist() == [1000 + i, 2000 + i, nodata], band
    for band, cos in (("cosVZA", 8.0), ("cosSZA", 57.0), ("cosRAA", 62.0)):
        stored = round(math.cos(math.radians(cos)) * 10000)
        assert got.bands[band][0, :3].tolist() == [stored, stored, nodata], band
    for band, valid in got.masks.items():
        assert valid.tolist() == region.tolist(), band


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
    fake_ee.catalog = with_scores(
        scene("2022-10-05"), scene("2022-10-06", cloud=30.0), scene("2022-10-07", cloud=31.0),
        scene("2022-10-08"), scene("2022-10-08", hour=12), scene("2022-10-11"),
    )  # fmt: skip
    res = run_export(tmp_path, region_file, "--dry-run", "--max-cloud", "30")
    assert res.exit_code == 0, res.output
    assert "2022-10-05  export  Poltava_20m_2022-10-05  Poltava/  new" in res.output
    assert "Poltava_20m_2022-10-06" in res.output and "Poltava_20m_2022-10-08" in res.output
    assert "2022-10-07" not in res.output and "3 export(s) to submit" in res.output
    assert not fake_ee.tasks and not (tmp_path / "tasks.json").exists()
    assert fake_ee.ops("Initialize")[0].kwargs == {"project": "p"}


def test_cli_reruns_use_the_state_file(fake_ee, tmp_path, region_file):
    fake_ee.catalog = with_scores(scene("2022-10-05"), scene("2022-10-08"))
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
    monkeypatch.setattr(gee_tasks.time, "sleep", sleeps.append)
    fake_ee.catalog = with_scores(scene("2022-10-05"), scene("2022-10-06"))
    fake_ee.task_states.update(
        TASK1=["RUNNING", "COMPLETED"], TASK2=["READY", "RUNNING", "RUNNING", "COMPLETED"]
    )
    res = run_export(tmp_path, region_file, "--wait")
    assert res.exit_code == 0, res.output
    assert "2 COMPLETED" in res.output
    assert sleeps == [10.0, 15.0, 22.5]  # backoff between polls
    fake_ee.task_states.update(TASK3=["FAILED"])
    fake_ee.catalog = with_scores(scene("2022-10-07"))
    res = run_export(tmp_path, region_file, "--wait")
    assert res.exit_code == 1 and "did not complete" in res.output


def test_cli_no_scenes_and_missing_extra(fake_ee, tmp_path, region_file, monkeypatch):
    fake_ee.catalog = with_scores()
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
    fake_ee.catalog = with_scores(scene("2022-10-05"))
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
    fake_ee.catalog = with_scores(scene("2022-10-05"))
    res = run_export(
        tmp_path, region_file, "--cloud-mask", "cloudscore", "--cs-threshold", "0.7",
        "--drive-folder", "vercye_2022", "--crs", "EPSG:3857", "--resolution", "10",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    (task,) = fake_ee.tasks
    assert task.params["folder"] == "vercye_2022" and task.params["scale"] == 10
    assert task.params["crs"] == "EPSG:3857"
    assert task.params["fileNamePrefix"] == "Poltava_10m_2022-10-05"
    got = evaluate(task.params["image"], catalog=fake_ee.catalog)
    assert got.bands["B3"].tolist() == [[1000, 2000, 3000, 4000]]  # the scene, unmasked
    # Cloud Score+ at 0.7: the third pixel's 0.69 is masked
    fake_ee.catalog = with_scores(scene("2022-10-05", dn=(1000,) * 4, scl=(3, 3, 3, 3),
                                        cs=(0.9, 0.7, 0.69, 0.9)))
    got = evaluate(task.params["image"], catalog=fake_ee.catalog)
    assert got.bands["B3"].tolist() == [[1000, 1000, STACK_NODATA, 1000]]



# --------------------------------------------------------------------------- Landsat and HLS


def landsat_scene(date="2022-10-05", *, dn=(20000, 25000, 30000, 0), qa=(21824, 21824, 22280, 21824), **props):
    """A LANDSAT/LC08/C02/T1_L2 scene: SR DN ``dn`` (+ band rank); QA_PIXEL ``qa`` (22280 has
    the cloud bit 3 set); DN 0 is fill, masked by the collection itself."""
    bands = {b: np.asarray(dn, float).reshape(SHAPE) + i for i, b in enumerate(gee.EE_SENSORS["l8"].bands)}
    bands["QA_PIXEL"] = np.asarray(qa, float).reshape(SHAPE)
    valid = np.asarray(dn, float).reshape(SHAPE) > 0
    p = {"system:time_start": ms(date, 16), "CLOUD_COVER": 20.0, "system:index": f"L8-{date}",
         "footprint": np.ones(SHAPE, bool), "SUN_ELEVATION": 40.0, "SUN_AZIMUTH": 150.0, **props}
    return Scene(bands, {b: valid.copy() for b in bands}, p)


def hls_scene(date="2022-10-05", *, refl=(0.05, 0.1, 0.2, 0.3), fmask=(64, 66, 72, 64)):
    """A NASA/HLS/HLSL30/v002 scene: reflectance already scaled (as Earth Engine serves it),
    Fmask ``fmask`` (66: cloud bit 1; 72: shadow bit 3), angle bands in degrees."""
    bands = {b: np.asarray(refl, float).reshape(SHAPE) + 0.01 * i for i, b in enumerate(gee.EE_SENSORS["l30"].bands)}
    bands.update(Fmask=np.asarray(fmask, float).reshape(SHAPE), SZA=np.full(SHAPE, 40.0), SAA=np.full(SHAPE, 150.0),
                 VZA=np.full(SHAPE, 5.0), VAA=np.full(SHAPE, 100.0))
    p = {"system:time_start": ms(date, 16), "CLOUD_COVERAGE": 10.0, "system:index": f"HLS-{date}",
         "footprint": np.ones(SHAPE, bool)}
    return Scene(bands, {b: np.ones(SHAPE, bool) for b in bands}, p)


def test_landsat_c2_l2_expression(fake_ee, tmp_path):
    fake_ee.catalog = {"LANDSAT/LC08/C02/T1_L2": [landsat_scene()]}
    plan = gee.export_gee(region="R", geometry=box(34.0, 49.0, 35.0, 50.0), start=dt.date(2022, 10, 1),
                          end=dt.date(2022, 10, 10), resolution=30, state_file=tmp_path / "s.json",
                          options=gee.Options(sensor="l8"))
    assert [p.name for p in plan] == ["R_30m_2022-10-05_L8"]
    (task,) = fake_ee.tasks
    got = evaluate(task.params["image"], catalog=fake_ee.catalog)
    assert list(got.bands) == ["cosVZA", "cosSZA", "cosRAA", "B3", "B4", "B5", "B6", "B7"]
    b5 = got.bands["B5"].ravel()
    expected = np.round(((30000 + 2) * 2.75e-5 - 0.2) * 10000)
    assert b5[1] == np.round(((25000 + 2) * 2.75e-5 - 0.2) * 10000) and b5[0] == np.round(((20000 + 2) * 2.75e-5 - 0.2) * 10000)
    assert b5[2] == -32768 != expected  # the cloud bit of QA_PIXEL masks it
    assert b5[3] == -32768  # fill
    assert got.bands["cosSZA"].ravel()[0] == np.round(math.cos(math.radians(50.0)) * 10000)  # 90 - elevation
    assert got.bands["cosVZA"].ravel()[0] == 10000  # nadir
    assert got.bands["cosRAA"].ravel()[0] == np.round(math.cos(math.radians(150.0)) * 10000)


def test_hls_l30_expression(fake_ee, tmp_path):
    fake_ee.catalog = {"NASA/HLS/HLSL30/v002": [hls_scene()]}
    plan = gee.export_gee(region="R", geometry=box(34.0, 49.0, 35.0, 50.0), start=dt.date(2022, 10, 1),
                          end=dt.date(2022, 10, 10), resolution=30, state_file=tmp_path / "s.json",
                          options=gee.Options(sensor="l30", max_cloud=50))
    assert [p.name for p in plan] == ["R_30m_2022-10-05_L30"]
    got = evaluate(fake_ee.tasks[0].params["image"], catalog=fake_ee.catalog)
    b4 = got.bands["B4"].ravel()
    assert b4[0] == np.round((0.05 + 0.01) * 10000) and b4[3] == np.round((0.3 + 0.01) * 10000)
    assert b4[1] == -32768 and b4[2] == -32768  # Fmask cloud and shadow bits
    assert got.bands["cosRAA"].ravel()[0] == np.round(math.cos(math.radians(50.0)) * 10000)  # SAA - VAA
    assert got.bands["cosVZA"].ravel()[0] == np.round(math.cos(math.radians(5.0)) * 10000)
    filters = [n for n in fake_ee.ops("Filter.lte")]
    assert filters and filters[0].args[0] == "CLOUD_COVERAGE"
    with pytest.raises(Exception, match="sensor"):
        gee.export_gee(region="R", geometry=box(34.0, 49.0, 35.0, 50.0), start=dt.date(2022, 10, 1),
                       end=dt.date(2022, 10, 10), resolution=30, state_file=tmp_path / "t.json",
                       options=dataclasses.replace(gee.Options(), sensor="modis"))


def test_cli_plans_landsat_at_30_m_whatever_the_resolution(fake_ee, tmp_path, region_file):
    """``export-gee --sensor l8`` exports at 30 m (as its help says), like the run's source:
    the rule lives in gee.Options.export_resolution, which both use."""
    fake_ee.catalog = {"LANDSAT/LC08/C02/T1_L2": [landsat_scene()]}
    r = run_export(tmp_path, region_file, "--sensor", "l8", "--resolution", "20", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "Poltava_30m_2022-10-05_L8" in r.output and "_20m_" not in r.output
    assert gee.Options(sensor="s2").export_resolution(20) == 20
    assert gee.Options(sensor="l30").export_resolution(20) == 30
