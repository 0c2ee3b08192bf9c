"""Calibrations of a network's output: the :class:`Calibration` type, its JSON file, how it
is applied to estimates and the tag calibrated products carry.

How a calibration is fitted and cross-validated against in-situ data is
:mod:`vercye_lai.insitu.calibrate`'s business; this module is what predict, predict-table and
analyze need to apply one (it sits below them, beside the network).

Every method is linear in its features, with the intercept last:

``poly1``, ``poly2``
    A polynomial of the estimate (the form of the reference's wheat/maize adjustments).
``refit``
    The network's output neuron re-fitted on its hidden activations (the 5 ``tanh``
    units): same inputs, same hidden layer, new output weights.
``refit-doy``
    ``refit`` plus the day of year and its square (d = DOY / 100; phenology: the same
    spectrum means a different canopy in March and in June).
``refit-vi-doy``
    ``refit-doy`` plus four vegetation indices of the row's reflectances (NDVI, NDRE,
    red-edge and green chlorophyll indices; 20 m Sentinel-2 bands).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vercye_lai._version import __version__
from vercye_lai.errors import ConfigError, InputError
from vercye_lai.io import write_text_atomic
from vercye_lai.model.registry import load_network
from vercye_lai.model.sl2p import Network, ordered_matmul

log = logging.getLogger(__name__)

#: ``none``: no correction (the estimate itself), what ``auto`` keeps unless a method's gain holds
#: across held-out groups
METHODS = ("none", "poly1", "poly2", "refit", "refit-doy", "refit-vi-doy")
CHOICES = ("auto", *METHODS)
VI_BANDS = ("B3", "B4", "B5", "B7", "B8A")


def features(method: str, network: Network | None, estimate: np.ndarray, x: np.ndarray | None,
             doy: np.ndarray | None, inputs: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """The ``(n, k)`` feature matrix of ``method`` and its *no change* coefficients
    (``k`` + 1 with the intercept last)."""
    y = np.asarray(estimate, float)
    if method in ("none", "poly1"):
        return y[:, None], np.array([1.0, 0.0])
    if method == "poly2":
        return np.c_[y, y**2], np.array([1.0, 0.0, 0.0])
    if x is None:
        raise InputError(f"method {method} re-fits the network: it needs the band values of every row")
    v, c = network.output_layer
    cols = [network.hidden(x).T]
    prior = [v]
    if method in ("refit-doy", "refit-vi-doy"):
        if doy is None:
            raise InputError(f"method {method} needs each row's date (day of year)")
        d = np.asarray(doy, float) / 100.0
        cols.append(np.c_[d, d**2])
        prior.append(np.zeros(2))
    if method == "refit-vi-doy":
        b = {name: np.asarray(x[inputs.index(name)], float) for name in VI_BANDS}
        with np.errstate(divide="ignore", invalid="ignore"):
            vi = np.c_[(b["B8A"] - b["B4"]) / (b["B8A"] + b["B4"]), (b["B8A"] - b["B5"]) / (b["B8A"] + b["B5"]),
                       b["B7"] / b["B5"] - 1.0, b["B8A"] / b["B3"] - 1.0]
        cols.append(vi)
        prior.append(np.zeros(4))
    if method not in METHODS:
        raise ConfigError(f"method: {method!r} is not allowed; allowed values: {', '.join(CHOICES)}")
    return np.hstack(cols), np.r_[np.concatenate(prior), c]



#: LAI beyond the training estimates by more than this is outside a calibration's domain
ESTIMATE_MARGIN = 0.5
#: a network input (reflectance, cosine of an angle) beyond its training range by more than this
#: share of the range, or by :data:`INPUT_MARGIN_MIN`, is outside a re-fit's domain: the re-fitted
#: output layer was never constrained there
INPUT_MARGIN = 0.1
INPUT_MARGIN_MIN = 0.02
#: the smallest σ a calibration states (LAI)
SIGMA_FLOOR = 0.05
#: how an uncertainty raster's ``VERCYE_UNCERTAINTY`` tag starts when it holds a calibration's σ
#: (else it names the network's error network)
CALIBRATED_SIGMA = "calibrated"


@functools.lru_cache(maxsize=32)
def valid_range(model: str, variable: str) -> tuple[float, float]:
    """The network's valid output range of ``variable`` (a calibrated value stays in it)."""
    net = load_network(model, variable)
    return float(net.out_min), float(net.out_max)


_WARNED: set[tuple[str, str]] = set()


def _warn_once(cal: Calibration, n: int, total: int) -> None:
    key = (str(cal.path), cal.digest())
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning("%s: %d of %d value(s) outside the calibration's training domain (%s): left "
                    "uncalibrated (flagged)", cal.path.name if cal.path else "calibration", n, total,
                    ", ".join(f"{k} {v[0]:g}–{v[1]:g}" if k != "inputs" else f"the fitted range of {len(v)} inputs"
                              for k, v in cal.domain.items()))


