"""The SL2P network: SNAP's own test cases, folding against a plain reference, flags."""

from __future__ import annotations

import csv
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from vercye_lai.errors import DependencyError, ModelError
from vercye_lai.model import MODELS, Network, load_network
from vercye_lai.model.convert import convert_weights
from vercye_lai.model.registry import _WEIGHTS, SNAP_INPUT_ORDER, snap_test_cases
from vercye_lai.model.registry import MODELS as REGISTRY
from vercye_lai.model.sl2p import (
    FLAG_CLAMPED_MAX,
    FLAG_CLAMPED_MIN,
    FLAG_INPUT_OUT_OF_RANGE,
    FLAG_TOO_HIGH,
    FLAG_TOO_LOW,
    ordered_matmul,
)
from vercye_lai.stack import S2_BANDS_10M, S2_BANDS_20M

WEIGHTS = Path(str(_WEIGHTS))
VARS = ("LAI", "FAPAR", "FCOVER", "CCC", "CWC")
SNAP_DIRS = {"LAI": "LAI", "FAPAR": "FAPAR", "FCOVER": "FCOVER", "CCC": "LAI_Cab", "CWC": "LAI_Cw"}
TO_STACK = [SNAP_INPUT_ORDER.index(b) for b in S2_BANDS_20M]


def snap_tolerance(expected: np.ndarray) -> np.ndarray:
    """SNAP's own unit-test tolerance: max(0.01, 0.1 % of expected)."""
    return np.maximum(0.01, 1e-3 * np.abs(expected))


@pytest.mark.parametrize("var", ["LAI", "FAPAR", "CCC"])
def test_snap_21_test_cases(var):
    cases = snap_test_cases("snap-2.1", var)
    cases = cases[~np.isnan(cases[:, 11])]  # NaN rows carry no expected value
    assert len(cases) >= 25
    x = cases[:, :11][:, TO_STACK].T
    got, _ = load_network("snap-2.1", var).predict(x)
    err = np.abs(got - cases[:, 11])
    assert np.all(err <= snap_tolerance(cases[:, 11])), err.max()


def reference_snap(folder: Path, var: str, x_snap_order: np.ndarray) -> np.ndarray:
    """SNAP's BiophysicalAlgo written out plainly in float64 (no folding, SNAP input order)."""
    d = folder / SNAP_DIRS[var]

    def m(name):
        return np.atleast_2d(np.loadtxt(d / f"{SNAP_DIRS[var]}_{name}", delimiter=","))

    norm = m("Normalisation")
    xn = 2 * (x_snap_order - norm[:, 0]) / (norm[:, 1] - norm[:, 0]) - 1
    h = np.tanh(xn @ m("Weights_Layer1_Neurons").T + m("Weights_Layer1_Bias").ravel())
    y = h @ m("Weights_Layer2_Neurons").ravel() + m("Weights_Layer2_Bias").ravel()[0]
    lo, hi = m("Denormalisation")[0]
    return 0.5 * (y + 1) * (hi - lo) + lo


def reference_leaf(csv_path: Path, row: int, x: np.ndarray) -> np.ndarray:
    with open(csv_path) as fh:
        values = [float(v) for v in list(csv.reader(fh))[1 + row]]
    blocks, i = [], 5
    while i < len(values):
        n = int(values[i])
        blocks.append(np.array(values[i + 1 : i + 1 + n]))
        i += n + 1
    scale, offset, w1, b1, w2, b2, ow, ob = blocks
    h = np.tanh(((x * scale + offset) @ w1.reshape(5, -1).T) + b1)
    return (h @ w2 + b2[0] - ob[0]) / ow[0]


def random_inputs(n: int, inputs, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cols = []
    for b in inputs:
        if b in ("cosVZA",):
            cols.append(rng.uniform(0.985, 1.0, n))
        elif b == "cosSZA":
            cols.append(rng.uniform(0.4, 0.95, n))
        elif b == "cosRAA":
            cols.append(rng.uniform(-1, 1, n))
        else:
            cols.append(rng.uniform(0.01, 0.45, n))
    return np.array(cols)  # (n_inputs, n)


@pytest.mark.parametrize("model", ["snap-3.0-s2a", "snap-3.0-s2b", "snap-2.1"])
@pytest.mark.parametrize("var", VARS)
def test_snap_sets_match_plain_reference(model, var):
    """Folding + reordering in float32 equals the unfolded float64 network of every set."""
    net = load_network(model, var)
    x = random_inputs(5000, S2_BANDS_20M)
    expected = reference_snap(WEIGHTS / REGISTRY[model][1], var, x[np.argsort(TO_STACK)].T)
    got = net.forward(x.astype(np.float32))
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, atol=2e-5 * scale, rtol=1e-4)


