"""The bundled SL2P coefficient sets, and loading a network by name or path.

Bundled models (``--model``):

``sl2p`` (default)
    LEAF-Toolbox ``s2_sl2p_weiss_or_prosail_NNT3_Single_0_1`` (20 m, 11 inputs), the network
    VeRCYe's reference implementation (vercye_ops) uses; Earth Engine CSV form.
``sl2p-10m``
    LEAF-Toolbox 10 m network ``…_10m_NNT1_Single_0_1`` (7 inputs ``cosVZA, cosSZA, cosRAA,
    B2, B3, B4, B8``).
``snap-3.0-s2a``, ``snap-3.0-s2b``, ``snap-2.1``
    ESA SNAP Biophysical Processor sets (GPL-3.0 data, see ``weights/snap/NOTICE.md``).
``snap-3.0``
    SNAP 3.0 with each stack's own unit's network, chosen from the stack's ``PLATFORM`` tag
    (written at acquisition): Sentinel-2A → ``snap-3.0-s2a``; 2B and 2C → ``snap-3.0-s2b``
    (SNAP's own S2C networks are byte-identical copies of its S2B ones, optical-toolbox
    2025). See :func:`unit_model`.

A path is accepted too: a SNAP auxdata folder (with ``LAI/``, ``FAPAR/`` … inside), a
LEAF/Earth Engine CSV, or an ``.npz`` written by ``vercye-lai convert-weights``.
"""

from __future__ import annotations

import csv
import functools
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from vercye_lai.acquire.platform import s2_platform
from vercye_lai.errors import ModelError
from vercye_lai.model.sl2p import Network, grid_codes
from vercye_lai.stack import L8_BANDS, S2_BANDS_10M, S2_BANDS_20M

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variable:
    """A biophysical variable: its product suffix, SNAP folder, LEAF network id and unit."""

    name: str
    snap_dir: str
    leaf_id: int  # a LEAF CSV row's third value; rows are not always in id order
    unit: str
    description: str


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable("LAI", "LAI", 1, "m2 m-2", "leaf area index"),
        Variable("FAPAR", "FAPAR", 2, "1", "fraction of absorbed photosynthetically active radiation"),
        Variable("FCOVER", "FCOVER", 3, "1", "fraction of vegetation cover"),
        Variable("CCC", "LAI_Cab", 4, "ug cm-2", "canopy chlorophyll content (SNAP LAI_Cab)"),
        Variable("CWC", "LAI_Cw", 5, "g cm-2", "canopy water content (SNAP LAI_Cw)"),
    )
}

#: SNAP coefficient files order the inputs B3…B12 first, then the three cosines.
SNAP_INPUT_ORDER = ("B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12", "cosVZA", "cosSZA", "cosRAA")

DEFAULT_MODEL = "sl2p"
MODELS: dict[str, tuple[str, str]] = {  # name -> (kind, path inside weights/)
    "sl2p": ("leaf", "leaf/s2_sl2p_weiss_or_prosail_NNT3_Single_0_1.csv"),
    "sl2p-10m": ("leaf", "leaf/s2_sl2p_weiss_or_prosail_10m_NNT1_Single_0_1.csv"),
    # Landsat 8/9 OLI and HLS L30 (LEAF uses this network for all three)
    "sl2p-l8": ("leaf", "leaf/L8_sl2p_weiss_or_prosail_NNT3_Single_0_1_fromGEEFC.csv"),
    "snap-3.0-s2a": ("snap", "snap/3_0/S2A"),
    "snap-3.0-s2b": ("snap", "snap/3_0/S2B"),
    "snap-2.1": ("snap", "snap/2_1"),
    "snap-3.0": ("per-unit", "snap/3_0"),  # a network per Sentinel-2 unit: UNIT_MODELS
}
#: models with a network per Sentinel-2 unit: name → {unit letter: bundled model}. SNAP
#: (optical-toolbox 2025) ships S2C networks that are byte-identical copies of its S2B ones.
UNIT_MODELS: dict[str, dict[str, str]] = {
    "snap-3.0": {"a": "snap-3.0-s2a", "b": "snap-3.0-s2b", "c": "snap-3.0-s2b"},
}
#: LEAF-Toolbox error networks (``--uncertainty``): same inputs, output = the variable's uncertainty
ERROR_MODELS: dict[str, str] = {
    "sl2p": "leaf/s2_sl2p_weiss_or_prosail_NNT3_Single_0_1_Error.csv",
    "sl2p-10m": "leaf/s2_sl2p_weiss_or_prosail_10m_NNT1_Single_0_1_errors.csv",
}
#: a model CSV's error network beside it: ``{stem}{suffix}``, as LEAF names them
_ERROR_SUFFIXES = ("_Error.csv", "_errors.csv")

