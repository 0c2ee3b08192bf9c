"""Whether a stack's values are physical once scaled (see :mod:`vercye_lai.stack`): each
block's medians (:func:`check_physical`: a wrong scale) and counts over all blocks
(:class:`NegativeTally`: an offset applied twice, red and NIR swapped). The thresholds are
shared with the acquisition's offset check (:mod:`vercye_lai.acquire.offset`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vercye_lai.errors import InputError
from vercye_lai.stack._contract import ANGLE_BANDS, L8_BANDS, StackScaling, invalid_mask

log = logging.getLogger(__name__)

#: Physical limits of a stack's values, on the median of a block's valid pixels per band.
#: Reflectance factors beyond these are not a bright field but a wrong scale: a stack
#: stored × 10000 reads ~500–5000, one scaled twice ~1e-5. Medians, not extremes, so that
#: saturated or dark pixels of a real stack never fail a date.
REFLECTANCE_MEDIAN_RANGE = (-0.5, 2.0)
COSINE_RANGE = (-1.01, 1.01)
#: every reflectance band's median below this: the values were scaled twice
DARKEST_MEDIAN = 1e-3
#: take every n-th row and column for the check (a few thousand pixels of a 1024² block)
_SAMPLE_STEP = 8
#: a green or red reflectance below this is negative beyond noise (~0.003)
NEGATIVE_REFLECTANCE = -0.005
#: the largest share of valid pixels below it with the offset applied once (measured: at most
#: 0.04 % of the Irish SAFE's and the demo's stacks; applied twice, 8-100 %, median 75 %)
MAX_NEGATIVE_SHARE = 0.05
#: the fewest valid pixels :class:`NegativeTally` judges
MIN_TALLY_PIXELS = 100
#: the share of valid pixels with red above NIR beyond which the bands look swapped
MAX_RED_ABOVE_NIR = 0.5


class NegativeTally:
    """Two signs of a stack read wrong, counted over its blocks (thread-safe).

    Green or red reflectance negative beyond noise: an offset applied twice (data that hold it
    already, read with the offset a file or ``--offset`` declares) lowers every reflectance by
    0.1, and SL2P turns that into a plausible, wrong LAI (4.21 -> 6.01 on a Strickhof date);
    the block check (:func:`check_physical`) cannot see it: the medians stay in range. An error.

    Red above near infrared on most pixels: bands swapped or mislabelled (red and NIR
    exchanged gave LAI 0 everywhere, flag 9, without a word); land has NIR above red (at most
    5 % of the Irish SAFE's valid pixels, sea included, and none of the demo's are not), water
    is the exception. Said, not refused (a scene of open water).
    """

    def __init__(self, scaling: StackScaling, inputs: Sequence[str]) -> None:
        self.scaling = scaling
        inputs = list(inputs)
        self._bands = [inputs.index(b) for b in ("B3", "B4") if b in inputs]
        nir = "B5" if tuple(inputs) == L8_BANDS else "B8A" if "B8A" in inputs else "B8"
        self._nir = inputs.index(nir) if nir in inputs and "B4" in inputs else None
        self.valid = self.low = 0
        self.sampled = self.red_above_nir = 0
        self._lock = threading.Lock()

    def add(self, data: np.ndarray, nodatavals: Sequence[float | None]) -> None:
        """Count one block (``data``: ``(bands, rows, cols)`` stored values; its green and
        red bands where both are valid, compared as stored: ~2 ms of a 1024² block's ~100;
        red and NIR on every 4th row and column of a large block)."""
        if len(self._bands) < 2:
            return
        i, j = self._bands
        a, b = self.scaling.a, self.scaling.b
        if a[i] <= 0 or a[j] <= 0:
            return
        green, red = data[i], data[j]
        valid = ~invalid_mask(data[[i, j]], [nodatavals[i], nodatavals[j]])
        # reflectance a·v + b below the threshold <=> v below (threshold - b) / a
        low = (green < (NEGATIVE_REFLECTANCE - b[i]) / a[i]) | (red < (NEGATIVE_REFLECTANCE - b[j]) / a[j])
        n_low = int(np.count_nonzero(low & valid))
        sampled = above = 0
        if self._nir is not None:
            k = self._nir
            step = 4 if data[0].size > 100_000 else 1  # a sample of a large block, every pixel of a small one
            pair = data[[j, k], ::step, ::step]
            ok = ~invalid_mask(pair, [nodatavals[j], nodatavals[k]])
            sampled = int(np.count_nonzero(ok))
            above = int(np.count_nonzero((pair[0][ok] * a[j] + b[j]) > (pair[1][ok] * a[k] + b[k])))
        with self._lock:
            self.valid += int(np.count_nonzero(valid))
            self.low += n_low
            self.sampled += sampled
            self.red_above_nir += above

    def check(self, *, path: str | Path) -> None:
        """Raise when too many of the pixels counted are negative; warn when red is above NIR
        on most of them.

        Raises
        ------
        InputError
            Naming ``path``, the share found and the scaling it was read with.
        """
        if self.valid >= MIN_TALLY_PIXELS and self.low > MAX_NEGATIVE_SHARE * self.valid:
            raise InputError(
                f"values are not physical: {100 * self.low / self.valid:.0f}% of the valid pixels have green or red "
                f"reflectance below {NEGATIVE_REFLECTANCE:g} (scaling: {self.scaling.how}; with the right offset "
                "under 0.1% do): the data hold the offset already and it was applied again; read them without it "
                "(--offset 0, or correct the offset declared in the file)", path=path)
        if self.sampled >= MIN_TALLY_PIXELS and self.red_above_nir > MAX_RED_ABOVE_NIR * self.sampled:
            log.warning("%s: red reflectance is above near infrared on %.0f%% of the valid pixels (land has NIR "
                        "above red): are the bands swapped or mislabelled? (check the band order or --band-names)",
                        path, 100 * self.red_above_nir / self.sampled)


def check_physical(
    data: np.ndarray,
    scaling: StackScaling,
    inputs: Sequence[str],
    nodatavals: Sequence[float | None],
    *,
    path: str | Path,
) -> None:
    """Fail when a block of stored values is not reflectance factors and cosines once scaled.

    Parameters
    ----------
    data
        ``(bands, rows, cols)`` stored values of one block, bands in ``inputs`` order.
    scaling
        The stack's scaling (:func:`stack_scaling`).

    Raises
    ------
    InputError
        Naming ``path``, the band, the median seen, how the stack was scaled and what to
        pass instead (``--scale``).
    """
    sample = data[:, ::_SAMPLE_STEP, ::_SAMPLE_STEP]
    valid = ~invalid_mask(sample, nodatavals)
    if not valid.any():
        return
    values = sample[:, valid].astype(np.float64) * scaling.a[:, None] + scaling.b[:, None]
    medians = np.median(values, axis=1)
    refl = [i for i, b in enumerate(inputs) if b not in ANGLE_BANDS]
    fix = ("reflectances must be factors 0–1: if the stack is stored × 10000, pass --scale 1e-4 "
           "(run config: scale = 1e-4 in [predict]), or declare the scale in the file")
    for i, band in enumerate(inputs):
        lo, hi = COSINE_RANGE if band in ANGLE_BANDS else REFLECTANCE_MEDIAN_RANGE
        if not lo <= medians[i] <= hi:
            what = "cosine" if band in ANGLE_BANDS else "reflectance"
            hint = ("angle bands must be cosines in -1…1: a float stack stored × 10000 in every band "
                    "must declare its scale in the file (gdal_edit.py -scale 1e-4)" if band in ANGLE_BANDS else fix)
            raise InputError(
                f"values are not physical: band {band} has a median {what} of {medians[i]:.6g} "
                f"(scaling: {scaling.how}); {hint}", path=path)
    if refl and np.all(medians[refl] < DARKEST_MEDIAN):
        raise InputError(
            f"values are not physical: every reflectance band has a median below {DARKEST_MEDIAN:g} "
            f"({', '.join(f'{inputs[i]} {medians[i]:.3g}' for i in refl[:3])}…; scaling: {scaling.how}): "
            "the stack looks scaled twice — drop --scale, or the scale declared in the file", path=path)
