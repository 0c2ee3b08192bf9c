"""Crop-specific LAI adjustments and daily gap filling of a per-date series."""

from __future__ import annotations

import logging

import numpy as np

from ..errors import ConfigError

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
        (−0.078·L² + 1.4·L − 0.18). The result is not clipped (as in the reference implementation).
    """
    try:
        coef = ADJUSTMENTS[adjustment]
    except KeyError:
        raise ConfigError(
            f"unknown adjustment {adjustment!r}; choose one of {', '.join(ADJUSTMENTS)}"
        ) from None
    if coef is None:
        return lai
    a, b, c = coef
    return (a * lai + b) * lai + c


def smooth_savgol(y: np.ndarray, *, window: int = 5, polyorder: int = 2) -> np.ndarray:
    """Savitzky–Golay smoothing of the observed values (NaN entries are left alone).

    The filter runs over the sequence of observations (not over calendar days). The
    window shrinks to the number of observations (odd); with fewer than
    ``polyorder + 2`` observations the series is returned unchanged, with a warning.
    """
    from scipy.signal import savgol_filter

    y = np.asarray(y, dtype=np.float64).copy()
    obs = ~np.isnan(y)
    n = int(obs.sum())
    w = min(window, n)
    w -= 1 - w % 2  # savgol windows are odd
    if w <= polyorder:
        log.warning("only %d observation(s): too few for Savitzky–Golay smoothing, skipped", n)
        return y
    y[obs] = savgol_filter(y[obs], w, polyorder, mode="interp")
    return y


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
