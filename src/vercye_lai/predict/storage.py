"""How a product's values are stored: float32, int16 with a declared scale, or float32 with
LERC's bounded error (``predict --dtype``).

A Poltava season at 20 m is ~70 Mpx × 40 dates; the products are most of a user's disk.
``int16`` stores ``round(value / scale)`` with the scale declared in the GeoTIFF (GDAL's
``scale``/``offset``, which every reader of this project applies: :func:`vercye_lai.io.decode`),
nodata −32768, ZSTD with horizontal differencing — the reference's int16 LAI (scale 0.001).
``lerc`` keeps float32 and lets LERC drop precision below half that step. The step is a
decimal power chosen so the variable's valid range (plus 10 %) fits in int16: LAI 0.001 m² m⁻²,
FAPAR/FCOVER 0.0001, CCC 0.1 µg cm⁻², CWC 0.0001 g cm⁻²; its uncertainty raster shares it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vercye_lai.model import Network

#: ``predict --dtype`` choices
DTYPES = ("float32", "int16", "lerc")
INT16_NODATA = -32768


def storage_step(network: Network) -> float:
    """The int16 step of ``network``'s variable: the smallest decimal power at which its valid
    maximum plus 10 % fits in int16."""
    need = max(abs(float(network.out_max)), abs(float(network.out_min)), 1e-6) * 1.1 / 32767
    return 10.0 ** math.ceil(math.log10(need))


@dataclass(frozen=True)
class Storage:
    """The storage of one product: its GeoTIFF dtype, nodata, declared scale (``value =
    stored × scale``) and LERC's maximum error (0: lossless)."""

    kind: str = "float32"
    scale: float = 1.0
    max_error: float = 0.0

    @classmethod
    def of(cls, kind: str, network: Network) -> Storage:
        step = storage_step(network)
        if kind == "int16":
            return cls("int16", step)
        if kind == "lerc":
            return cls("lerc", 1.0, step / 2)
        return cls()

    @property
    def dtype(self) -> str:
        return "int16" if self.kind == "int16" else "float32"

    @property
    def nodata(self) -> float:
        return INT16_NODATA if self.kind == "int16" else float("nan")

    @property
    def tag(self) -> str:
        """The ``VERCYE_STORAGE`` tag (a product of another storage is made again)."""
        if self.kind == "int16":
            return f"int16 scale {self.scale:g}"
        if self.kind == "lerc":
            return f"float32 lerc max error {self.max_error:g}"
        return "float32"

    def encode(self, values: np.ndarray) -> np.ndarray:
        """``values`` (float32, NaN = nodata) as stored: int16 steps, clipped to int16's range
        (only ``--out-of-range keep`` outputs can reach it; they are flagged). Only values are
        encoded: stored int16 given again would be read as values and silently rescaled."""
        if values.dtype.kind != "f":
            raise TypeError(f"encode takes float values, not {values.dtype} (already stored?)")
        if self.kind != "int16":
            return values
        steps = np.rint(values / np.float32(self.scale))
        np.clip(steps, -32767, 32767, out=steps)
        return np.where(np.isnan(values), INT16_NODATA, steps).astype(np.int16)