_WEIGHTS = resources.files(__package__) / "weights"


def variable(name: str) -> Variable:
    """Look up a variable by name (case-insensitive; SNAP's ``LAI_Cab``/``LAI_Cw`` accepted)."""
    key = name.strip().upper()
    aliases = {"LAI_CAB": "CCC", "LAI_CW": "CWC"}
    key = aliases.get(key, key)
    if key not in VARIABLES:
        raise ModelError(f"unknown variable {name!r}; choose from {', '.join(VARIABLES)}")
    return VARIABLES[key]


def _read_matrix(path: Path) -> np.ndarray:
    return np.atleast_2d(np.loadtxt(path, delimiter=",", dtype=np.float64))


def _snap_extremes(folder: Path, var: Variable) -> tuple[float, float, float]:
    tol, lo, hi = _read_matrix(folder / var.snap_dir / f"{var.snap_dir}_ExtremeCases")[0]
    return float(tol), float(lo), float(hi)


def _load_snap(folder: Path, var: Variable, model: str) -> Network:
    d = folder / var.snap_dir
    if not d.is_dir():
        raise ModelError(f"model {model!r} has no {var.name} network", path=folder)

    def part(suffix: str) -> np.ndarray:
        return _read_matrix(d / f"{var.snap_dir}_{suffix}")

    perm = [SNAP_INPUT_ORDER.index(b) for b in S2_BANDS_20M]  # stack index -> SNAP index
    norm = part("Normalisation")[perm]  # rows (min, max) in stack order
    span = norm[:, 1] - norm[:, 0]
    dmin, dmax = part("Denormalisation")[0]
    tol, lo, hi = _snap_extremes(folder, var)
    domain_min = domain_max = grid = None
    grid_inputs: tuple[int, ...] = ()
    mm = d / f"{var.snap_dir}_DefinitionDomain_MinMax"
    if mm.exists():
        minmax = _read_matrix(mm)  # 2 rows × 8 reflectance bands (SNAP order)
        domain_min = np.full(len(S2_BANDS_20M), np.nan)
        domain_max = np.full(len(S2_BANDS_20M), np.nan)
        grid_inputs = tuple(S2_BANDS_20M.index(b) for b in SNAP_INPUT_ORDER[: minmax.shape[1]])
        domain_min[list(grid_inputs)] = minmax[0]
        domain_max[list(grid_inputs)] = minmax[1]
        g = d / f"{var.snap_dir}_DefinitionDomain_Grid"
        if g.exists():
            grid = grid_codes(_read_matrix(g))
        else:
            grid_inputs = ()
    return Network(
        model=model,
        variable=var.name,
        inputs=S2_BANDS_20M,
        in_scale=2.0 / span,
        in_offset=-2.0 * norm[:, 0] / span - 1.0,
        w1=part("Weights_Layer1_Neurons")[:, perm],
        b1=part("Weights_Layer1_Bias").ravel(),
        w2=part("Weights_Layer2_Neurons").ravel(),
        b2=float(part("Weights_Layer2_Bias").ravel()[0]),
        out_scale=0.5 * (dmax - dmin),
        out_offset=0.5 * (dmax - dmin) + dmin,
        tolerance=tol,
        out_min=lo,
        out_max=hi,
        domain_min=domain_min,
        domain_max=domain_max,
        domain_grid=grid,
        grid_inputs=grid_inputs,
        unit=var.unit,
        source=str(folder.name if folder.is_relative_to(Path(str(_WEIGHTS))) else folder),
    )


