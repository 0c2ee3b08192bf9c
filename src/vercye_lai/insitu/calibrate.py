"""Calibrate SL2P against in-situ values, evaluated by leave-one-group-out cross-validation.

A calibration maps the network's estimate (and, for some methods, the row's inputs and
day of year) to a corrected value. Every method is a ridge regression on its features,
shrunk towards *no change* (the identity for ``poly*``, the published output layer for
``refit*``), so that a strong penalty gives back the uncalibrated network:

The methods (``poly1``, ``poly2``, ``refit``, ``refit-doy``, ``refit-vi-doy``) are
:mod:`vercye_lai.model.calibration`'s, which applies them; here, also:

``auto``
    The method and penalty with the lowest error in an inner cross-validation over the
    groups of the data it is given — kept only when its gain over no correction holds
    across those groups, in RMSE and after removing each group's offset
    (:func:`_gain_holds`), and only on data of at least :data:`AUTO_MIN_GROUPS` groups;
    else ``none``.

The penalty of every method is chosen by an inner leave-one-group-out cross-validation
inside the data a fit is given (k-fold over rows when it holds fewer than 3 groups), so
the outer leave-one-group-out figures (:func:`cross_validate`) are never computed on data
any choice has seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vercye_lai.errors import ConfigError, InputError
from vercye_lai.insitu.agreement import Agreement, check_measurements
from vercye_lai.io import write_text_atomic
from vercye_lai.model.calibration import (
    CHOICES,
    METHODS,
    SIGMA_FLOOR,
    VI_BANDS,
    Calibration,
    error_sigma,
    evaluate,
    features,
)
from vercye_lai.model.registry import load_network
from vercye_lai.model.sl2p import Network
from vercye_lai.predict.options import PredictOptions
from vercye_lai.predict.table import TableOptions, day_of_year, table_inputs

log = logging.getLogger(__name__)

__all__ = ["METHODS", "CHOICES", "CalibrationData", "CrossValidation", "calibration_data", "cross_validate",
           "fit_calibration", "write_cv_tables"]

#: ridge penalties tried by the inner cross-validation (features are O(1))
ALPHAS = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)
MIN_ROWS = 8
#: ``auto`` corrects only data of at least this many groups: a gain that holds across groups
#: cannot be judged on fewer (fitted on one season, a correction made another worse: issue 18)
AUTO_MIN_GROUPS = 3


@dataclass(frozen=True)
class CalibrationData:
    """What a calibration is fitted on, one entry per row (LAI in m² m⁻²).

    ``x`` is ``(n_inputs, n)`` physical network inputs in ``inputs`` order (``None``: no
    band values, only the ``poly*`` methods); ``doy`` the day of year (``None``: unknown).
    """

    estimate: np.ndarray
    target: np.ndarray
    groups: np.ndarray
    x: np.ndarray | None = None
    doy: np.ndarray | None = None
    inputs: tuple[str, ...] = ()
    #: the in-situ values' own standard error (``None``: not given): the error model states the
    #: estimate's error, not the measurement's
    insitu_sigma: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> CalibrationData:
        return CalibrationData(self.estimate[rows], self.target[rows], self.groups[rows],
                               None if self.x is None else self.x[:, rows],
                               None if self.doy is None else self.doy[rows], self.inputs,
                               None if self.insitu_sigma is None else self.insitu_sigma[rows])

    def available(self) -> list[str]:
        """The methods these data allow."""
        out = ["poly1", "poly2"]
        if self.x is not None:
            out.append("refit")
            if self.doy is not None:
                out.append("refit-doy")
                if all(b in self.inputs for b in VI_BANDS):
                    out.append("refit-vi-doy")
        return out


def _solve(f: np.ndarray, t: np.ndarray, alpha: float, prior: np.ndarray) -> np.ndarray:
    """Ridge regression of ``t`` on ``f`` shrunk towards ``prior`` (intercept not penalised)."""
    a = np.c_[f, np.ones(len(f))]
    penalty = alpha * len(f) * np.eye(a.shape[1])
    penalty[-1, -1] = 0.0
    return prior + np.linalg.lstsq(a.T @ a + penalty, a.T @ (t - a @ prior), rcond=None)[0]



def _folds(groups: np.ndarray) -> list[np.ndarray]:
    """Held-out masks: one per group, or 5 folds over rows with fewer than 3 groups."""
    names = list(dict.fromkeys(groups.tolist()))
    if len(names) >= 3:
        return [groups == g for g in names]
    k = min(5, len(groups))
    order = np.arange(len(groups)) % k
    return [order == i for i in range(k)]


Trace = Callable[[np.ndarray], None]  # called with the row indices of every fit's training rows


@dataclass(frozen=True)
class Choice:
    method: str
    alpha: float
    inner_rmse: float


def choose(data: CalibrationData, rows: np.ndarray, method: str, network: Network | None, *,
           trace: Trace | None = None) -> tuple[Choice, np.ndarray]:
    """Choose the penalty (and, for ``auto``, the method) by an inner cross-validation on
    ``rows`` only, then fit on all of ``rows``: the choice and its coefficients."""
    sub = data.subset(rows)
    if method == "none":
        return Choice("none", 0.0, _rmse(sub.estimate, sub.target)), np.array([1.0, 0.0])
    if method == "auto" and len(set(sub.groups.tolist())) < AUTO_MIN_GROUPS:
        # whether a gain holds across groups cannot be judged on fewer: no correction
        return Choice("none", 0.0, _rmse(sub.estimate, sub.target)), np.array([1.0, 0.0])
    methods = data.available() if method == "auto" else [method]
    folds = _folds(sub.groups)
    best: Choice | None = None
    best_folds: list[np.ndarray] = []
    for m in methods:
        f, prior = features(m, network, sub.estimate, sub.x, sub.doy, sub.inputs)
        for alpha in ALPHAS:
            pred = []
            for held in folds:
                if trace is not None:
                    trace(rows[~held])
                coef = _solve(f[~held], sub.target[~held], alpha, prior)
                pred.append(evaluate(f[held], coef))
            rmse = _rmse(np.concatenate(pred), np.concatenate([sub.target[h] for h in folds]))
            if best is None or rmse < best.inner_rmse - 1e-12:
                best, best_folds = Choice(m, alpha, rmse), pred
    assert best is not None
    if method == "auto" and not _gain_holds(sub, folds, best_folds):
        return Choice("none", 0.0, _rmse(sub.estimate, sub.target)), np.array([1.0, 0.0])
    f, prior = features(best.method, network, sub.estimate, sub.x, sub.doy, sub.inputs)
    if trace is not None:
        trace(rows)
    return best, _solve(f, sub.target, best.alpha, prior)


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


def _gain_holds(sub: CalibrationData, folds: list[np.ndarray], predictions: list[np.ndarray]) -> bool:
    """``auto``'s rule: a correction is kept only when its gain over no correction holds across
    the held-out groups — the mean gain less one standard error is above zero — both in RMSE
    and in the error left after removing each group's constant offset (another site's protocol
    differs by one: a correction must improve what an offset does not explain)."""
    def holds(gains: np.ndarray) -> bool:
        if len(gains) < 2:
            return bool(gains.mean() > 0)
        return bool(gains.mean() - gains.std(ddof=1) / np.sqrt(len(gains)) > 0)

    raw = [sub.estimate[h] - sub.target[h] for h in folds]
    new = [p - sub.target[h] for h, p in zip(folds, predictions)]
    rmse = np.array([np.sqrt(np.mean(a**2)) - np.sqrt(np.mean(b**2)) for a, b in zip(raw, new)])
    centred = np.array([a.std() - b.std() for a, b in zip(raw, new)])
    return holds(rmse) and holds(centred)


@dataclass(frozen=True)
class FoldResult:
    group: str
    n: int
    choice: Choice
    uncalibrated: Agreement
    calibrated: Agreement


@dataclass(frozen=True)
class CrossValidation:
    method: str
    predictions: np.ndarray
    folds: list[FoldResult]
    uncalibrated: Agreement
    calibrated: Agreement


def cross_validate(data: CalibrationData, method: str, network: Network | None, *,
                   trace: Callable[[str, np.ndarray], None] | None = None) -> CrossValidation:
    """Leave-one-group-out: every group's rows predicted by a calibration (penalty and
    method chosen, coefficients fitted) on the other groups' rows only.

    ``trace(held_out_group, training_rows)`` is called for every fit (tests prove the
    held-out group is never among them).
    """
    names = list(dict.fromkeys(data.groups.tolist()))
    if len(names) < 2:
        raise InputError(f"cross-validation needs at least 2 groups, got {len(names)}")
    pred = np.full(len(data.target), np.nan)
    folds = []
    for g in names:
        held = data.groups == g
        rows = np.flatnonzero(~held)
        inner = (lambda r, g=g: trace(g, r)) if trace is not None else None
        choice, coef = choose(data, rows, method, network, trace=inner)
        test = data.subset(np.flatnonzero(held))
        f, _ = features(choice.method, network, test.estimate, test.x, test.doy, test.inputs)
        pred[held] = evaluate(f, coef)
        folds.append(FoldResult(str(g), int(held.sum()), choice, Agreement.of(test.estimate, test.target),
                                Agreement.of(pred[held], test.target)))
    return CrossValidation(method, pred, folds, Agreement.of(data.estimate, data.target),
                           Agreement.of(pred, data.target))


# ------------------------------------------------------------------------------ the file


def fit_calibration(data: CalibrationData, method: str, *, model: str, variable: str = "LAI",
                    network: Any = None) -> tuple[Calibration, dict[str, CrossValidation]]:
    """Fit ``method`` on all of ``data`` and cross-validate it and every other method the
    data allow (leave one group out).

    Returns
    -------
    calibration
        Fitted on every row, its ``cv`` the outer cross-validation of ``method``.
    results
        ``{method: CrossValidation}`` for ``method`` and every method the data allow.
    """
    if not isinstance(data, CalibrationData):  # (a DataFrame failed on .available)
        raise TypeError(f"data: a CalibrationData, not {type(data).__name__}; calibration_data() makes one from a "
                        "matched table (validate's, or predict-table's with an in-situ column)")
    if method not in CHOICES:
        raise ConfigError(f"method: {method!r} is not allowed; allowed values: {', '.join(CHOICES)}")
    if method not in ("auto", "none") and method not in data.available():
        raise InputError(f"method {method} needs " + ("band values and dates" if "doy" in method
                                                      else "band values") + " for every row")
    usable = np.isfinite(data.estimate) & np.isfinite(data.target)
    if not usable.all():  # e.g. rows predict-table masked as hazy
        log.info("%d row(s) without an estimate or an in-situ value left out", int((~usable).sum()))
        data = data.subset(np.flatnonzero(usable))
    if len(data.target) < MIN_ROWS:
        raise InputError(f"{len(data.target)} usable row(s): a calibration needs at least {MIN_ROWS}")
    if network is None and data.x is not None:
        network = load_network(model, variable)
    results = {m: cross_validate(data, m, network) for m in dict.fromkeys([method, *data.available(), "auto"])}
    choice, coef = choose(data, np.arange(len(data.target)), method, network)
    cv = results[method]
    summary = {
        "validation": "leave one group out",
        "chosen": {"method": choice.method, "alpha": choice.alpha, "inner_rmse": choice.inner_rmse},
        "uncalibrated": cv.uncalibrated.as_dict(), "calibrated": cv.calibrated.as_dict(),
        "folds": [{"group": f.group, "n": f.n, "method": f.choice.method, "alpha": f.choice.alpha,
                   "uncalibrated": f.uncalibrated.as_dict(), "calibrated": f.calibrated.as_dict()}
                  for f in cv.folds],
        "methods": {m: r.calibrated.as_dict() for m, r in results.items()},
        "worst": grouping_figures(cv)["worst"],
    }
    summary["harm"] = harmed_groups(cv)
    sigma, coverage = sigma_model(cv.predictions, data.target, data.groups, data.insitu_sigma)
    summary["sigma"] = {"model": "sigma = sqrt(tau^2 + (s0 + s1 * calibrated value)^2): a group's own offset and "
                                 "the spread within a group; ±sigma for 68 %, ±2 sigma for 95 %",
                        "insitu_error": "taken out" if data.insitu_sigma is not None else "not given", **coverage}
    domain = {"estimate": [round(float(np.nanmin(data.estimate)), 4), round(float(np.nanmax(data.estimate)), 4)]}
    if data.doy is not None and np.isfinite(data.doy).any():
        domain["doy"] = [float(np.nanmin(data.doy)), float(np.nanmax(data.doy))]
    if choice.method.startswith("refit"):  # bands and angles the re-fitted layer was constrained on
        domain["inputs"] = {name: [round(float(np.nanmin(row)), 5), round(float(np.nanmax(row)), 5)]
                            for name, row in zip(data.inputs, data.x)}
    cal = Calibration(choice.method, choice.alpha, tuple(float(v) for v in coef), str(model), variable,
                      tuple(data.inputs) if choice.method.startswith("refit") else (), len(data.target),
                      tuple(map(str, dict.fromkeys(data.groups.tolist()))), summary, domain=domain,
                      sigma=sigma)
    return cal, results


#: a held-out group is harmed when the correction lowers its correlation with the in-situ values
#: by more than this, or makes its error left after removing the group's offset grow by more
#: than this share
HARM_TOLERANCE = 0.05


def harmed_groups(cv: CrossValidation) -> list[dict[str, Any]]:
    """Held-out groups whose estimates the correction, fitted without them, made worse in what
    a constant offset cannot explain (protocols differ by one): a lower correlation with the
    in-situ values, or a larger error after removing the group's offset (√(RMSE² − bias²),
    from each fold's own agreement figures)."""
    out = []
    for f in cv.folds:
        u, c = f.uncalibrated, f.calibrated
        if c.n < 3:
            continue
        e0, e1 = (float(np.sqrt(max(a.rmse**2 - a.bias**2, 0.0))) for a in (u, c))
        if (np.isfinite(u.r) and np.isfinite(c.r) and c.r < u.r - HARM_TOLERANCE) or e1 > e0 * (1 + HARM_TOLERANCE):
            out.append({"group": f.group, "n": c.n, "method": f.choice.method, "r_uncalibrated": u.r, "r": c.r,
                        "centred_rmse_uncalibrated": e0, "centred_rmse": e1})
    return out