@pytest.mark.parametrize("model,inputs", [("sl2p", S2_BANDS_20M), ("sl2p-10m", S2_BANDS_10M)])
@pytest.mark.parametrize("row,var", list(enumerate(VARS)))
def test_leaf_sets_match_plain_reference(model, inputs, row, var):
    net = load_network(model, var)
    assert net.inputs == inputs
    x = random_inputs(5000, inputs, seed=row)
    expected = reference_leaf(WEIGHTS / REGISTRY[model][1], row, x.T)
    got = net.forward(x.astype(np.float32))
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, atol=2e-5 * scale, rtol=1e-4)


def tiny_network(**kw) -> Network:
    """value = tanh(x0): a network whose output we can place anywhere in (-1, 1)."""
    w1 = np.zeros((5, 11))
    w1[0, 0] = 1.0
    args = dict(
        model="tiny", variable="LAI", inputs=S2_BANDS_20M, in_scale=np.ones(11), in_offset=np.zeros(11),
        w1=w1, b1=np.zeros(5), w2=np.array([1.0, 0, 0, 0, 0]), b2=0.0, out_scale=1.0, out_offset=0.0,
        tolerance=0.1, out_min=-0.5, out_max=0.5,
    )
    args.update(kw)
    return Network(**args)


@pytest.mark.parametrize("mode,expected", [
    ("clamp", [-0.5, -0.5, 0.0, 0.3, 0.5, 0.5]),  # the default: the densest canopies kept, at the max
    ("nodata", [np.nan, -0.5, 0.0, 0.3, 0.5, np.nan]),
    ("keep", [-0.7, -0.55, 0.0, 0.3, 0.55, 0.7]),  # the raw output, as the reference keeps it
])
@pytest.mark.parametrize("flags", [True, False])
def test_output_range_within_tolerance_clamped_and_beyond_as_chosen(mode, expected, flags):
    target = np.array([-0.7, -0.55, 0.0, 0.3, 0.55, 0.7])
    x = np.zeros((11, target.size))
    x[0] = np.arctanh(target)
    y, f = tiny_network().predict(x, out_of_range=mode, flags=flags)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    if flags:  # the flags tell the same whatever the choice
        assert f.tolist() == [FLAG_TOO_LOW, FLAG_CLAMPED_MIN, 0, 0, FLAG_CLAMPED_MAX, FLAG_TOO_HIGH]
    else:
        assert f is None


def test_negative_tolerance_in_snap_21_files_is_a_magnitude():
    # SNAP 2.1 LAI_ExtremeCases stores tolerance -0.2; expected LAI 0.094 is a test case
    net = load_network("snap-2.1", "LAI")
    assert net.tolerance < 0
    y, f = tiny_network(tolerance=-0.1).predict(np.vstack([np.full((1, 1), np.arctanh(-0.55)), np.zeros((10, 1))]))
    assert y[0] == pytest.approx(-0.5) and f[0] == FLAG_CLAMPED_MIN