def parse_leaf_csv(path: Path) -> list[dict[str, np.ndarray]]:
    """Parse the LEAF-Toolbox/Earth Engine CSV form: one network per data row.

    The third value of a row is the variable's id (``"id"``: 1 LAI, 2 fAPAR, 3 fCOVER, 4
    CCC, 5 CWC, 6 Albedo, 7 DASF). From the 6th value: a count ``n`` and ``n`` values,
    repeated for input scale, input offset, hidden weights (5 × n_inputs, row-major by
    neuron), hidden biases, output weights, output bias, output de-scale weight ``w`` and
    bias ``b`` (the variable is ``(y − b) / w``).
    """
    keys = ("in_scale", "in_offset", "w1", "b1", "w2", "b2", "out_w", "out_b")
    nets = []
    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r]
        for lineno, row in enumerate(rows[1:], start=2):
            values = [float(v) for v in row]
            parts, i = [], 5
            while i < len(values):
                n = int(values[i])
                parts.append(np.asarray(values[i + 1 : i + 1 + n]))
                i += 1 + n
            if len(parts) != len(keys):
                raise ValueError(f"line {lineno}: {len(parts)} blocks, expected {len(keys)}")
            net = dict(zip(keys, parts))
            net["id"] = int(values[2])  # the variable: LEAF selects by it, not by row
            n_in = net["in_scale"].size
            net["w1"] = net["w1"].reshape(-1, n_in)
            nets.append(net)
    except (OSError, ValueError, IndexError) as exc:
        raise ModelError(f"not an SL2P CSV in the LEAF/Earth Engine layout: {exc}", path=path) from exc
    if not nets:
        raise ModelError("SL2P CSV holds no network rows", path=path)
    return nets


def leaf_row(nets: list[dict], var: Variable, path: Path) -> dict:
    """The network of ``var`` among a LEAF CSV's rows, by its id."""
    for net in nets:
        if net["id"] == var.leaf_id:
            return net
    raise ModelError(f"CSV has no row for {var.name} (variable id {var.leaf_id})", path=path)


def _leaf_network(raw: dict[str, np.ndarray], var: Variable, model: str, source: str) -> Network:
    n_in = raw["in_scale"].size
    inputs = {11: S2_BANDS_20M, 7: S2_BANDS_10M, 8: L8_BANDS}.get(n_in)
    if inputs is None:
        raise ModelError(f"{model}: networks with {n_in} inputs are not supported (11 or 7: Sentinel-2; "
                         "8: Landsat 8)")
    scale = np.asarray(raw["in_scale"], dtype=np.float64)
    offset = np.asarray(raw["in_offset"], dtype=np.float64)
    w = float(np.ravel(raw["out_w"])[0])
    b = float(np.ravel(raw["out_b"])[0])
    # LEAF sets carry no output range: use SNAP 3.0's for the same variable (same units)
    tol, lo, hi = _snap_extremes(Path(str(_WEIGHTS / "snap/3_0/S2A")), var)
    with np.errstate(divide="ignore"):
        # definition domain = the inputs' training range, i.e. where x' lies in [-1, 1]
        dmin = np.where(scale != 0, (-1.0 - offset) / scale, -np.inf)
        dmax = np.where(scale != 0, (1.0 - offset) / scale, np.inf)
    lo_, hi_ = np.minimum(dmin, dmax), np.maximum(dmin, dmax)
    return Network(
        model=model,
        variable=var.name,
        inputs=inputs,
        in_scale=scale,
        in_offset=offset,
        w1=raw["w1"],
        b1=np.ravel(raw["b1"]),
        w2=np.ravel(raw["w2"]),
        b2=float(np.ravel(raw["b2"])[0]),
        out_scale=1.0 / w,
        out_offset=-b / w,
        tolerance=tol,
        out_min=lo,
        out_max=hi,
        domain_min=lo_,
        domain_max=hi_,
        unit=var.unit,
        source=source,
    )


