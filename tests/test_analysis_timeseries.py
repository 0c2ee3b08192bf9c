"""Adjustment formulas, gap filling against scipy/numpy, smoothing, zone statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import Akima1DInterpolator
from scipy.signal import savgol_filter

from vercye_lai.analysis import adjust_lai, interpolate_gaps
from vercye_lai.analysis.stats import ZoneIndex, zone_stats
from vercye_lai.analysis.timeseries import smooth_savgol
from vercye_lai.errors import ConfigError

L = np.array([0.0, 0.5, 1.0, 2.5, 6.0])


@pytest.mark.parametrize(("kind", "expected"), [
    ("none", L),
    ("wheat", 0.0482 * L**2 + 0.9161 * L + 0.0026),
    ("maize", -0.078 * L**2 + 1.4 * L - 0.18),
])
def test_adjustments(kind, expected):
    np.testing.assert_allclose(adjust_lai(L, kind), expected, rtol=1e-12)


def test_adjustment_known_values():
    assert adjust_lai(np.array([2.0]), "wheat")[0] == pytest.approx(0.1928 + 1.8322 + 0.0026)
    assert adjust_lai(np.array([2.0]), "maize")[0] == pytest.approx(-0.312 + 2.8 - 0.18)
    with pytest.raises(ConfigError, match="unknown adjustment 'rice'"):
        adjust_lai(L, "rice")


# observations on days 2, 3, 7, 8, 12, 20 of a 25-day series, shaped like a season
X = np.array([2, 3, 7, 8, 12, 20])
Y = np.array([0.4, 0.9, 3.5, 3.9, 4.2, 0.05])


def series() -> np.ndarray:
    y = np.full(25, np.nan)
    y[X] = Y
    return y


@pytest.mark.parametrize("method", ["akima", "makima"])
def test_akima_matches_scipy(method):
    filled, done = interpolate_gaps(series(), method=method)
    gaps = np.setdiff1d(np.arange(X[0], X[-1] + 1), X)
    ref = Akima1DInterpolator(X, Y, method=method)(gaps)
    np.testing.assert_allclose(filled[gaps], np.maximum(ref, 0), rtol=1e-12)
    np.testing.assert_array_equal(filled[X], Y)  # observations untouched
    assert done.sum() == len(gaps) and not done[X].any()


def test_linear_matches_numpy():
    filled, done = interpolate_gaps(series(), method="linear")
    gaps = np.setdiff1d(np.arange(X[0], X[-1] + 1), X)
    np.testing.assert_allclose(filled[gaps], np.interp(gaps, X, Y), rtol=1e-12)


def test_no_extrapolation_and_clip_at_zero():
    y = np.full(12, np.nan)
    y[[1, 2, 3, 6, 7]] = [5.0, 4.0, 0.5, 0.0, 3.0]  # akima undershoots below 0 on days 4-5
    raw = Akima1DInterpolator(np.array([1, 2, 3, 6, 7]), y[[1, 2, 3, 6, 7]])(np.array([4, 5]))
    filled, done = interpolate_gaps(y, method="akima")
    assert np.isnan(filled[[0, 8, 9, 10, 11]]).all() and not done[[0, 8, 9, 10, 11]].any()
    np.testing.assert_allclose(filled[[4, 5]], np.maximum(raw, 0))
    assert (filled[[4, 5]] >= 0).all()


def test_none_and_too_few_points():
    filled, done = interpolate_gaps(series(), method="none")
    assert np.isnan(filled).sum() == 25 - len(X) and not done.any()
    one = np.full(5, np.nan)
    one[2] = 1.0
    filled, done = interpolate_gaps(one)
    assert not done.any()
    with pytest.raises(ConfigError):
        interpolate_gaps(series(), method="cubic")


def test_savgol_matches_scipy_on_observations():
    y = series()
    out = smooth_savgol(y, window=5, polyorder=2)
    np.testing.assert_allclose(out[X], savgol_filter(Y, 5, 2, mode="interp"))
    assert np.isnan(out[~np.isin(np.arange(25), X)]).all()
    short = np.array([1.0, np.nan, 2.0])  # 2 observations < polyorder + 2: unchanged
    np.testing.assert_array_equal(smooth_savgol(short), short)


@pytest.mark.parametrize("shape", [(20, 30), (120, 150)])  # sort path, partition path
def test_zone_stats_against_numpy(shape):
    rng = np.random.default_rng(0)
    values = rng.uniform(-0.5, 6, shape).astype(np.float32)
    values[rng.random(shape) < 0.2] = np.nan
    labels = rng.integers(0, 6, shape).astype(np.int32)
    idx = ZoneIndex.from_labels(labels[None], 5)
    st = zone_stats(values, idx, adjustment="wheat")
    for k in range(1, 6):
        sel = labels == k
        v = np.maximum(values[sel][~np.isnan(values[sel])], 0).astype(np.float64)
        a = 0.0482 * v**2 + 0.9161 * v + 0.0026
        assert st["n_pixels"][k - 1] == v.size
        np.testing.assert_allclose(
            [st["mean"][k - 1], st["median"][k - 1], st["std"][k - 1],
             st["mean_adj"][k - 1], st["std_adj"][k - 1]],
            [v.mean(), np.median(v), v.std(), a.mean(), a.std()], rtol=1e-9)
        assert st["cloud_pct"][k - 1] == pytest.approx(100 * (sel.sum() - v.size) / sel.sum())
