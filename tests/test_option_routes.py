"""The routes that must agree, across combinations of predict's options: predict vs parts +
assemble (Dask's route), and predict-stac vs stack-stac + predict. One option combination
at a time is what the other tests check; these sweeps found options that broke only together
(predict-stac's uncertainty left all nodata without flags, a lone product failing on a cube)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from conftest import QVIDJA

from vercye_lai.model.calibration import Calibration
from vercye_lai.predict import PredictOptions, predict_file
from vercye_lai.predict.products import product_paths
from vercye_lai.predict.split import assemble_parts, predict_windows_to_part, stack_windows, window_groups

INPUTS = ("cosVZA", "cosSZA", "cosRAA", "B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12")
# rows that together take every value of each option, and most pairs of them
COMBINATIONS = [
    # flags, uncertainty, dtype, cog, variables, out_of_range, haze, calibrated
    (True, True, "int16", True, ("LAI",), "clamp", "mask", True),
    (False, False, "float32", True, ("FAPAR", "LAI"), "nodata", "off", False),
    (False, True, "lerc", False, ("LAI",), "keep", "mask", False),
    (True, False, "lerc", True, ("FAPAR", "LAI"), "clamp", "off", True),
    (True, True, "float32", False, ("FAPAR", "LAI"), "keep", "flag", True),
    (False, True, "int16", False, ("FAPAR", "LAI"), "clamp", "flag", False),
    (True, False, "int16", True, ("LAI",), "nodata", "mask", False),
    (False, False, "lerc", True, ("LAI",), "nodata", "flag", True),
]


@pytest.fixture(scope="module")
def tiled_stack(tmp_path_factory):
    """The qvidja stack (real spectra) tiled to 231 × 253 px in 128-px blocks, a nodata corner."""
    src = QVIDJA / "qvidja_20m_2023-06-11.tif"
    with rasterio.open(src) as ds:
        data, profile, descriptions = ds.read(), ds.profile, ds.descriptions
        scales, offsets = ds.scales, ds.offsets
    data = np.tile(data, (1, 21, 23))
    data[:, :30, :40] = -32768
    out = tmp_path_factory.mktemp("routes") / "qvidja_20m_2023-06-11.tif"
    profile.update(height=data.shape[1], width=data.shape[2], tiled=True, blockxsize=128, blockysize=128)
    with rasterio.open(out, "w", **profile) as ds:
        ds.write(data)
        ds.descriptions, ds.scales, ds.offsets = descriptions, scales, offsets
    calibration = Calibration("refit-doy", 0.01, (0.9, 0.5, -0.3, -4.0, -3.0, -0.1, 1.5, 0.05), "sl2p",
                              inputs=INPUTS, sigma=(0.2, 0.1, 0.3)).write(out.parent / "cal.json")
    return out, calibration


@pytest.mark.parametrize("flags, uncertainty, dtype, cog, variables, out_of_range, haze, calibrated", COMBINATIONS)
def test_parts_route_equals_predict(tiled_stack, tmp_path, flags, uncertainty, dtype, cog, variables, out_of_range,
                                    haze, calibrated):
    src, calibration = tiled_stack
    options = PredictOptions(flags=flags, uncertainty=uncertainty, dtype=dtype, cog=cog, variables=variables,
                             out_of_range=out_of_range, haze=haze, block_size=64, workers=2,
                             calibration=calibration if calibrated else None)
    whole = predict_file(src, product_paths(src, tmp_path / "whole", variables), options=options)
    parts = []
    for j, windows in enumerate(window_groups(stack_windows(src, block_size=64), 64 * 64 * 5)):
        parts.append(tmp_path / f"part{j}.npz")
        predict_windows_to_part(src, parts[-1], windows, options=options)
    assert len(parts) > 1
    split = assemble_parts(src, parts, product_paths(src, tmp_path / "split", variables), options=options)
    names = sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "split").iterdir())
    assert len(names) == len(variables) * (1 + flags + uncertainty) and split.n_valid == whole.n_valid
    for name in names:
        with rasterio.open(tmp_path / "whole" / name) as a, rasterio.open(tmp_path / "split" / name) as b:
            x, y = a.read(1), b.read(1)
            assert a.tags() == b.tags()
            assert {**a.profile, "nodata": str(a.nodata)} == {**b.profile, "nodata": str(b.nodata)}  # NaN != NaN
            np.testing.assert_array_equal(x, y)  # the same blocks through the same writer: to the bit
            valid = np.isfinite(x) if x.dtype.kind == "f" else x != a.nodata
            assert valid.mean() > 0.2, name  # never a product left empty (the input: 49 % valid)