def grouping_figures(cv: CrossValidation) -> dict[str, Any]:
    """A cross-validation in brief: pooled figures and its worst held-out group (by RMSE)."""
    worst = max(cv.folds, key=lambda f: f.calibrated.rmse)
    return {"rmse": cv.calibrated.rmse, "bias": cv.calibrated.bias, "r": cv.calibrated.r,
            "uncalibrated_rmse": cv.uncalibrated.rmse,
            "worst": {"group": worst.group, "n": worst.n, "rmse": worst.calibrated.rmse,
                      "uncalibrated_rmse": worst.uncalibrated.rmse}}


def error_model(value: np.ndarray, residual: np.ndarray, groups: np.ndarray,
                measurement: np.ndarray | None = None) -> tuple[float, float, float]:
    """How the errors (in-situ − calibrated) of ``value`` spread: ``(s0, s1, tau)`` with
    σ = √(tau² + (s0 + s1 v)²).

    Errors share a part within a group (a site's or season's own offset: protocol, soil,
    cultivar) and spread around it with the value. ``s0 + s1 v`` is fitted to the absolute
    within-group errors and scaled so that 68 % of them lie within it (an empirical
    quantile, not a normal's: these errors are heavy-tailed); ``tau²`` is the mean squared
    group offset, measured from zero (a calibration's remaining bias is part of what a new
    group may be off by), less what the within-group spread puts into a group mean.
    ``measurement``: each in-situ value's own standard error, taken out of the spread (what is
    left is the estimate's)."""
    names = list(dict.fromkeys(groups.tolist()))
    mean = {g: float(residual[groups == g].mean()) for g in names}
    within = residual - np.array([mean[g] for g in groups.tolist()])
    if measurement is not None:  # |w|² = estimate error² + measurement error²
        within = np.sign(within) * np.sqrt(np.maximum(within**2 - np.nan_to_num(measurement) ** 2, 0.0))
    a = np.c_[np.ones(len(value)), value]
    s0, s1 = np.linalg.lstsq(a, np.abs(within), rcond=None)[0]  # the shape of the spread
    q68 = float(np.quantile(np.abs(within) / np.maximum(s0 + s1 * value, SIGMA_FLOOR), 0.6827))
    offsets = np.array(list(mean.values()))
    size = np.array([np.count_nonzero(groups == g) for g in names])
    tau2 = float(np.mean(offsets**2) - np.mean(within**2) * np.mean(1.0 / size)) if len(names) > 1 else 0.0
    return float(s0 * q68), float(s1 * q68), float(np.sqrt(max(tau2, 0.0)))


