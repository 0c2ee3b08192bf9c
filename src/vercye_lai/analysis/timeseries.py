"""Crop-specific LAI adjustments and daily gap filling of a per-date series."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vercye_lai.errors import ConfigError, DataIOError, InputError
from vercye_lai.model.calibration import load_calibration

log = logging.getLogger(__name__)

#: Quadratic calibrations ``a·L² + b·L + c`` of the estimated LAI ``L`` (m²/m²), as in the
#: reference implementation (vercye_ops); ``none`` is the identity.
ADJUSTMENTS: dict[str, tuple[float, float, float] | None] = {
    "none": None,
    "wheat": (0.0482, 0.9161, 0.0026),
    "maize": (-0.078, 1.4, -0.18),
}

INTERPOLATIONS = ("akima", "makima", "linear", "none")
SMOOTHERS = ("none", "savgol")


def adjust_lai(lai: np.ndarray, adjustment: str = "none") -> np.ndarray:
    """Apply a crop calibration per pixel.

    Parameters
    ----------
    lai
        Estimated LAI (m²/m²), already clipped at 0.
    adjustment
        ``"none"`` (identity), ``"wheat"`` (0.0482·L² + 0.9161·L + 0.0026) or ``"maize"``
        (−0.078·L² + 1.4·L − 0.18), clipped at 0: the reference implementation leaves the maize
        curve's negative values (L < 0.13, bare soil) in, which APSIM took as observed LAI; or
        the path of a ``poly1``/``poly2`` calibration file of ``vercye-lai calibrate``
        (clipped at 0, as it was fitted).
    """
    if adjustment.lower().endswith(".json"):
        return adjustment_calibration(adjustment).apply(lai).astype(lai.dtype, copy=False)
    try:
        coef = ADJUSTMENTS[adjustment]
    except KeyError:
        raise ConfigError(
            f"unknown adjustment {adjustment!r}; choose one of {', '.join(ADJUSTMENTS)}"
        ) from None
    if coef is None:
        return lai
    a, b, c = coef
    return np.maximum((a * lai + b) * lai + c, 0)


def adjustment_calibration(path: str):
    """The calibration file ``path`` as an adjustment.

    Raises
    ------
    InputError
        Not a calibration file, or one that needs band values (``refit*``).
    """
    try:
        Path(path).stat()
    except OSError as exc:
        raise DataIOError(f"cannot read the calibration file: {exc.strerror}", path=path) from exc
    cal = load_calibration(path)
    if cal.needs_bands:
        raise InputError(f"a {cal.method} calibration re-fits the network and needs the band values; "
                         "analyze applies only poly1/poly2 calibrations (use predict --calibration)",
                         path=path)
    return cal


def savgol_window(n_obs: int, *, window: int = 9, polyorder: int = 2) -> int | None:
    """The Savitzky–Golay window for ``n_obs`` observations, as the reference
    implementation chooses it: ``window`` shrunk to an odd length ≤ ``n_obs``, never below
    ``polyorder + 2``; ``None`` when even that is more than the observations."""
    w = min(window, n_obs)
    if w % 2 == 0:
        w -= 1
    w = max(w, polyorder + 2)
    return w if w <= n_obs else None


def smooth_savgol(y: np.ndarray, *, window: int = 9, polyorder: int = 2) -> np.ndarray:
    """Savitzky–Golay smoothing of the observed values, clipped at 0 (NaN entries are left alone).

    The filter runs over the sequence of observations (not over calendar days), with the
    window of :func:`savgol_window`; with too few observations the series is returned
    unchanged, with a warning.
    """
    from scipy.signal import savgol_filter

    y = np.asarray(y, dtype=np.float64).copy()
    obs = ~np.isnan(y)
    n = int(obs.sum())
    w = savgol_window(n, window=window, polyorder=polyorder)
    if w is None:
        if n:
            log.warning("only %d observation(s): too few for Savitzky–Golay smoothing of order %d, "
                        "skipped", n, polyorder)
        return y
    y[obs] = np.maximum(savgol_filter(y[obs], w, polyorder, mode="interp"), 0.0)
    return y


#: ``--outliers`` choices: which observations :func:`find_outliers` may reject
OUTLIERS = ("none", "dips", "dips+spikes")
#: a run of at most this many consecutive observations can be rejected together (a cloud
#: or its shadow over two overpasses); a longer low stretch is the season itself
MAX_OUTLIER_RUN = 2


def find_outliers(y: np.ndarray, *, kind: str = "dips", min_drop: float = 0.5,
                  rel_drop: float = 0.2, max_span: int = 30) -> np.ndarray:
    """Observations of a daily series that a missed cloud or shadow made: short, sharp dips.

    A run of one or two consecutive observations is rejected when every value of the run
    lies below *both* observations around it, the one just before and the one just after,
    by more than ``max(min_drop, rel_drop × the lower of the two)``, and those two are at
    most ``max_span`` days apart. A genuine decline (senescence, harvest) stays low
    afterwards, so the observation after it is not above it and it is kept; the first and
    last observations are never rejected. ``"dips+spikes"`` also rejects runs as far above
    both neighbours.

    Parameters
    ----------
    y
        One value per day (LAI, m²/m²), NaN on days without observation.
    kind
        One of :data:`OUTLIERS`.
    min_drop, rel_drop
        The least departure from the neighbours that counts: LAI units, and a fraction of
        the nearer neighbour's value.
    max_span
        Days between the neighbours beyond which nothing is judged (a long gap may hide a
        real change).

    Returns
    -------
    numpy.ndarray
        Boolean per day: True on rejected observations.
    """
    if kind not in OUTLIERS:
        raise ConfigError(f"unknown outlier test {kind!r}; choose one of {', '.join(OUTLIERS)}")
    y = np.asarray(y, dtype=np.float64)
    out = np.zeros(len(y), dtype=bool)
    if kind == "none":
        return out
    x = np.flatnonzero(~np.isnan(y))
    v = y[x]
    # dips first: a dip beside a peak must not make the peak look like a spike
    for spikes in (False, True)[: 2 if kind == "dips+spikes" else 1]:
        for run in range(1, MAX_OUTLIER_RUN + 1):
            for i in range(1, len(x) - run):
                a, b = i - 1, i + run  # the neighbours of the run x[i:i+run]
                if x[b] - x[a] > max_span or out[x[a]] or out[x[b]] or out[x[i:b]].any():
                    continue
                if spikes:
                    hi = max(v[a], v[b])
                    bad = np.all(v[i:b] > hi + max(min_drop, rel_drop * hi))
                else:
                    lo = min(v[a], v[b])
                    bad = np.all(v[i:b] < lo - max(min_drop, rel_drop * lo))
                if bad:
                    out[x[i:b]] = True
    return out


def interpolate_gaps(y: np.ndarray, *, method: str = "akima") -> tuple[np.ndarray, np.ndarray]:
    """Fill the NaN entries of a daily series between its first and last observation.

    Parameters
    ----------
    y
        One value per day (day index = x), NaN on gap days.
    method
        ``"akima"`` (:class:`scipy.interpolate.Akima1DInterpolator`), ``"makima"`` (its
        modified variant), ``"linear"`` (:func:`numpy.interp`) or ``"none"``.

    Returns
    -------
    filled, interpolated
        The series with gaps inside the observed span filled and clipped at 0 (no
        extrapolation before the first or after the last observation), and a boolean
        array that is True on filled days.
    """
    if method not in INTERPOLATIONS:
        raise ConfigError(
            f"unknown interpolation {method!r}; choose one of {', '.join(INTERPOLATIONS)}")
    y = np.asarray(y, dtype=np.float64)
    filled = y.copy()
    done = np.zeros(len(y), dtype=bool)
    x_obs = np.flatnonzero(~np.isnan(y))
    if method == "none" or len(x_obs) < 2:
        return filled, done
    gaps = np.flatnonzero(np.isnan(y))
    gaps = gaps[(gaps > x_obs[0]) & (gaps < x_obs[-1])]
    if not len(gaps):
        return filled, done
    if method == "linear":
        values = np.interp(gaps, x_obs, y[x_obs])
    else:
        from scipy.interpolate import Akima1DInterpolator

        values = Akima1DInterpolator(x_obs, y[x_obs], method=method, extrapolate=False)(gaps)
    filled[gaps] = np.maximum(values, 0.0)
    done[gaps] = True
    return filled, done