def test_definition_domain_grid_against_brute_force():
    net = load_network("snap-2.1", "LAI")
    d = WEIGHTS / "snap/2_1/LAI"
    minmax = np.loadtxt(d / "LAI_DefinitionDomain_MinMax", delimiter=",")
    rows = np.loadtxt(d / "LAI_DefinitionDomain_Grid", delimiter=",").astype(int)
    grid = {tuple(r) for r in rows}
    rng = np.random.default_rng(3)
    n = 3000
    refl = rng.uniform(minmax[0], minmax[1], (n, 8))  # inside per-band min/max: rarely in the grid
    # half of the points inside randomly chosen allowed cells
    cells = rows[rng.integers(0, len(rows), n // 2)] - 1 + rng.uniform(0.05, 0.95, (n // 2, 8))
    refl[n // 2 :] = minmax[0] + cells / 10 * (minmax[1] - minmax[0])
    refl[:50, 2] = minmax[1, 2] + 0.05  # B5 above the band maximum
    cells = np.floor(10 * (refl - minmax[0]) / (minmax[1] - minmax[0]) + 1).astype(int)
    expected = np.array([tuple(c) not in grid for c in cells])
    expected[:50] = True
    x = np.vstack([np.full((1, n), 0.99), np.full((1, n), 0.8), np.zeros((1, n)), refl.T])
    _, f = net.predict(x)
    got = (f & FLAG_INPUT_OUT_OF_RANGE).astype(bool)
    assert expected[50:].any() and (~expected[50:]).any()  # both kinds present
    np.testing.assert_array_equal(got, expected)


def test_leaf_domain_is_the_training_range():
    net = load_network("sl2p", "LAI")
    x = random_inputs(10, S2_BANDS_20M)
    x[S2_BANDS_20M.index("cosVZA"), :5] = 0.5  # view zenith 60 deg: far outside training
    _, f = net.predict(x)
    assert np.all(f[:5] & FLAG_INPUT_OUT_OF_RANGE)


@pytest.mark.parametrize("bad", [dict(model="snap-9"), dict(variable_name="NDVI")])
def test_unknown_model_or_variable(bad):
    with pytest.raises(ModelError) as exc:
        load_network(**{"model": "sl2p", "variable_name": "LAI", **bad})
    assert isinstance(exc.value, ValueError)
    assert "snap-9" in str(exc.value) or "NDVI" in str(exc.value)


def test_model_from_paths(tmp_path):
    snap = load_network(str(WEIGHTS / "snap/3_0/S2B"), "FAPAR")
    bundled = load_network("snap-3.0-s2b", "FAPAR")
    x = random_inputs(100, S2_BANDS_20M).astype(np.float32)
    np.testing.assert_array_equal(snap.forward(x), bundled.forward(x))
    csv_net = load_network(str(WEIGHTS / REGISTRY["sl2p"][1]), "LAI")
    np.testing.assert_array_equal(csv_net.forward(x), load_network("sl2p", "LAI").forward(x))
    (tmp_path / "junk.csv").write_text("a,b\n1,2,x\n")
    with pytest.raises(ModelError, match="junk.csv"):
        load_network(str(tmp_path / "junk.csv"), "LAI")


def test_convert_weights_npz_roundtrip(tmp_path):
    src = WEIGHTS / REGISTRY["sl2p"][1]
    out = convert_weights(src, "FCOVER", out=tmp_path / "fcover.npz")
    x = random_inputs(200, S2_BANDS_20M).astype(np.float32)
    np.testing.assert_array_equal(
        load_network(str(out), "FCOVER").forward(x), load_network("sl2p", "FCOVER").forward(x)
    )
    with pytest.raises(ModelError, match="FCOVER"):
        load_network(str(out), "LAI")


def test_convert_weights_pth_needs_torch(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(DependencyError, match="torch"):
        convert_weights(WEIGHTS / REGISTRY["sl2p"][1], "LAI", fmt="pth", out=tmp_path / "x.pth")
    assert not list(tmp_path.iterdir())


def test_convert_weights_pth_with_torch(tmp_path, monkeypatch):
    """The .pth payload, checked with a stand-in torch module that records what is saved."""
    saved = {}
    fake = types.SimpleNamespace(
        float32="float32",
        tensor=lambda v, dtype=None: ("tensor", np.asarray(v, dtype=np.float32)),
        save=lambda obj, fh: (saved.update(obj), fh.write(b"PTH")),
    )
    monkeypatch.setitem(sys.modules, "torch", fake)
    out = convert_weights(WEIGHTS / REGISTRY["sl2p"][1], "CCC", fmt="pth", out=tmp_path / "ccc.pth")
    assert out.read_bytes() == b"PTH"
    assert saved["variable"] == "CCC"
    assert saved["state_dict"]["w1"][1].shape == (5, 11)


def test_all_bundled_models_listed():
    assert set(MODELS) == {"sl2p", "sl2p-10m", "sl2p-l8", "snap-3.0", "snap-3.0-s2a", "snap-3.0-s2b", "snap-2.1"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ordered_matmul_gives_a_column_the_same_bits_in_any_array(dtype):
    """The property predict and predict-table rest on: a pixel's sum does not depend on the
    width of the array it sits in, its position or its strides (a BLAS kernel's does)."""
    rng = np.random.default_rng(7)
    w = rng.normal(size=(5, 11)).astype(dtype)
    x = rng.normal(size=(11, 20_003)).astype(dtype)
    whole = ordered_matmul(w, x)
    assert whole.dtype == dtype
    np.testing.assert_allclose(whole, w.astype(float) @ x.astype(float), rtol=0,
                               atol=64 * np.finfo(dtype).eps * np.abs(w).sum())
    for a, b in [(0, 1), (5, 66), (8190, 8193), (19_999, 20_003)]:
        assert np.array_equal(ordered_matmul(w, x[:, a:b].copy()), whole[:, a:b])
    table = np.asfortranarray(x[:, 100:161])  # rows of a table: column-major
    assert np.array_equal(ordered_matmul(w, table), whole[:, 100:161])


def test_network_output_is_independent_of_the_block():
    net = load_network("sl2p", "LAI")
    rng = np.random.default_rng(3)
    x = rng.uniform(0.05, 0.9, (net.n_inputs, 40_000)).astype(np.float32)  # cosines, reflectances
    whole = net.forward(x)
    for a, b in [(0, 61), (16_380, 16_390), (39_999, 40_000)]:
        assert np.array_equal(net.forward(x[:, a:b]), whole[a:b])