def sigma_model(predictions: np.ndarray, target: np.ndarray, groups: np.ndarray,
                measurement: np.ndarray | None = None) -> tuple[tuple[float, float, float], dict[str, float]]:
    """The error model of the held-out predictions (:func:`error_model`), and its coverage
    checked as it will be used, on a group it never saw: each group's errors against the model
    fitted on the other groups' (the share within ±σ and ±2σ; nominal 68 / 95 %; with the
    in-situ values' ``measurement`` error, against √(σ² + measurement²))."""
    ok = np.isfinite(predictions) & np.isfinite(target)
    value, res, grp = predictions[ok], (target - predictions)[ok], groups[ok]
    meas = None if measurement is None else np.nan_to_num(measurement[ok])
    inside1 = inside2 = checked = 0
    for g in dict.fromkeys(grp.tolist()):
        held = grp == g
        if (~held).sum() < 3 or len(set(grp[~held].tolist())) < 2:
            continue  # a group offset cannot be estimated from one group: no honest check
        checked += int(held.sum())
        sig = error_sigma(error_model(value[~held], res[~held], grp[~held], None if meas is None else meas[~held]),
                          value[held])
        if meas is not None:
            sig = np.hypot(sig, meas[held])
        inside1 += int((np.abs(res[held]) <= sig).sum())
        inside2 += int((np.abs(res[held]) <= 2 * sig).sum())
    n = checked
    return error_model(value, res, grp, meas), {"coverage_1sigma": round(inside1 / n, 4) if n else float("nan"),
                                          "coverage_2sigma": round(inside2 / n, 4) if n else float("nan"),
                                          "n_checked": n}


