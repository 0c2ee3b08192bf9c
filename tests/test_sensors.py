"""Landsat 8/9 and HLS: the LEAF Landsat 8 network, picked by its variable id, on real pixels."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
from conftest import DATA

from vercye_lai.model import load_network
from vercye_lai.model.registry import MODELS, _WEIGHTS
from vercye_lai.predict import PredictOptions
from vercye_lai.table import predict_table

KANSAS = DATA / "kansas_hls"


def hls_rows() -> pd.DataFrame:
    df = pd.read_csv(KANSAS / "Surface_refelctance_HLSL30_v002.csv", index_col=0)
    return df.drop(columns=["cosRAA"])  # wrong in the file (see NOTICE.md): from SAA and VAA


def float64_leaf(path, variable_id: int, x: np.ndarray) -> np.ndarray:
    """A plain float64 LEAF network, written from the CSV layout alone (not via Network)."""
    with open(path, newline="") as fh:
        rows = [[float(v) for v in r] for r in list(csv.reader(fh))[1:] if r]
    row = next(r for r in rows if int(r[2]) == variable_id)
    blocks, i = [], 5
    while i < len(row):
        n = int(row[i])
        blocks.append(np.array(row[i + 1 : i + 1 + n]))
        i += 1 + n
    scale, offset, w1, b1, w2, b2, out_w, out_b = blocks
    xn = x * scale[:, None] + offset[:, None]
    h = np.tanh(w1.reshape(-1, len(scale)) @ xn + b1[:, None])
    y = w2 @ h + b2[0]
    return (y - out_b[0]) / out_w[0]


def test_the_l8_network_is_picked_by_variable_id_not_row():
    path = _WEIGHTS / MODELS["sl2p-l8"][1]
    with open(path, newline="") as fh:
        first = next(r for r in list(csv.reader(fh))[1:] if r)
    assert int(float(first[2])) == 7  # the file's first data row is DASF
    net = load_network("sl2p-l8", "LAI")
    assert net.inputs == ("cosVZA", "cosSZA", "cosRAA", "B3", "B4", "B5", "B6", "B7")
    out = predict_table(hls_rows(), predict=PredictOptions(model="sl2p-l8"))
    assert 1.0 < out["LAI"].median() < 3.0  # by position ("DASF as LAI") the median is ~0.035


def test_predict_table_equals_a_float64_network_on_hls_l30_rows():
    df = hls_rows()
    out = predict_table(df, predict=PredictOptions(model="sl2p-l8", out_of_range="keep",
                                                   variables=("LAI", "FAPAR")))
    x = np.array([np.cos(np.radians(df["VZA"])), np.cos(np.radians(df["SZA"])),
                  np.cos(np.radians(df["SAA"] - df["VAA"])), df["B3"], df["B4"], df["B5"], df["B6"], df["B7"]])
    x[:2] = df[["cosVZA", "cosSZA"]].to_numpy().T  # the file's own (correct) cosines, as predict-table takes them
    path = _WEIGHTS / MODELS["sl2p-l8"][1]
    np.testing.assert_allclose(out["LAI"], float64_leaf(path, 1, x), atol=1e-4)
    np.testing.assert_allclose(out["FAPAR"], float64_leaf(path, 2, x), atol=1e-4)


def test_a_sentinel2_table_with_the_landsat_network_is_refused():
    s2 = pd.read_csv(KANSAS / "Surface_refelctance_S2_L2A.csv", index_col=0).head(5)
    from vercye_lai.errors import InputError

    with pytest.raises(InputError, match="Sentinel-2"):
        predict_table(s2, predict=PredictOptions(model="sl2p-l8"))