def _load_npz(path: Path, var: Variable, model: str) -> Network:
    try:
        with np.load(path) as z:
            raw = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read weights file: {exc}", path=path) from exc
    stored = str(raw.get("variable", var.name))
    if stored != var.name:
        raise ModelError(f"holds the {stored} network, not {var.name}", path=path)
    missing = {"in_scale", "in_offset", "w1", "b1", "w2", "b2", "out_w", "out_b"} - raw.keys()
    if missing:
        raise ModelError(f"weights file lacks {', '.join(sorted(missing))}", path=path)
    return _leaf_network(raw, var, model, path.name)


def model_family(model: str) -> str:
    """The per-unit model a bundled model is a unit's network of (``snap-3.0`` for
    ``snap-3.0-s2b``), else ``model`` itself: products of one family belong in one series."""
    return next((name for name, units in UNIT_MODELS.items() if model in units.values()), model)


def unit_members(model: str | Path) -> tuple[str, ...]:
    """The bundled models a per-unit model chooses from (``model`` itself for any other)."""
    units = UNIT_MODELS.get(str(model))
    return tuple(dict.fromkeys(units.values())) if units else (str(model),)


def unit_model(model: str | Path, platforms: str | None, *, path: str | Path | None = None) -> str | Path:
    """The model to run on a stack: for a per-unit model (:data:`UNIT_MODELS`) the network
    of the stack's unit, from its ``PLATFORM`` tag (``sentinel-2c``; a mosaic of several
    units names them in mosaic order and the first, which fills most pixels, decides, with
    a warning when they differ); ``model`` itself for any other.

    Raises
    ------
    ModelError
        A per-unit model and a stack without a ``PLATFORM`` tag, or of a unit it has no
        network for (naming the stack and the models to choose instead).
    """
    units = UNIT_MODELS.get(str(model))
    if units is None:
        return model
    where = f"{Path(path).name}: " if path is not None else ""
    choose = f"choose {' or '.join(unit_members(model))} with --model"
    found = [s2_platform(p) for p in str(platforms or "").split(",")]
    known = [p for p in found if p]
    if not known:
        raise ModelError(f"{where}{model} picks the network of the stack's Sentinel-2 unit from its "
                         f"PLATFORM tag, and this stack has none (written by an older version or another "
                         f"tool); {choose}")
    picked = [units.get(p[-1]) for p in known]
    if picked[0] is None:
        raise ModelError(f"{where}{model} has no network for {known[0]}; {choose}")
    if len(set(picked)) > 1:
        log.warning("%smosaic of %s: %s uses the network of %s (its first unit) for every pixel", where,
                    ", ".join(known), model, known[0])
    return picked[0]


