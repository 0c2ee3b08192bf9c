"""report.html: self-contained, offline; driven in a real headless Chromium where it is installed."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pytest
from conftest import pixel_box

pytest.importorskip("bokeh")

from vercye_lai.analysis import analyze  # noqa: E402
from vercye_lai.analysis.options import AnalysisOptions  # noqa: E402
from vercye_lai.outputs.report import write_report  # noqa: E402


@pytest.fixture
def season(tmp_path, lai_writer, polygon_writer):
    rng = np.random.default_rng(5)
    for i, day in enumerate(("2022-05-01", "2022-05-06", "2022-05-12", "2022-05-20", "2022-06-01")):
        v = np.full((12, 12), 1.0 + i, np.float32) + rng.uniform(0, 0.2, (12, 12)).astype(np.float32)
        v[6:, 6:] += 2.0  # field B is denser
        lai_writer(day, v)
    g = polygon_writer("fields.geojson", [pixel_box(0, 0, 5, 5), pixel_box(6, 6, 12, 12)], FID=["A", "B"])
    analyze(tmp_path / "lai", tmp_path / "out" / "analysis", "R", g, resolution=10,
            start=dt.date(2022, 4, 25), options=AnalysisOptions(adjustment="wheat"))  # 6 days before the first image
    (tmp_path / "out" / "run_summary.json").write_text(
        '{"started": "2026-12-03T10:00:00+00:00", "seconds": 12.5, "executor": "serial", "ok": false, '
        '"stopped": "", "steps": [{"step": "predict", "units": [{"region": "R", "item": "2022-05-01", '
        '"status": "done", "seconds": 1.0}, {"region": "R", "item": "2022-05-02", "status": "failed", '
        '"reason": "R_10m_2022-05-02.tif: cannot read block 0,0", "seconds": 0.1}]}]}')
    return tmp_path / "out"


def test_report_is_self_contained(season):
    page = write_report(season).read_text()
    assert "<script src=" not in page and "<link " not in page  # no file or CDN fetched
    assert "cannot read block 0,0" in page and "Fields that need a look" in page
    assert '"A"' in page and '"B"' in page  # both fields' seasons embedded


def _chrome():
    missing = [(cmd, pkg) for cmd, pkg in (("chromium", "chromium"), ("chromedriver", "chromium-driver"))
               if not shutil.which(cmd)]
    if missing:
        pytest.skip(f"{' and '.join(c for c, _ in missing)} not found on PATH (apt-get install "
                    f"{' '.join(p for _, p in missing)}): browser test skipped")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    o = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        o.add_argument(a)
    o.binary_location = shutil.which("chromium")
    o.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=o)


FIELD_POSITION = """
const m = Bokeh.documents[0].get_model_by_name('fieldmap');
let v = null;
(function walk(view) { if (view.model && view.model.id === m.id) { v = view; return; }
  for (const c of (view.child_views ? [...view.child_views] : [])) walk(c); })(Object.values(Bokeh.index)[0]);
const src = m.renderers[0].data_source;
const i = src.data.name.indexOf(arguments[0]);
const xs = src.data.xs[i], ys = src.data.ys[i];
const cx = xs.reduce((a, b) => a + b) / xs.length, cy = ys.reduce((a, b) => a + b) / ys.length;
const r = v.el.getBoundingClientRect();
return [r.left + v.frame.x_scale.compute(cx), r.top + v.frame.y_scale.compute(cy)];
"""


@pytest.mark.slow
def test_report_in_a_real_browser(season, tmp_path):
    import json
    import time

    from PIL import Image
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    page = write_report(season)
    d = _chrome()
    try:
        d.get(page.as_uri())
        time.sleep(1.5)
        assert d.execute_script("return document.title") == "vercye-lai report"
        x, y = d.execute_script(FIELD_POSITION, "B")
        builder = ActionBuilder(d)
        builder.pointer_action.move_to_location(int(x), int(y))
        builder.pointer_action.click()
        builder.perform()
        time.sleep(0.5)
        assert d.execute_script("return document.title") == "vercye-lai report - field B"  # its curve is shown
        # the days before the first observation are gaps in the drawn data, never LAI 0
        mean = d.execute_script("""const f = Bokeh.documents[0].get_model_by_name('curve');
            const r = f.renderers.find((r) => r.glyph.type === 'Line' && r.glyph.y.field === 'mean');
            return Array.from(r.data_source.data.mean).map((v) => (Number.isNaN(v) ? 'gap' : v));""")
        assert mean[0] == "gap" and 0 not in mean and 0.0 not in mean, mean[:8]
        d.save_screenshot(str(tmp_path / "report.png"))
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        requests = [json.loads(e["message"])["message"] for e in d.get_log("performance")]
        urls = [r["params"]["request"]["url"] for r in requests if r["method"] == "Network.requestWillBeSent"]
        assert urls and all(u.startswith(("file:", "data:", "blob:")) for u in urls), urls
    finally:
        d.quit()
    img = np.asarray(Image.open(tmp_path / "report.png").convert("RGB"))
    assert img.shape[0] > 500 and len(np.unique(img.reshape(-1, 3), axis=0)) > 200  # not blank


def test_the_page_says_what_the_run_said(season):
    """The run table shows a step's wall time (as the CLI printed it), not the sum of units
    that ran in parallel; the curve's legend names the ±1 std band."""
    import json

    (season / "run_summary.json").write_text(json.dumps({
        "started": "2026-12-03T10:00:00+00:00", "seconds": 3.0, "executor": "threads", "ok": True, "stopped": "",
        "steps": [{"step": "quicklook", "seconds": 2.7, "units": [
            {"region": "R", "item": f"f{i}", "status": "done", "seconds": 1.225} for i in range(4)]}]}))
    page = write_report(season).read_text()
    assert "<td>2.7</td>" in page and "<td>4.9</td>" not in page
    assert "1 std (observed)" in page  # the legend entry (the ± may be escaped in the JSON)
