"""Predict's threads: lanes (calls in order, bounded, failures raised) and the worker threads
kept across dates."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import rasterio
from conftest import write_raster
from rasterio.windows import Window

from vercye_lai.predict import PredictOptions, predict_file
from vercye_lai.predict import file as predict_module
from vercye_lai.predict import lanes
from vercye_lai.predict.lanes import Lane
from vercye_lai.predict.writer import BlockWriter, product_writer


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

    def broken(self, stored, window):
        raise OSError("disk on fire")

    monkeypatch.setattr(BlockWriter, "_write", broken)  # what runs on the write lane
    with rasterio.open(src) as ds, pytest.raises(OSError, match="disk on fire"):
        with product_writer(dst, ds, "int16", -32768, cog=True, tags={}, description="LAI") as w:
            for row in (0, 512):
                for col in (0, 512):
                    w.write(np.zeros((min(512, 600 - row), min(512, 700 - col)), np.int16),
                            Window(col, row, min(512, 700 - col), min(512, 600 - row)))
    assert list(dst.parent.iterdir()) == []


def test_dates_reuse_the_worker_threads_and_each_keeps_to_its_workers(tmp_path, monkeypatch):
    """A thread's first georeferenced open sets up GDAL's PROJ context (9-20 ms, one thread
    at a time): the blocks of one date after another run on the same threads, and a call
    never runs more blocks at once than its ``workers`` (the pool itself is larger)."""
    rng = np.random.default_rng(3)
    data = rng.uniform(0.02, 0.35, (11, 512, 512)).astype(np.float32)
    data[0], data[1], data[2] = 0.995, 0.75, 0.5
    src = write_raster(tmp_path / "s2" / "r_20m_2022-06-01.tif", data, tiled=True, blocksize=128)
    kernel, lock = predict_module.predict_block, threading.Lock()
    threads: list[list[threading.Thread]] = []
    now, most = [0], [0]

    def watched(*args, **kwargs):
        with lock:
            threads[-1].append(threading.current_thread())  # the objects: an ident may be reused
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.005)  # the GIL released: a third block in flight would overlap here
        try:
            return kernel(*args, **kwargs)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(predict_module, "predict_block", watched)
    for date in range(3):
        threads.append([])
        predict_file(src, {"LAI": tmp_path / f"lai_{date}.tif"}, options=PredictOptions(workers=2, block_size=128))
    assert [len(t) for t in threads] == [16, 16, 16]  # 4 x 4 blocks a date
    first = {id(t) for t in threads[0]}
    assert all(id(t) in first for later in threads[1:] for t in later)
    assert most[0] == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_starts_worker_threads_of_its_own():
    """The parent's threads do not exist in a forked child (a Dask or multiprocessing
    worker): a kept pool would take the child's work and never run it."""
    assert lanes.worker_threads().submit(int, "7").result() == 7  # the parent's pool exists, its thread idle
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its work ran
        try:
            ok = lanes.worker_threads().submit(int, "7").result(timeout=20) == 7
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