def cv_table(results: dict[str, CrossValidation]) -> list[dict[str, Any]]:
    """One row per method and held-out group (and ``all``): uncalibrated and calibrated figures."""
    rows = []
    for m, r in results.items():
        for f in [*r.folds, None]:
            u, c = (f.uncalibrated, f.calibrated) if f else (r.uncalibrated, r.calibrated)
            rows.append({"method": m, "held_out": f.group if f else "all", "n": f.n if f else u.n,
                         "chosen": f"{f.choice.method} a={f.choice.alpha:g}" if f else "",
                         "rmse_uncalibrated": u.rmse, "bias_uncalibrated": u.bias,
                         "rmse": c.rmse, "bias": c.bias, "mae": c.mae, "r": c.r})
    return rows


def calibration_data(df: Any, path: str | Path | None, *, group_column: str, insitu_column: str,
                     predict: PredictOptions, options: TableOptions, method: str = "auto",
                     insitu_error_column: str | None = None) -> CalibrationData:
    """The rows of ``df`` (a matched or predict-table table) usable for a calibration: those
    with an in-situ value and an estimate (the column named after ``predict``'s first
    variable); band values and day of year where the table has them (the ``refit*``
    methods need them).

    Raises
    ------
    InputError
        A column missing (naming the columns there are); band values or dates missing for
        a method that needs them.
    """
    variable = predict.variables[0]
    wanted = [(group_column, "--group"), (insitu_column, "--insitu-column"), (variable, "the estimate")]
    if insitu_error_column is not None:
        wanted.append((insitu_error_column, "--insitu-error-column"))
    for c, what in wanted:
        if c not in df.columns:
            raise InputError(f"has no column {c!r} ({what}); its columns: {', '.join(map(str, df.columns))}",
                             path=path)
    keep = df[insitu_column].notna() & df[variable].notna()
    if not keep.all():
        log.info("%s: %d row(s) without an in-situ value or an estimate left out", path, int((~keep).sum()))
    df = df[keep.to_numpy()]
    check_measurements(df[insitu_column], variable, column=insitu_column, path=path)
    x = doy = None
    net = load_network(predict.model, variable)
    refit = method == "auto" or method.startswith("refit")
    if refit and "sensor" in df.columns and df["sensor"].dropna().nunique() > 1:
        # the band columns of two sensors are not the same bands (Landsat's B5 is NIR)
        why = (f"the table mixes sensors ({', '.join(sorted(df['sensor'].dropna().unique()))}): a network "
               "re-fit needs the rows of one (filter the table)")
        if method != "auto":
            raise InputError(why, path=path)
        log.warning("no network re-fit: %s", why)
        refit = False
    if refit:
        try:
            x = table_inputs(df, net.inputs, predict=predict, options=options, path=path).x.astype(float)
        except InputError as exc:
            if method != "auto":
                raise
            log.warning("no network re-fit: %s", exc)
        try:
            doy = day_of_year(df, options.time_column, path=path)
        except InputError as exc:
            if "doy" in method:
                raise
            log.info("no day of year: %s", exc)
    return CalibrationData(df[variable].to_numpy(float), df[insitu_column].to_numpy(float),
                           df[group_column].astype(str).to_numpy(), x, doy, tuple(net.inputs),
                           None if insitu_error_column is None else df[insitu_error_column].to_numpy(float))


def write_cv_tables(results: dict[str, CrossValidation], out: str | Path,
                    data: CalibrationData | None = None) -> tuple[Path, Path, str]:
    """``{out}_cv.csv`` and ``{out}_cv.md`` beside the calibration file (and, given the
    ``data``, ``{out}_cv_predictions.csv``: each row's held-out prediction by every
    method); returns the two tables and the Markdown text."""
    out = Path(out)
    table = pd.DataFrame(cv_table(results))
    csv = out.with_name(out.stem + "_cv.csv")
    md = out.with_name(out.stem + "_cv.md")
    write_text_atomic(csv, table.to_csv(index=False, float_format="%.4f"))
    if data is not None:
        rows = pd.DataFrame({"group": data.groups, "insitu": data.target, "estimate": data.estimate}
                            | {m: r.predictions for m, r in results.items()})
        write_text_atomic(out.with_name(out.stem + "_cv_predictions.csv"),
                          rows.to_csv(index=False, float_format="%.4f"))
    cols = ["method", "held_out", "n", "chosen", "rmse_uncalibrated", "bias_uncalibrated", "rmse", "bias", "r"]
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for row in table[cols].itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    text = "\n".join(lines) + "\n"
    write_text_atomic(md, text)
    return csv, md, text
