"""One chunk of a cube through the block kernel: the ufunc ``vercye_lai.xarray.predict`` maps over chunks.

:class:`BlockPlan` is what every chunk needs (bands, angles, networks, predict's choices;
picklable, sent to Dask workers once per graph); ``_block`` is the ufunc that
``xr.apply_ufunc`` runs on each chunk, time by time through
:func:`vercye_lai.predict.kernel.predict_block`. Numpy only: xarray stays in
:mod:`vercye_lai.xarray`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from vercye_lai.acquire.angles import cosines, solar_position
from vercye_lai.errors import InputError, require
from vercye_lai.model import Network
from vercye_lai.predict.kernel import HazeTest, predict_block
from vercye_lai.stack import ANGLE_BANDS, StackScaling, check_physical


@dataclass
class BlockPlan:
    """What every block needs: the cube's bands given to it, how the network inputs are
    made of them, the networks (physical inputs; folded per scaling in the block) and
    predict's choices. Picklable: it travels to Dask workers once per graph."""

    bands: tuple[str, ...]
    inputs: tuple[str, ...]
    angles: str  # "bands" | "degrees" | "computed"
    networks: list[Network]
    errors: list[Network]
    nodata: tuple[float | None, ...]
    flags: bool
    out_of_range: str
    haze: str
    crs: str | None = None
    name: str = "cube"
    _folded: dict = field(default_factory=dict, repr=False)

    @property
    def n_out(self) -> int:
        return len(self.networks) * (1 + self.flags) + len(self.errors)

    def folded(self, a: np.ndarray, b: np.ndarray) -> tuple[list[Network], list[Network], HazeTest | None]:
        """The networks on stored values of this scaling (cached: one per date's scaling)."""
        key = (a.tobytes(), b.tobytes())
        if key not in self._folded:
            self._folded[key] = ([n.for_stored_values(a, b) for n in self.networks],
                                 [e.for_stored_values(a, b) for e in self.errors],
                                 HazeTest.of(self.inputs, a, b, self.haze))
        return self._folded[key]

    def inputs_of(self, stored: np.ndarray, a: np.ndarray, b: np.ndarray, when: np.datetime64,
                  y: np.ndarray, x: np.ndarray, vz: float, va: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
        """``(inputs, rows, cols)`` stored values of one time, with their ``a``, ``b``, nodata."""
        if self.angles == "bands":  # every input is a band of the cube: as stored
            order = [self.bands.index(i) for i in self.inputs]
            return (np.moveaxis(stored[..., order], -1, 0), a[order], b[order],
                    tuple(self.nodata[i] for i in order))
        shape = stored.shape[:2]
        if self.angles == "degrees":
            deg = {w: stored[..., self.bands.index(w)] * a[self.bands.index(w)] + b[self.bands.index(w)]
                   for w in ("sun_zenith", "sun_azimuth", "view_zenith", "view_azimuth")}
            cos = cosines(**deg)
        else:
            sz, sa = sun_angles(when, y, x, self.crs)
            cos = cosines(sz, sa, vz, sa if np.isnan(va) else va)
        out = np.empty((len(self.inputs), *shape), np.float32)
        aa, bb, nd = np.ones(len(self.inputs)), np.zeros(len(self.inputs)), []
        for k, band in enumerate(self.inputs):
            if band in ANGLE_BANDS:
                out[k] = np.broadcast_to(cos[band], shape)
                nd.append(None)
            else:
                j = self.bands.index(band)
                out[k], aa[k], bb[k] = stored[..., j], a[j], b[j]
                nd.append(self.nodata[j])
        return out, aa, bb, tuple(nd)


def sun_angles(when: np.datetime64, y: np.ndarray, x: np.ndarray, crs: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Sun zenith and azimuth (degrees) at the pixel centres ``y`` × ``x`` (the cube's CRS)."""
    pyproj = require("pyproj", "direct")
    xx, yy = np.meshgrid(x, y)
    if crs is None:
        raise InputError("the sun angles need the cube's CRS (a spatial_ref coordinate or .rio/.odc CRS)")
    lon, lat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xx, yy)
    t = dt.datetime.fromtimestamp(int(np.datetime64(when, "us").astype(np.int64)) / 1e6, dt.UTC)
    return solar_position(t, lon, lat)


def _block(stored, a, b, when, y, x, vz, va, *, plan: BlockPlan):
    """The ufunc: ``stored`` (time, y, x, band) → per network values[, flags][, uncertainty]
    (time, y, x), each time through :func:`predict_block`."""
    n_t, rows, cols = stored.shape[:3]
    # xarray hands each input only its own dims (size 1 where broadcast): flatten to vectors
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    when, y, x, vz, va = (np.ravel(v) for v in (when, y, x, vz, va))
    nets = len(plan.networks)
    values = [np.empty((n_t, rows, cols), np.float32) for _ in range(nets)]
    flags = [np.empty((n_t, rows, cols), np.uint8) for _ in range(nets if plan.flags else 0)]
    unc = [np.empty((n_t, rows, cols), np.float32) for _ in plan.errors]
    for t in range(n_t):
        data, aa, bb, nodata = plan.inputs_of(stored[t], a[t], b[t], when[t], y, x, float(vz[t]), float(va[t]))
        check_physical(data, StackScaling(aa, bb, "cube"), plan.inputs, nodata, path=plan.name)
        stored_nets, errors, haze = plan.folded(aa, bb)
        v, f, _, u = predict_block(data, stored_nets, nodata, flags=plan.flags, out_of_range=plan.out_of_range,
                                   errors=errors, haze=haze)
        for k in range(nets):
            values[k][t] = v[k]
            if plan.flags:
                flags[k][t] = f[k]
        for k in range(len(unc)):
            unc[k][t] = u[k]
    out = (*values, *flags, *unc)
    return out if len(out) > 1 else out[0]  # apply_ufunc takes one output as an array, not a 1-tuple