@functools.lru_cache(maxsize=64)
def load_network(model: str | Path = DEFAULT_MODEL, variable_name: str = "LAI") -> Network:
    """Load one network.

    Parameters
    ----------
    model
        A bundled model name (see :data:`MODELS`) or a path to a SNAP auxdata folder, a
        LEAF/Earth Engine CSV or a ``.npz`` from ``convert-weights``.
    variable_name
        ``LAI``, ``FAPAR``, ``FCOVER``, ``CCC`` or ``CWC``.

    Raises
    ------
    ModelError
        Unknown model or variable, a variable the set lacks, or an unreadable file.
    """
    var = variable(variable_name)
    name = str(model)
    if name in UNIT_MODELS:
        return load_network(unit_model(name, None), var.name)  # raises: there is no stack to read a unit from
    if name in MODELS:
        kind, rel = MODELS[name]
        path = Path(str(_WEIGHTS / rel))
    else:
        path = Path(name).expanduser()
        if not path.exists():
            close = ", ".join(MODELS)
            raise ModelError(f"unknown model {name!r}: not a bundled model ({close}) nor an existing path")
        kind = "snap" if path.is_dir() else {".csv": "leaf", ".npz": "npz"}.get(path.suffix.lower(), "")
        if not kind:
            raise ModelError("model file must be a SNAP auxdata folder, a .csv or a .npz", path=path)
        error_suffix = next((s for s in _ERROR_SUFFIXES if path.name.lower().endswith(s.lower())), None)
        if error_suffix:  # its σ was written as the LAI product
            raise ModelError("is an error network (it estimates the uncertainty, not the variable): give its model, "
                             f"the CSV beside it without {error_suffix!r}, and --uncertainty", path=path)
        name = path.name
    if kind == "snap":
        return _load_snap(path, var, name)
    if kind == "npz":
        return _load_npz(path, var, name)
    return _leaf_network(leaf_row(parse_leaf_csv(path), var, path), var, name, path.name)


@functools.lru_cache(maxsize=64)
def load_error_network(model: str | Path = DEFAULT_MODEL, variable_name: str = "LAI") -> Network:
    """The LEAF error network of a model and variable: the same inputs as
    :func:`load_network`'s, its :meth:`~.sl2p.Network.forward` output the variable's
    uncertainty (its units; LEAF's ``errorLAI``…).

    Bundled: :data:`ERROR_MODELS`. A model CSV path: ``{stem}_Error.csv`` or
    ``{stem}_errors.csv`` beside it.

    Raises
    ------
    ModelError
        The model has no error network (SNAP sets have none), or not for this variable.
    """
    var = variable(variable_name)
    name = str(model)
    if name in ERROR_MODELS:
        path = Path(str(_WEIGHTS / ERROR_MODELS[name]))
    else:
        stem = Path(name).expanduser()
        found = [stem.with_name(stem.stem + s) for s in _ERROR_SUFFIXES if stem.suffix.lower() == ".csv"]
        path = next((p for p in found if p.exists()), None)
        if path is None:
            have = ", ".join(ERROR_MODELS)
            raise ModelError(f"model {name!r} has no error network for uncertainty (bundled ones: {have}; "
                             f"beside a CSV model: {{name}}_Error.csv)")
    est = load_network(model, var.name)
    net = _leaf_network(leaf_row(parse_leaf_csv(path), var, path), var, est.model, path.name)
    if net.inputs != est.inputs:
        raise ModelError(f"error network inputs {net.inputs} differ from the model's {est.inputs}", path=path)
    return net


def has_error_network(model: str | Path) -> bool:
    """Whether ``model`` has a LEAF error network (``--uncertainty``)."""
    if str(model) in ERROR_MODELS:
        return True
    path = Path(str(model))
    return path.suffix.lower() == ".csv" and any(
        path.with_name(path.stem + sfx).exists() for sfx in _ERROR_SUFFIXES)


def available_variables(model: str | Path) -> list[str]:
    """The variables a model provides."""
    out = []
    for v in VARIABLES:
        try:
            load_network(model, v)
        except ModelError:
            continue
        out.append(v)
    return out


def snap_test_cases(model: str = "snap-2.1", variable_name: str = "LAI") -> np.ndarray | None:
    """SNAP's own ``*_TestCases`` for a bundled SNAP set: rows of 11 inputs (SNAP order)
    then the expected output, or ``None`` where the set has none."""
    var = variable(variable_name)
    kind, rel = MODELS[model]
    f = Path(str(_WEIGHTS / rel)) / var.snap_dir / f"{var.snap_dir}_TestCases"
    return _read_matrix(f) if f.exists() else None