def error_sigma(model: Sequence[float], value: np.ndarray) -> np.ndarray:
    """σ of the error model ``(s0, s1, tau)`` at ``value`` (LAI): √(tau² + (s0 + s1 v)²), the
    within-group part floored at :data:`SIGMA_FLOOR`."""
    s0, s1, tau = model
    within = np.maximum(s0 + s1 * np.asarray(value, float), SIGMA_FLOOR)
    return np.sqrt(tau * tau + within * within)


def evaluate(f: np.ndarray, coef: np.ndarray) -> np.ndarray:
    # summed in a fixed order, so a pixel and a table row give the same bits (ordered_matmul)
    a = np.c_[f, np.ones(len(f))]
    return np.maximum(ordered_matmul(np.asarray(coef, float)[None, :], a.T)[0], 0.0)  # an LAI is never negative



@dataclass(frozen=True)
class Calibration:
    """A fitted calibration: ``apply`` maps estimates (and inputs, day of year) to
    calibrated values. Written and read as JSON (:meth:`write`, :func:`load_calibration`)."""

    method: str
    alpha: float
    coefficients: tuple[float, ...]
    model: str
    variable: str = "LAI"
    inputs: tuple[str, ...] = ()
    n: int = 0
    groups: tuple[str, ...] = ()
    cv: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    #: where it was fitted: ``{"estimate": [lo, hi], "doy": [lo, hi]}`` (files of older
    #: versions have none: then nothing is outside it)
    domain: dict[str, Any] = field(default_factory=dict)
    #: ``(s0, s1, tau)``: the error model of the calibrated value v,
    #: σ = √(tau² + (s0 + s1 v)²) — a group's own offset (tau, a site or season the fit never saw)
    #: and the spread within a group growing with v (``()``: not fitted, files of earlier versions)
    sigma: tuple[float, ...] = ()

    def uncertainty(self, calibrated: np.ndarray) -> np.ndarray:
        """σ of a calibrated value (LAI units): ±σ is meant to hold 68 % of the errors on a
        group (site, season) of its own, ±2σ 95 % (:func:`vercye_lai.insitu.calibrate.error_model`)."""
        if not self.sigma:
            raise InputError("this calibration file has no error model (made by an earlier version)", path=self.path)
        return error_sigma(self.sigma, calibrated)

    @property
    def needs_bands(self) -> bool:
        return self.method.startswith("refit")

    @property
    def needs_date(self) -> bool:
        return "doy" in self.method

    @property
    def column(self) -> str:
        return f"{self.variable} Calibrated"

    def outside(self, estimate: np.ndarray, doy: np.ndarray | None = None,
                x: np.ndarray | None = None) -> np.ndarray:
        """Rows outside the training domain: an estimate beyond the fitted ones by more than
        :data:`ESTIMATE_MARGIN`, a day of year beyond the fitted season, or (re-fits, given the
        ``(n_inputs, n)`` physical inputs ``x``) an input — band or angle — beyond its fitted
        range (:data:`INPUT_MARGIN`)."""
        est = np.asarray(estimate, float)
        out = np.zeros(est.shape, bool)
        with np.errstate(invalid="ignore"):
            if "estimate" in self.domain:
                lo, hi = self.domain["estimate"]
                out |= (est < lo - ESTIMATE_MARGIN) | (est > hi + ESTIMATE_MARGIN)
            if doy is not None and self.domain.get("doy") and self.needs_date:
                lo, hi = self.domain["doy"]
                d = np.broadcast_to(np.asarray(doy, float), est.shape)
                out |= (d < lo) | (d > hi)
            if x is not None and self.needs_bands:
                for name, (lo, hi) in self.domain.get("inputs", {}).items():
                    m = max(INPUT_MARGIN * (hi - lo), INPUT_MARGIN_MIN)
                    v = np.asarray(x[self.inputs.index(name)], float)
                    out |= (v < lo - m) | (v > hi + m)
        return out

    def apply(self, estimate: np.ndarray, x: np.ndarray | None = None, doy: np.ndarray | None = None,
              *, fallback: bool = True) -> np.ndarray:
        """Calibrated values: within the variable's valid range, with the day of year bounded
        to the fitted season (never a raw polynomial of an unseen date), and — with
        ``fallback`` (default) — the uncalibrated estimate where the row is outside the
        training domain (:meth:`outside`; a warning says how many). NaN where the estimate
        or an input is NaN."""
        return self.calibrate(estimate, x, doy, fallback=fallback)[0]

    def calibrate(self, estimate: np.ndarray, x: np.ndarray | None = None, doy: np.ndarray | None = None,
                  *, fallback: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`apply`'s values and, with them, which rows are outside the training domain
        (:meth:`outside`: those a flag marks)."""
        network = self.network() if self.needs_bands else None
        est = np.asarray(estimate, float)
        raw_doy = None if doy is None else np.asarray(doy, float)
        far = self.outside(est, raw_doy, x)
        bounded = np.clip(raw_doy, *self.domain["doy"]) if raw_doy is not None and self.domain.get("doy") else raw_doy
        f, _ = features(self.method, network, est, x, bounded, self.inputs)
        if f.shape[1] + 1 != len(self.coefficients):
            raise InputError(f"method {self.method} of {self.model} has {f.shape[1] + 1} coefficients, the file "
                             f"gives {len(self.coefficients)}", path=self.path)
        out = evaluate(np.nan_to_num(f), np.asarray(self.coefficients))
        np.clip(out, *valid_range(self.model, self.variable), out=out)
        if fallback and far.any():
            out[far] = est[far]
            _warn_once(self, int(far.sum()), est.size)
        bad = ~np.isfinite(est) | ~np.isfinite(f).all(axis=1)
        out[bad] = np.nan
        return out, far

    def network(self) -> Network:
        net = load_network(self.model, self.variable)
        if tuple(net.inputs) != tuple(self.inputs):
            raise InputError(f"calibration of {self.model} expects inputs {', '.join(self.inputs)}, the "
                             f"network has {', '.join(net.inputs)}", path=self.path)
        return net

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "alpha": self.alpha, "coefficients": list(self.coefficients),
                "model": self.model, "variable": self.variable, "inputs": list(self.inputs),
                "n": self.n, "groups": list(self.groups), "cv": self.cv, "domain": self.domain,
                "sigma": dict(zip(("s0", "s1", "tau"), self.sigma)),
                "software": f"vercye-lai {__version__}"}

    def write(self, path: str | Path) -> Path:
        # strict JSON: an undefined figure (r of a constant column) is null, never NaN
        return write_text_atomic(Path(path), json.dumps(_strict(self.to_dict()), indent=2, allow_nan=False) + "\n")

    def digest(self) -> str:
        """A short hash of the calibration (tags of calibrated products)."""
        d = self.to_dict()
        d.pop("software")
        if not d["domain"]:  # files of versions before the domain keep their hash
            d.pop("domain")
        if not d["sigma"]:
            d.pop("sigma")
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float as ``None`` (JSON's null)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _error_model(value: Any) -> tuple[float, ...]:
    """``(s0, s1, tau)`` of a file's ``sigma``: ``{s0, s1, tau}``, or the ``[s0, s1, k95]`` of the
    version before (a spread without a group offset: tau 0)."""
    if not value:
        return ()
    if isinstance(value, dict):
        return float(value["s0"]), float(value["s1"]), float(value["tau"])
    return float(value[0]), float(value[1]), 0.0


def load_calibration(path: str | Path) -> Calibration:
    """Read a calibration file written by ``vercye-lai calibrate`` (once per version of the
    file: predict asks for it per date and block, analyze per part).

    Raises
    ------
    InputError
        Not a calibration file (naming what is wrong).
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise InputError(f"cannot read the calibration file: {exc.strerror or exc}", path=path) from exc
    return _read_calibration(path, (st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=16)
def _read_calibration(path: Path, stamp: tuple[int, int]) -> Calibration:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        c = Calibration(method=d["method"], alpha=float(d["alpha"]),
                        coefficients=tuple(float(v) for v in d["coefficients"]), model=str(d["model"]),
                        variable=str(d.get("variable", "LAI")), inputs=tuple(d.get("inputs", ())),
                        n=int(d.get("n", 0)), groups=tuple(d.get("groups", ())), cv=d.get("cv", {}),
                        path=path, domain=d.get("domain") or {},
                        sigma=_error_model(d.get("sigma")))
    except OSError as exc:
        raise InputError(f"cannot read the calibration file: {exc.strerror or exc}", path=path) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a calibration file of vercye-lai calibrate ({exc!r} missing or wrong)",
                         path=path) from exc
    if c.method not in METHODS:
        raise InputError(f"unknown calibration method {c.method!r}", path=path)
    if c.needs_bands and not c.inputs:
        raise InputError(f"method {c.method} needs the network inputs, the file lists none", path=path)
    want = {"none": 2, "poly1": 2, "poly2": 3}.get(c.method)  # (a refit's: checked against its network)
    if want is not None and len(c.coefficients) != want:  # a hand-edited file was applied as no change
        raise InputError(f"method {c.method} has {want} coefficients, the file gives {len(c.coefficients)}",
                         path=path)
    return c


def model_calibration(path: str | Path | None, model: str | Path) -> Calibration | None:
    """The calibration file ``path`` (``None``: none) for predicting with ``model``.

    Raises
    ------
    InputError
        Not a calibration file, or one fitted for another model.
    """
    if path is None:
        return None
    cal = load_calibration(path)
    if cal.model != str(model):
        raise InputError(f"calibration fitted for model {cal.model}, not {model}: "
                         f"predict with --model {cal.model}", path=path)
    return cal


def calibration_tag(cal: Calibration | None, variable: str) -> str:
    """``VERCYE_CALIBRATION`` of a product: method, hash and file of its calibration ('' none)."""
    if cal is None or cal.variable != variable:
        return ""
    return f"{cal.method} {cal.digest()} {Path(cal.path).name if cal.path else ''}".strip()
