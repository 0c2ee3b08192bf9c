"""Adjustment formulas, gap filling against scipy/numpy, smoothing, zone statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import Akima1DInterpolator
from scipy.signal import savgol_filter

from vercye_lai.analysis import adjust_lai, interpolate_gaps
from vercye_lai.analysis.stats import ZoneIndex, zone_stats
from vercye_lai.analysis.timeseries import find_outliers, savgol_window, smooth_savgol
from vercye_lai.errors import ConfigError

L = np.array([0.0, 0.5, 1.0, 2.5, 6.0])


@pytest.mark.parametrize(("kind", "expected"), [
    ("none", L),
    ("wheat", 0.0482 * L**2 + 0.9161 * L + 0.0026),
    ("maize", np.maximum(-0.078 * L**2 + 1.4 * L - 0.18, 0)),  # bare soil (L < 0.13): 0, not -0.18
])
def test_adjustments(kind, expected):
    np.testing.assert_allclose(adjust_lai(L, kind), expected, rtol=1e-12)


def test_adjustment_known_values():
    assert adjust_lai(np.array([2.0]), "wheat")[0] == pytest.approx(0.1928 + 1.8322 + 0.0026)
    assert adjust_lai(np.array([2.0]), "maize")[0] == pytest.approx(-0.312 + 2.8 - 0.18)
    assert adjust_lai(np.array([0.0, 0.1, 0.13]), "maize").tolist() == [0, 0, pytest.approx(0.0006818)]
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


# --- smoothing as the reference implementation does it --------------------------------


@pytest.mark.parametrize(("n", "window"), [(1, None), (3, None), (4, 4), (5, 5), (6, 5), (8, 7),
                                           (9, 9), (30, 9)])
def test_savgol_window_shrinks_odd_never_below_order_plus_2(n, window):
    assert savgol_window(n, window=9, polyorder=2) == window


def test_savgol_is_clipped_at_zero():
    y = np.array([0.0, 0.02, 0.0, 0.6, 0.0, 0.05, 0.9, 2.5, 1.0])  # near zero early season
    raw = savgol_filter(y, 9, 2, mode="interp")
    assert (raw < 0).any()  # what scipy gives
    np.testing.assert_allclose(smooth_savgol(y), np.maximum(raw, 0))


# --- outliers: a missed cloud or shadow is a short dip ---------------------------------


def daily(values: dict[int, float], n: int = 60) -> np.ndarray:
    y = np.full(n, np.nan)
    for d, v in values.items():
        y[d] = v
    return y


def test_single_and_double_dips_are_rejected():
    y = daily({0: 1.0, 5: 2.0, 10: 3.0, 15: 1.2, 20: 3.6, 25: 3.8, 30: 1.5, 35: 1.6, 40: 4.0, 45: 4.1})
    assert np.flatnonzero(find_outliers(y)).tolist() == [15, 30, 35]


def test_declines_first_last_and_small_dips_are_kept():
    # harvest: a step down that stays down; senescence: a steady decline
    harvest = daily({0: 4.0, 5: 4.2, 10: 4.1, 15: 0.4, 20: 0.3, 25: 0.35})
    senescence = daily({0: 5.0, 5: 4.2, 10: 3.1, 15: 2.0, 20: 1.1, 25: 0.5})
    assert not find_outliers(harvest).any() and not find_outliers(senescence).any()
    # the first and last observations have no neighbour on one side
    assert not find_outliers(daily({0: 0.1, 5: 3.0, 10: 3.1, 15: 0.2})).any()
    # below both neighbours, but by less than max(0.5, 20 %)
    assert not find_outliers(daily({0: 3.0, 5: 2.6, 10: 3.0})).any()
    assert find_outliers(daily({0: 3.0, 5: 2.3, 10: 3.0})).any()
    # neighbours too far apart to judge
    assert not find_outliers(daily({0: 3.0, 20: 1.0, 40: 3.0}), max_span=30).any()


def test_spikes_only_when_asked_and_none_rejects_nothing():
    y = daily({0: 2.0, 5: 2.1, 10: 5.0, 15: 2.2, 20: 2.3, 25: 0.5, 30: 2.4})
    assert np.flatnonzero(find_outliers(y)).tolist() == [25]
    assert np.flatnonzero(find_outliers(y, kind="dips+spikes")).tolist() == [10, 25]
    assert not find_outliers(y, kind="none").any()
    with pytest.raises(ConfigError, match="unknown outlier test"):
        find_outliers(y, kind="hampel")
