"""The SL2P network (Weiss & Baret 2016): load coefficients, fold, run in float32.

An SL2P network normalises each input to [-1, 1] with a per-input affine map, has one
hidden layer of 5 ``tanh`` neurons and a linear output neuron whose value is
de-normalised by a second affine map. Both affine maps are folded into the weights
once, so prediction is ``v · tanh(W x + b) + c`` on band-major float32 blocks: no
per-pixel normalisation, no torch.

Quality flags follow ESA SNAP's Biophysical Processor (``BiophysicalAlgo``):

=====  =====  ==========================================================
bit    value  meaning
=====  =====  ==========================================================
0      1      input outside the definition domain (per-band min/max or grid)
1      2      output below the valid minimum but within tolerance: clamped
2      4      output above the valid maximum but within tolerance: clamped
3      8      output below minimum − tolerance
4      16     output above maximum + tolerance
=====  =====  ==========================================================

What becomes of an output beyond the valid range + tolerance (bits 3 and 4) is a choice,
``out_of_range`` (:data:`OUT_OF_RANGE`): ``"clamp"`` (default) to the valid range, like
the outputs within tolerance; ``"nodata"``; or ``"keep"`` the raw network output for
every pixel, clamped or not (as the reference implementation does). Above the maximum are
the densest canopies: setting them to nodata biases a field's peak-season mean low.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

FLAG_INPUT_OUT_OF_RANGE = 1
FLAG_CLAMPED_MIN = 2
FLAG_CLAMPED_MAX = 4
FLAG_TOO_LOW = 8
FLAG_TOO_HIGH = 16
FLAG_NODATA = 255  # flags-raster nodata: the input pixel itself was nodata
#: bit 5 (calibrated products only): the pixel lies outside the calibration's training
#: domain and keeps the uncalibrated value (:meth:`vercye_lai.model.calibration.Calibration.apply`)
FLAG_CALIBRATION_OUTSIDE = 32
#: bit 6: a veil of haze or thin cloud that the scene classification called clear: green
#: reflectance above :data:`HAZE_GREEN` and not below red (``predict --haze``; masked by default)
FLAG_HAZE = 64
#: a crop canopy's chlorophyll keeps its green reflectance low, bare soil and senescent canopies
#: are redder than green: a pixel brighter than this in green, and greener than red, is seen
#: through a veil or brightened by a missing offset (Strickhof 2022: 96–99.5 % of the pixels of the 06-20 and 06-23 scenes,
#: at most 0.6 % on the clear dates; see the Uncertainty page)
HAZE_GREEN = 0.12

FLAG_NAMES = {
    FLAG_INPUT_OUT_OF_RANGE: "INPUT_OUT_OF_RANGE",
    FLAG_CLAMPED_MIN: "OUTPUT_THRESHOLDED_TO_MIN_OUTPUT",
    FLAG_CLAMPED_MAX: "OUTPUT_THRESHOLDED_TO_MAX_OUTPUT",
    FLAG_TOO_LOW: "OUTPUT_TOO_LOW",
    FLAG_TOO_HIGH: "OUTPUT_TOO_HIGH",
}
#: every bit a product's flags may carry: SNAP's and ours (calibration, haze), for the
#: metadata of the cube and the catalogue
FLAG_MEANINGS = {**FLAG_NAMES, FLAG_CALIBRATION_OUTSIDE: "CALIBRATION_OUTSIDE_TRAINING_DOMAIN", FLAG_HAZE: "HAZE"}

#: pixels per forward pass: inputs, hidden layer and one scratch row block (21 × chunk
#: float32 = 5.5 MB) stay near the cache, and the ~40 ufunc calls of a pass, which hold the
#: GIL between their loops, are amortised enough for worker threads to scale (see
#: :data:`vercye_lai.predict.kernel.CHUNK_PIXELS`)
_CHUNK = 1 << 16

#: what :meth:`Network.predict` does with outputs beyond the valid range + tolerance
OUT_OF_RANGE = ("clamp", "nodata", "keep")


@dataclass(frozen=True, eq=False)
class Network:
    """One SL2P network for one variable, with inputs in stack order.

    Attributes
    ----------
    model, variable
        Names, e.g. ``"snap-3.0-s2a"`` and ``"LAI"``.
    inputs
        Input band names in the order of the input stack (``cosVZA, cosSZA, …``).
    in_scale, in_offset
        Normalisation ``x' = x · in_scale + in_offset`` (maps the training range to [-1, 1]).
    w1, b1
        Hidden layer weights (5 × n_inputs) and biases (5).
    w2, b2
        Output neuron weights (5) and bias.
    out_scale, out_offset
        De-normalisation ``value = y · out_scale + out_offset``.
    domain_min, domain_max
        Per-input definition domain (NaN = not checked), or ``None``.
    domain_grid
        Sorted codes of the allowed cells of the reflectance grid (SNAP's
        ``DefinitionDomain_Grid``), or ``None``; ``grid_inputs`` are the stack indices of
        the reflectance bands the grid is defined over.
    tolerance, out_min, out_max
        Valid output range and the tolerance for clamping (SNAP's ``ExtremeCases``).
    """

    model: str
    variable: str
    inputs: tuple[str, ...]
    in_scale: np.ndarray
    in_offset: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: float
    out_scale: float
    out_offset: float
    tolerance: float
    out_min: float
    out_max: float
    domain_min: np.ndarray | None = None
    domain_max: np.ndarray | None = None
    domain_grid: np.ndarray | None = None
    grid_inputs: tuple[int, ...] = ()
    unit: str = ""
    source: str = ""
    _folded: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        w1 = np.asarray(self.w1, dtype=np.float64)
        # fold the input normalisation into the hidden layer ...
        w = w1 * np.asarray(self.in_scale, dtype=np.float64)[None, :]
        b = w1 @ np.asarray(self.in_offset, dtype=np.float64) + np.asarray(self.b1, dtype=np.float64)
        # ... and the output de-normalisation into the output neuron
        v = np.asarray(self.w2, dtype=np.float64) * self.out_scale
        c = self.b2 * self.out_scale + self.out_offset
        object.__setattr__(
            self,
            "_folded",
            (w.astype(np.float32), b.astype(np.float32)[:, None], v.astype(np.float32), np.float32(c)),
        )

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    def for_stored_values(self, a: np.ndarray, b: np.ndarray) -> Network:
        """The same network taking stored values ``DN`` where the physical input is ``DN · a + b``.

        Folding the file's scale/offset into the weights (and the definition domain) saves
        two passes over every block: the network then reads ``DN`` converted to float32.
        """
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if np.all(a == 1.0) and np.all(b == 0.0):
            return self
        if np.any(a <= 0):
            raise ValueError("input scales must be positive")
        scale = np.asarray(self.in_scale, dtype=np.float64)
        changes = dict(in_scale=scale * a, in_offset=scale * b + np.asarray(self.in_offset, dtype=np.float64))
        if self.domain_min is not None:
            changes.update(domain_min=(self.domain_min - b) / a, domain_max=(self.domain_max - b) / a)
        return dataclasses.replace(self, **changes)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Raw network output for ``x`` of shape ``(n_inputs, n_pixels)`` (float32).

        No range handling: see :meth:`predict` for the clamped/flagged product.
        """
        w, b, v, c = self._folded
        x = np.asarray(x, dtype=np.float32)
        n = x.shape[1]
        out = np.empty(n, dtype=np.float32)
        for s in range(0, n, _CHUNK):
            h = ordered_matmul(w, x[:, s : s + _CHUNK])
            h += b
            np.tanh(h, out=h)
            ordered_matmul(v[None, :], h, out=out[None, s : s + _CHUNK])
        out += c
        return out

    def hidden(self, x: np.ndarray) -> np.ndarray:
        """The hidden layer's activations ``tanh(W x + b)`` for ``x`` of shape
        ``(n_inputs, n_pixels)``: shape ``(5, n_pixels)``, float64 (the output is
        ``v · hidden + c``, see :attr:`output_layer`; a calibration may re-fit it)."""
        w, b, _, _ = self._folded
        return np.tanh(ordered_matmul(w.astype(np.float64), np.asarray(x, np.float64)) + b.astype(np.float64))

    @property
    def output_layer(self) -> tuple[np.ndarray, float]:
        """The folded output neuron: weights ``v`` (5) and bias ``c`` (LAI units)."""
        _, _, v, c = self._folded
        return v.astype(np.float64), float(c)

    def input_out_of_range(self, x: np.ndarray) -> np.ndarray:
        """Boolean per pixel: the input lies outside the network's definition domain."""
        if self.domain_min is None:
            bad = np.zeros(x.shape[1], dtype=bool)
        else:
            # NaN bounds (unchecked inputs) compare False; the (bands × chunk) masks of a
            # forward-pass chunk stay in the cache
            lo = self.domain_min.astype(np.float32)[:, None]
            hi = self.domain_max.astype(np.float32)[:, None]
            out = x < lo
            out |= x > hi
            bad = np.logical_or.reduce(out, axis=0)
        if self.domain_grid is not None and self.grid_inputs:
            ok = ~bad
            code = np.zeros(int(ok.sum()), dtype=np.int64)
            for k, i in enumerate(self.grid_inputs):
                lo, hi = self.domain_min[i], self.domain_max[i]
                # SNAP: cell = floor(10 (x - min) / (max - min) + 1), cells 1..11 per band
                cell = np.floor(10.0 * (x[i][ok] - lo) / (hi - lo) + 1.0).astype(np.int64)
                code += cell * (12**k)
            pos = np.searchsorted(self.domain_grid, code)
            pos[pos >= self.domain_grid.size] = 0
            bad[np.flatnonzero(ok)[self.domain_grid[pos] != code]] = True
        return bad

    def predict(self, x: np.ndarray, *, flags: bool = True,
                out_of_range: str = "clamp") -> tuple[np.ndarray, np.ndarray | None]:
        """Predict the variable with SNAP's output-range handling.

        Parameters
        ----------
        x
            ``(n_inputs, n_pixels)`` inputs in stack order: cosines and surface
            reflectance factors (0–1). Must be free of NaN (mask nodata first).
        flags
            Also compute the quality bit mask (costs the definition-domain check).
        out_of_range
            Outputs beyond the valid range + tolerance: ``"clamp"`` to the range,
            ``"nodata"`` (NaN), or ``"keep"`` the raw output (then nothing is clamped).

        Returns
        -------
        values
            float32 in the valid range (``"clamp"``), NaN beyond range + tolerance
            (``"nodata"``), or as the network gives them (``"keep"``).
        flags
            uint8 bit mask (see module docstring), or ``None``.
        """
        if out_of_range not in OUT_OF_RANGE:
            raise ValueError(f"out_of_range must be one of {OUT_OF_RANGE}, not {out_of_range!r}")
        y = self.forward(x)
        tol = abs(self.tolerance)  # SNAP 2.1 files store some tolerances with a minus sign
        lo, hi = self.out_min, self.out_max
        if not flags:
            if out_of_range == "nodata":
                bad = (y < lo - tol) | (y > hi + tol)
                np.clip(y, lo, hi, out=y)
                y[bad] = np.nan
            elif out_of_range == "clamp":
                np.clip(y, lo, hi, out=y)
            return y, None
        # bool → uint8 is 0/1: bit 0 is FLAG_INPUT_OUT_OF_RANGE
        f = self.input_out_of_range(x).view(np.uint8)
        below, above = y < lo, y > hi
        if below.any():
            too_low = y < lo - tol
            f[below & ~too_low] |= FLAG_CLAMPED_MIN
            f[too_low] |= FLAG_TOO_LOW
        if above.any():
            too_high = y > hi + tol
            f[above & ~too_high] |= FLAG_CLAMPED_MAX
            f[too_high] |= FLAG_TOO_HIGH
        if out_of_range != "keep":
            np.clip(y, lo, hi, out=y)
        if out_of_range == "nodata":
            y[f >= FLAG_TOO_LOW] = np.nan
        return y, f

    def describe(self) -> dict:
        """Metadata written beside every product (GeoTIFF tags)."""
        return {
            "VERCYE_MODEL": self.model,
            "VERCYE_VARIABLE": self.variable,
            "VERCYE_MODEL_INPUTS": ",".join(self.inputs),
            "VERCYE_VALID_RANGE": f"{self.out_min},{self.out_max}",
            "VERCYE_MODEL_SOURCE": self.source,
        }


def ordered_matmul(w: np.ndarray, x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """``w @ x`` for ``w`` of shape ``(m, k)`` and ``x`` of shape ``(k, n)``, summed over
    ``k`` in a fixed order (``k = 0, 1, …``), in the dtype of ``x``.

    A BLAS kernel picks its summation order by CPU, by matrix width and by thread count, so
    ``w @ x`` for one pixel may differ by an ulp between a 1024² block and a table of 61 rows
    (OpenBLAS' AVX2 and AVX-512 sgemm kernels do). Elementwise multiplication and addition
    are exactly rounded (IEEE 754; numpy's ufuncs never fuse them), so this sum gives every
    column the same bits whatever array, block or worker it is computed in, on every CPU.
    It costs ~2× the BLAS call (~10 ms per megapixel for the 5 × 11 SL2P layer).
    """
    w = np.asarray(w, dtype=x.dtype)
    shape = (w.shape[0], x.shape[1])
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    tmp = np.empty(shape, dtype=x.dtype)
    np.multiply(w[:, :1], x[:1], out=out)
    for i in range(1, w.shape[1]):
        np.multiply(w[:, i : i + 1], x[i : i + 1], out=tmp)
        out += tmp
    return out


def grid_codes(grid_rows: np.ndarray) -> np.ndarray:
    """Encode rows of 1-based grid cells (one column per band) as sorted int64 codes."""
    rows = np.asarray(grid_rows, dtype=np.int64)
    weights = 12 ** np.arange(rows.shape[1], dtype=np.int64)
    return np.unique(rows @ weights)


