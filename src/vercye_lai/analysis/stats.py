"""Per-zone statistics of one date from label sums (``np.bincount``), all zones at once.

For each LAI grid the labelled pixels are indexed once (:class:`ZoneIndex`); each date
then gathers those pixels from its window, and count, sum and sum of squares per zone
come from three ``bincount`` calls. The median needs the values in order: one
``lexsort`` by (zone, value) per date serves every zone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vercye_lai.analysis.timeseries import adjust_lai

log = logging.getLogger(__name__)

#: Columns of :func:`zone_stats`' result, in CSV order after ``Date, n_pixels, interpolated``.
STAT_KEYS = ("mean", "median", "std", "mean_adj", "median_adj", "std_adj", "cloud_pct", "unc")

#: Mean pixels per zone above which medians are taken zone by zone (np.partition) rather
#: than from one sort of all pixels; the per-call overhead of a partition is ~256 pixels' sort.
_MIN_MEAN_ZONE_SIZE = 256
#: the share of a pixel's error variance that the pixels of one field on one date have in common
#: (the intraclass correlation of the SL2P errors of 172 in-situ points in 34 parcel-dates of 4
#: Swiss sites: 0.81; see the Uncertainty page): a field mean's σ hardly shrinks with its size
FIELD_ERROR_SHARE = 0.8


@dataclass
class ZoneIndex:
    """The labelled pixels of one grid, grouped by zone.

    Attributes
    ----------
    pixels
        Flat positions (row-major on the window) of the labelled pixels, sorted by zone;
        a pixel of two overlapping zones appears twice.
    labels
        Zone label (1-based) of each entry of ``pixels``.
    total
        ``(n_zones + 1,)`` pixel count of each zone on this grid (index 0 unused).
    """

    pixels: np.ndarray
    labels: np.ndarray
    total: np.ndarray

    @classmethod
    def from_labels(cls, labels: np.ndarray, n_zones: int) -> ZoneIndex:
        """Index a ``(layers, height, width)`` label array (0 = no zone)."""
        pix, lab = [], []
        for layer in labels.reshape(-1, *labels.shape[-2:]):
            flat = layer.ravel()
            p = np.flatnonzero(flat)
            pix.append(p)
            lab.append(flat[p])
        pixels = np.concatenate(pix)
        labs = np.concatenate(lab).astype(np.intp)
        order = np.argsort(labs, kind="stable")
        labs = labs[order]
        return cls(pixels[order], labs, np.bincount(labs, minlength=n_zones + 1))

    def zone_slices(self) -> list[slice]:
        """The range of entries of each zone (1-based zone ``k`` at index ``k - 1``)."""
        ends = np.cumsum(self.total)
        return [slice(int(ends[k - 1]), int(ends[k])) for k in range(1, len(self.total))]

    def gather(self, values: np.ndarray) -> np.ndarray:
        """The values of the indexed pixels from a window-shaped array."""
        return values.ravel()[self.pixels]


def zone_stats(values: np.ndarray, index: ZoneIndex, *, adjustment: str = "none",
               gathered: bool = False, uncertainty: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Statistics of each zone for one date.

    Parameters
    ----------
    values
        LAI on the window of ``index``'s grid (m²/m²), NaN where invalid.
    index
        The zones' pixels on that grid.
    adjustment
        ``"none"``, ``"wheat"`` or ``"maize"`` (see :func:`adjust_lai`), applied per pixel
        after clipping negative LAI to 0.
    gathered
        ``values`` is already ``index.gather(window_values)`` (saves a gather when the
        caller needs the gathered values too); so is ``uncertainty``.
    uncertainty
        The per-pixel uncertainty σ of ``values`` (same layout), or ``None``: ``unc`` is then
        NaN.

    Returns
    -------
    dict
        ``n_pixels`` (int) and the :data:`STAT_KEYS` (float64, NaN where a zone has no
        valid pixel), each an array with one entry per zone. ``std`` is the population
        standard deviation (ddof=0, as ``numpy.nanstd``); ``cloud_pct`` is the share (%)
        of the zone's pixels that are invalid on this date; ``unc`` the σ of the zone's
        mean over the n pixels aggregated (valid LAI and a finite σ): errors shared by the
        field's pixels (a share ρ = :data:`FIELD_ERROR_SHARE` of their variance) do not
        average out, √(ρ·mean(σ)² + (1 − ρ)·mean(σ²)/n).
    """
    n_zones = len(index.total) - 1
    v = values if gathered else index.gather(values)
    ok = ~np.isnan(v)
    lab = index.labels[ok]
    lai = np.maximum(v[ok], 0).astype(np.float64)  # negative LAI is noise: clip to 0
    m = n_zones + 1
    n = np.bincount(lab, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean, std = _mean_std(lab, lai, n, m)
        median = _median(lab, lai, n)
        if adjustment == "none":  # identity: no second pass
            mean_adj, std_adj, median_adj = mean, std, median
        else:
            adj = adjust_lai(lai, adjustment)
            mean_adj, std_adj = _mean_std(lab, adj, n, m)
            median_adj = _median(lab, adj, n)
        cloud = 100.0 * (index.total - n) / index.total
        unc = np.full(m, np.nan)
        if uncertainty is not None:
            u = (uncertainty if gathered else index.gather(uncertainty))[ok].astype(np.float64)
            has = ~np.isnan(u)
            k = np.bincount(lab[has], minlength=m)
            mean_u = np.bincount(lab[has], weights=u[has], minlength=m) / k
            mean_u2 = np.bincount(lab[has], weights=u[has] ** 2, minlength=m) / k
            rho = FIELD_ERROR_SHARE
            unc = np.sqrt(rho * mean_u**2 + (1.0 - rho) * mean_u2 / k)
    return {
        "n_pixels": n[1:],
        "mean": mean[1:],
        "median": median[1:],
        "std": std[1:],
        "mean_adj": mean_adj[1:],
        "median_adj": median_adj[1:],
        "std_adj": std_adj[1:],
        "cloud_pct": cloud[1:],
        "unc": unc[1:],
    }


def _mean_std(lab: np.ndarray, x: np.ndarray, n: np.ndarray,
              m: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std per label from count ``n``, sum and sum of squares."""
    s = np.bincount(lab, weights=x, minlength=m)
    ss = np.bincount(lab, weights=x * x, minlength=m)
    mean = s / n
    # E[x²] − mean² can dip below 0 by rounding when all values are equal
    std = np.sqrt(np.maximum(ss / n - mean * mean, 0.0))
    return mean, std


def _median(lab: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Median of ``x`` per label (NaN for labels without values); ``lab`` is sorted."""
    out = np.full(len(n), np.nan)
    if not len(x):
        return out
    ends = np.cumsum(n)
    starts = ends - n
    if len(n) * _MIN_MEAN_ZONE_SIZE < len(x):
        # few large zones: one linear-time partition per zone beats sorting everything
        for k in np.flatnonzero(n).tolist():
            seg, h = x[starts[k]:ends[k]], int(n[k]) // 2
            if n[k] % 2:
                out[k] = np.partition(seg, h)[h]
            else:
                p = np.partition(seg, (h - 1, h))
                out[k] = 0.5 * (p[h - 1] + p[h])
        return out
    xs = x[np.lexsort((x, lab))]  # many small zones: one sort by (zone, value)
    has = n > 0
    lo = starts[has] + (n[has] - 1) // 2
    hi = starts[has] + n[has] // 2
    out[has] = 0.5 * (xs[lo] + xs[hi])
    return out
