"""Logs a person reads: off a terminal plain unwrapped lines and no progress bars, each warning
once, library warnings in our words, one line per step for what was skipped."""

from __future__ import annotations

import logging
import re
import warnings

import pytest
from conftest import qvidja_config, run_cli

from vercye_lai.cli.main import configure_logging


@pytest.fixture
def restore_logging(monkeypatch):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    with warnings.catch_warnings():
        yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_warning_once_and_library_warnings_in_one_line(restore_logging, capsys):
    configure_logging(0)
    log = logging.getLogger("vercye_lai.test")
    for _ in range(3):
        log.warning("2022-06-20: a.tif and b.tif are of the same date; using b.tif")
    log.info("info lines are not deduplicated")
    log.info("info lines are not deduplicated")
    warnings.warn_explicit("Field with same name (x) on feature 3", RuntimeWarning,
                           "/venv/lib/python3.11/site-packages/pyogrio/raw.py", 198)
    err = capsys.readouterr().err
    assert err.count("are of the same date") == 1
    assert err.count("info lines are not deduplicated") == 2
    line = next(ln for ln in err.splitlines() if "Field with same name" in ln)
    assert line.endswith("WARNING Field with same name (x) on feature 3 (RuntimeWarning from pyogrio)")
    assert "raw.py" not in err  # no source line of the library


@pytest.mark.slow  # 1.5 s: a subprocess off a terminal
def test_off_a_terminal_no_wrapping_no_bars_and_skips_in_one_line(tmp_path):
    cfg = qvidja_config(tmp_path, quicklook=True)
    first = run_cli("run", cfg)
    assert first.exit_code == 0, first.output
    long_name = str(tmp_path / "out" / "run_summary.json")
    assert any(long_name in ln for ln in first.output.splitlines())  # a path is never split
    assert f"report: {tmp_path / 'out' / 'report.html'}" in first.output  # run says what it published
    assert not re.search(r"━+ +\d+/(\d+|\?)", first.output)  # no progress bar drawn as text
    assert all(not ln.startswith(" " * 10) for ln in first.output.splitlines())  # no wrapped continuation
    again = run_cli("run", cfg)
    assert again.exit_code == 0, again.output
    predict = [ln for ln in again.output.splitlines() if "predict qvidja" in ln]
    assert len(predict) == 1 and "dates skipped (products complete and newer than the stack)" in predict[0]


def test_a_dry_run_lists_each_unit_once(tmp_path):
    r = run_cli("run", qvidja_config(tmp_path), "--dry-run")
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if "predict qvidja 2023-06-09" in ln]
    assert len(lines) == 1 and "planned" in lines[0], r.output


def test_a_count_without_a_known_total_is_no_fraction():
    from rich.progress import Progress

    from vercye_lai.cli.ui import CountColumn

    p = Progress(CountColumn())
    open_ended, known = p.add_task("a", total=None), p.add_task("b", total=40)
    p.advance(open_ended, 34)
    p.advance(known, 34)
    assert str(CountColumn().render(p.tasks[0])) == "34"
    assert str(CountColumn().render(p.tasks[1])).replace(" ", "") == "34/40"
