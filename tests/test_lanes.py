"""Lanes: the product writer's threads (calls in order, bounded, failures raised)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import rasterio
from conftest import write_raster
from rasterio.windows import Window

from vercye_lai.predict.lanes import Lane
from vercye_lai.predict.writer import product_writer


def test_calls_run_in_order_on_one_thread():
    seen, threads = [], set()
    lane = Lane("test")
    for i in range(50):
        lane.submit(lambda i=i: (seen.append(i), threads.add(threading.get_ident())))
    lane.close()
    assert seen == list(range(50))
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_at_most_depth_calls_wait():
    gate, waiting = threading.Event(), []
    lane = Lane("test", depth=2)
    lane.submit(gate.wait)  # the lane is busy until the gate opens
    lane.submit(lambda: None)
    blocked = threading.Thread(target=lambda: (lane.submit(lambda: None), waiting.append("in")))
    blocked.start()
    blocked.join(0.2)
    assert waiting == []  # a third call waits for room
    gate.set()
    blocked.join(5)
    assert waiting == ["in"]
    lane.close()


def test_the_first_failure_stops_the_lane_and_is_raised():
    ran = []
    lane = Lane("test")
    lane.submit(lambda: ran.append(1))
    lane.submit(lambda: 1 / 0)
    for _ in range(5):
        try:
            lane.submit(lambda: ran.append(2))
        except ZeroDivisionError:
            break
    with pytest.raises(ZeroDivisionError):
        lane.close()
    assert ran == [1]  # nothing after the failure ran


def test_cancel_drops_what_waits_and_raises_nothing():
    gate, ran = threading.Event(), []
    lane = Lane("test", depth=10)
    lane.submit(gate.wait)
    for i in range(5):
        lane.submit(lambda i=i: ran.append(i))
    threading.Timer(0.1, gate.set).start()
    lane.close(cancel=True)
    assert ran == []


def test_a_failed_write_in_a_lane_fails_the_product_and_leaves_nothing(tmp_path, monkeypatch):
    """A block write that fails on its lane reaches the caller; no product, no temporary file."""
    src = write_raster(tmp_path / "src.tif", np.zeros((1, 600, 700), np.int16))
    dst = tmp_path / "out" / "x_LAI.tif"
    dst.parent.mkdir()

    def broken(values):
        raise OSError("disk on fire")

    with rasterio.open(src) as ds, pytest.raises(OSError, match="disk on fire"):
        with product_writer(dst, ds, "int16", -32768, cog=True, tags={}, description="LAI", encode=broken) as w:
            for row in (0, 512):
                for col in (0, 512):
                    w.write(np.zeros((min(512, 600 - row), min(512, 700 - col)), np.float32),
                            Window(col, row, min(512, 700 - col), min(512, 600 - row)))
    assert list(dst.parent.iterdir()) == []
