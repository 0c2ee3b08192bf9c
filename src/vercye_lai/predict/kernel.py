"""The block kernel: SL2P networks on one block of stored values (no I/O).

Memory is bounded by the block: the valid pixels are converted to float32 a chunk at a
time (:data:`CHUNK_PIXELS`); the network itself is :mod:`vercye_lai.model.sl2p`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from rasterio.windows import Window

from vercye_lai.model import FLAG_NODATA, Network
from vercye_lai.model.sl2p import FLAG_HAZE, HAZE_GREEN
from vercye_lai.stack import invalid_mask

#: what ``predict --haze`` does with a pixel its test finds hazy (:class:`HazeTest`)
HAZE_CHOICES = ("mask", "flag", "off")


@dataclass
class BlockResult:
    window: Window
    values: list[np.ndarray]  # one (rows, cols) array per network: float32, or int16 once encoded (Storage)
    flags: list[np.ndarray | None]
    n_valid: int
    uncertainty: list[np.ndarray | None] = field(default_factory=list)  # per network, or empty


@dataclass(frozen=True)
class HazeTest:
    """The haze test on stored values: physical green and red reflectance (``stored × a + b``
    of inputs ``B3`` and ``B4``), hazy where green > :data:`HAZE_GREEN` and green ≥ red.
    ``mask``: hazy pixels become nodata (flag bit 64 says why), else they are only flagged."""

    green: int
    red: int
    a: tuple[float, float]
    b: tuple[float, float]
    mask: bool = True

    @classmethod
    def of(cls, inputs: Sequence[str], a: Sequence[float], b: Sequence[float], mode: str) -> HazeTest | None:
        """The test for a network's ``inputs`` and their scaling; ``None`` when ``mode`` is
        ``off`` or the inputs have no green and red band."""
        if mode == "off" or "B3" not in inputs or "B4" not in inputs:
            return None
        g, r = list(inputs).index("B3"), list(inputs).index("B4")
        return cls(g, r, (float(a[g]), float(a[r])), (float(b[g]), float(b[r])), mode == "mask")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        green = x[self.green] * self.a[0] + self.b[0]
        red = x[self.red] * self.a[1] + self.b[1]
        return (green > HAZE_GREEN) & (green >= red)


#: pixels converted to float32 at a time: bounds the per-block working memory (11 bands:
#: 2.9 MB). Each chunk costs ~60 numpy calls that hold the GIL between their loops: at
#: 8192 pixels two worker threads ran 1.20x one on the kernel (the GIL, not the cores,
#: was the limit), at 65536 1.85x, and one thread 18 % faster too (measured, 2 cores)
CHUNK_PIXELS = 1 << 16


def predict_block(
    data: np.ndarray,
    networks: Sequence[Network],
    nodatavals: Sequence[float | None],
    *,
    flags: bool = True,
    out_of_range: str = "clamp",
    errors: Sequence[Network] = (),
    haze: HazeTest | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray | None], int, list[np.ndarray]]:
    """Run the networks on one ``(bands, rows, cols)`` block of stored values.

    ``networks`` (and their ``errors`` networks, one each or none) take the stored values
    directly (see :meth:`Network.for_stored_values`). Returns float32 products (NaN =
    nodata), uint8 flag arrays (255 = input nodata) or ``None``, the number of valid input
    pixels, and the float32 uncertainty of each product (≥ 0, NaN = nodata) when
    ``errors`` are given. ``haze``: pixels it finds hazy get flag bit 64 (and, when it
    masks, NaN values).
    """
    _, rows, cols = data.shape
    n = rows * cols
    flat = data.reshape(data.shape[0], -1)
    invalid = invalid_mask(data, nodatavals).ravel()
    n_valid = n - int(np.count_nonzero(invalid))
    values = [np.empty(n, dtype=np.float32) for _ in networks]
    qa = [np.empty(n, dtype=np.uint8) if flags else None for _ in networks]
    unc = [np.empty(n, dtype=np.float32) for _ in errors]
    # Mostly valid blocks: run on every pixel in contiguous chunks and blank the invalid
    # ones afterwards (cheaper than gathering); sparse blocks: gather the valid pixels.
    sparse = n_valid < n // 2
    idx = np.flatnonzero(~invalid) if sparse else None
    if sparse:
        for v in (*values, *unc):
            v.fill(np.nan)
        for f in qa:
            if f is not None:
                f.fill(FLAG_NODATA)
    total = n_valid if sparse else n
    for s in range(0, total, CHUNK_PIXELS):
        sel = idx[s : s + CHUNK_PIXELS] if sparse else slice(s, s + CHUNK_PIXELS)
        x = flat[:, sel].astype(np.float32)
        for k, net in enumerate(networks):
            y, f = net.predict(x, flags=flags, out_of_range=out_of_range)
            values[k][sel] = y
            if f is not None:
                qa[k][sel] = f
        for k, err in enumerate(errors):
            unc[k][sel] = np.maximum(err.forward(x), 0.0)  # an uncertainty is never negative
        if haze is not None:
            hazy = haze(x)
            if hazy.any():
                at = (idx[s : s + CHUNK_PIXELS] if sparse else np.arange(s, min(s + CHUNK_PIXELS, n)))[hazy]
                for f in qa:
                    if f is not None:
                        f[at] |= FLAG_HAZE
                if haze.mask:
                    for v in (*values, *unc):
                        v[at] = np.nan
    if not sparse and n_valid < n:
        for v in (*values, *unc):
            v[invalid] = np.nan
        for f in qa:
            if f is not None:
                f[invalid] = FLAG_NODATA
    shape = (rows, cols)
    return ([v.reshape(shape) for v in values], [None if f is None else f.reshape(shape) for f in qa], n_valid,
            [u.reshape(shape) for u in unc])
