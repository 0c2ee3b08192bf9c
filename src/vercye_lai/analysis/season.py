"""The pass over a season's dates: for each date one windowed read of the LAI raster serves
every zone of a part (the zones' labels are rasterised once per grid), statistics come from
label sums, and a running per-pixel maximum is kept on the zones' pixels only
(:func:`analyze_part`, whose result is a :class:`SeasonPart`).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from vercye_lai.analysis.geometry import (
    ZoneGrid,
    Zones,
    read_window,
)
from vercye_lai.analysis.plan import AnalysisPlan, build_zones, plan_analysis, plan_zones, sensor_of  # noqa: F401 - also the API
from vercye_lai.analysis.products import (
    MAX_BANDS,
)
from vercye_lai.analysis.stats import STAT_KEYS, ZoneIndex, zone_stats
from vercye_lai.analysis.timeseries import (
    adjust_lai,
)
from vercye_lai.errors import DataIOError, InputError
from vercye_lai.grid import Grid
from vercye_lai.io import atomic_output, open_raster
from vercye_lai.naming import SENSORS, uncertainty_path

log = logging.getLogger(__name__)


class MaxAccumulator:
    """Running per-pixel max of LAI and adjusted LAI over the zones' pixels.

    Kept on the zones' window of the reference grid (see :class:`AnalysisPlan`); a date on
    another grid is resampled onto it (nearest) first, so the map has one grid even when
    dates' lattices differ.
    """

    def __init__(self, grid: Grid, index: ZoneIndex, adjustment: str,
                 zone_bounds: list[tuple[float, float, float, float]]) -> None:
        self.grid, self.index, self.adjustment = grid, index, adjustment
        self.zone_bounds = zone_bounds  # of each zone, in the grid's CRS: the maps' windows
        self.slices = index.zone_slices()
        self.lai = np.full(len(index.pixels), np.nan)
        # the identity adjustment shares the array: one running max, not two
        self.adj = self.lai if adjustment == "none" else np.full(len(index.pixels), np.nan)

    def add(self, values: np.ndarray, grid: Grid, observed: np.ndarray, *,
            gathered: np.ndarray | None = None) -> None:
        """Fold one date in; ``gathered`` = ``values`` already gathered on this grid."""
        if gathered is None:
            if grid != self.grid:
                moved = np.full(self.grid.shape, np.nan, dtype=np.float32)
                reproject(values, moved, src_transform=grid.transform, src_crs=grid.crs,
                          dst_transform=self.grid.transform, dst_crs=self.grid.crs,
                          resampling=Resampling.nearest, src_nodata=np.nan, dst_nodata=np.nan)
                values = moved
            gathered = self.index.gather(values)
        # observed is per zone (1-based): a too-cloudy date does not enter that zone's map
        v = np.where(observed[self.index.labels], gathered, np.nan)
        lai = np.maximum(v, 0)  # NaN stays NaN
        np.fmax(self.lai, lai, out=self.lai)
        if self.adj is not self.lai:
            np.fmax(self.adj, adjust_lai(lai, self.adjustment), out=self.adj)

    def fold(self, lai: np.ndarray, adj: np.ndarray | None) -> None:
        """Fold in the running max of another part (same zones, other dates)."""
        np.fmax(self.lai, lai, out=self.lai)
        if self.adj is not self.lai and adj is not None:
            np.fmax(self.adj, adj, out=self.adj)

    def zone_map(self, k: int, window: Window, which: str) -> np.ndarray:
        """The max map of 1-based zone ``k`` on ``window`` of the reference grid."""
        sl = self.slices[k - 1]
        src = self.lai if which == MAX_BANDS[0] else self.adj
        rows, cols = np.divmod(self.index.pixels[sl], self.grid.width)
        out = np.full((int(window.height), int(window.width)), np.nan, dtype=np.float32)
        out[rows - window.row_off, cols - window.col_off] = src[sl]
        return out


def reference(plan: AnalysisPlan, zs: Zones) -> tuple[ZoneGrid, ZoneIndex, MaxAccumulator | None]:
    """The zones on the reference grid, their index there, and an empty max map on it
    (``None`` when no map is wanted)."""
    with open_raster(plan.reference) as ds:
        ref = zs.on(ds)
    index = ZoneIndex.from_labels(ref.labels, zs.count)
    acc = None
    if plan.options.max_bands != "none":
        acc = MaxAccumulator(ref.grid, index, plan.options.adjustment, zs.zone_bounds_in(ref.grid.crs))
    return ref, index, acc


class SeasonPart:
    """Per-day statistics of some zones on some days, and the running max map over them.

    What :func:`analyze_part` returns and :func:`finish_analysis` combines. ``arrays``
    maps names to numpy arrays: ``zones`` (0-based zone numbers), ``days`` (positions in
    the plan's days), ``met`` (per day: the raster meets these zones), ``totals`` (zone
    pixel counts on the reference grid), ``n_pixels`` and ``t_{key}`` for each of
    :data:`~.stats.STAT_KEYS` (``(days, zones)``), and, when a map is kept, ``lai_max``
    and ``adj_max`` (per pixel of the zones on the reference grid; no ``adj_max`` when
    the adjustment is the identity). It may be an open ``.npz`` (see :meth:`save`), read
    lazily.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.arrays = arrays
        #: the max map itself when the part was made in this process (not saved)
        self.acc: MaxAccumulator | None = None

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def get(self, key: str) -> np.ndarray | None:
        return self.arrays[key] if key in self.arrays else None

    @property
    def zones(self) -> tuple[int, ...]:
        return tuple(self["zones"].tolist())

    def save(self, path: str | Path) -> Path:
        """Write the part as an uncompressed ``.npz``, atomically.

        The max maps are stored as float32, the type of the MAX.tif: rounding is monotonic,
        so the max of rounded values is the rounded max and the maps stay exact.
        """
        arrays = {k: (v.astype(np.float32) if k in ("lai_max", "adj_max") else v)
                  for k, v in self.arrays.items()}
        with atomic_output(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> SeasonPart:
        """Open a saved part (arrays are read when first used)."""
        try:
            return cls(np.load(path))
        except (OSError, ValueError) as exc:
            raise DataIOError(f"cannot read analysis part: {exc}", path=path) from exc


def analyze_part(
    plan: AnalysisPlan,
    zones: Sequence[int] | None = None,
    days: Sequence[int] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> SeasonPart:
    """The statistics of zones ``zones`` on days ``days`` of ``plan`` (default: all).

    One windowed read per date serves all these zones. A zone's statistics on a date do not
    depend on which other zones or dates share its part, and the max maps of parts over
    the same zones fold together exactly, so any split gives the outputs of one part.
    ``progress(done, total)`` is called after each day.
    """
    zs = plan_zones(plan, zones)
    all_days = plan.days
    picked = list(range(len(all_days)) if days is None else days)
    season = _Season(zs, len(picked), adjustment=plan.options.adjustment,
                     max_cloud_percent=plan.options.max_cloud_percent,
                     min_valid_fraction=plan.options.min_valid_fraction)
    ref, ref_index, season.acc = reference(plan, zs)
    season.indexes[ref.grid] = ref_index
    # a day seen by several sensors: one read per file, combined per zone (see _Season.add)
    paths = [(j, path) for j, i in enumerate(picked) for path in plan.day_files(all_days[i])]
    reads = _read_ahead(season, [path for _, path in paths])
    done = 0
    for j, path in paths:
        season.add(j, path, *next(reads), sensor=SENSORS.index(sensor_of(path)))
        if progress is not None and j + 1 > done:
            done = j + 1
            progress(done, len(picked))
    if progress is not None and done < len(picked):
        progress(len(picked), len(picked))
    arrays = {
        "zones": np.asarray(range(len(plan.names)) if zones is None else zones, dtype=np.int64),
        "days": np.asarray(picked, dtype=np.int64),
        "met": season.met,
        "totals": ref_index.total[1:],
        "covered": season.covered,
        "n_pixels": season.n_pix,
        "sensor": season.sensor,
        **{f"t_{k}": v for k, v in season.table.items()},
    }
    if season.acc is not None:
        arrays["lai_max"] = season.acc.lai
        if season.acc.adj is not season.acc.lai:
            arrays["adj_max"] = season.acc.adj
    part = SeasonPart(arrays)
    part.acc = season.acc
    return part


class _Season:
    """Per-day, per-zone statistics of one part, filled date by date, and its max map.

    Attributes
    ----------
    table
        :data:`~.stats.STAT_KEYS` → ``(days, zones)`` arrays; NaN on gap days (a gap keeps
        its cloud share).
    n_pix
        ``(days, zones)`` valid pixel counts.
    met
        ``(days,)``: the day's raster meets the zones.
    indexes
        The zones' :class:`~.stats.ZoneIndex` of each LAI grid met.
    acc
        The max map on the reference grid (``None`` when not wanted).
    """

    def __init__(self, zones: Zones, n_days: int, *, adjustment: str,
                 max_cloud_percent: float | None, min_valid_fraction: float) -> None:
        self.zones, self.adjustment = zones, adjustment
        self.max_cloud_percent, self.min_valid_fraction = max_cloud_percent, min_valid_fraction
        self.table = {k: np.full((n_days, zones.count), np.nan) for k in STAT_KEYS}
        self.n_pix = np.zeros((n_days, zones.count), dtype=np.int64)
        #: per day and zone: the index in SENSORS of the observation kept (-1: none), and
        #: its valid share (a second sensor the same day replaces it only where it sees more)
        self.sensor = np.full((n_days, zones.count), -1, dtype=np.int8)
        self._share = np.full((n_days, zones.count), -1.0)
        self.met = np.zeros(n_days, dtype=bool)
        self.covered = np.zeros(zones.count, dtype=bool)  # per zone: some raster of the range meets it
        self._meets: dict[tuple, np.ndarray] = {}
        self.indexes: dict[Grid, ZoneIndex] = {}
        self.acc: MaxAccumulator | None = None

    def read(self, path: Path) -> tuple[ZoneGrid, np.ndarray | None, np.ndarray | None]:
        """The zones on the grid of ``path``, its one windowed read over them, and the same
        window of its uncertainty raster (``None`` when there is none)."""
        with open_raster(path) as ds:
            zg = self.zones.on(ds)
            values = read_window(ds, zg.window)
            grid = Grid.of(ds)
        if grid.key not in self._meets:
            self._meets[grid.key] = self.zones.meets(grid)
        self.covered |= self._meets[grid.key]
        unc = None
        if values is not None and (u := uncertainty_path(path)).exists():
            with open_raster(u) as ds:
                if Grid.of(ds) != grid:
                    raise InputError(f"the uncertainty raster is not on the grid of {path.name}", path=u)
                unc = read_window(ds, zg.window)
        return zg, values, unc

    def add(self, i: int, path: Path, zg: ZoneGrid, values: np.ndarray | None,
            unc: np.ndarray | None = None, *, sensor: int = 0) -> None:
        """Statistics of day ``i`` from :meth:`read` of the LAI raster ``path`` (of sensor
        number ``sensor``). A second file of the day (another sensor) replaces the first
        one's statistics of a zone only where it has the larger valid share."""
        if values is None:
            log.debug("%s: does not meet the geometry", path.name)
            if not self.met[i]:
                self.table["cloud_pct"][i] = 100.0
            return
        index = self.indexes.get(zg.grid)
        if index is None:
            index = self.indexes[zg.grid] = ZoneIndex.from_labels(zg.labels, self.zones.count)
        gathered = index.gather(values)
        st = zone_stats(gathered, index, adjustment=self.adjustment, gathered=True,
                        uncertainty=None if unc is None else index.gather(unc))
        total = index.total[1:]
        observed = counts_as_observation(st, total, self.max_cloud_percent, self.min_valid_fraction)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, st["n_pixels"] / np.maximum(total, 1), 0.0)
        take = share > self._share[i] if self.met[i] else np.ones(self.zones.count, dtype=bool)
        self.met[i] = True
        self._share[i, take] = share[take]
        self.sensor[i, take] = np.where(observed, sensor, -1)[take]
        # a rejected day aggregates nothing; its cloud share tells why
        self.n_pix[i, take] = np.where(observed, st["n_pixels"], 0)[take]
        for k in STAT_KEYS:
            v = st[k] if k == "cloud_pct" else np.where(observed, st[k], np.nan)
            self.table[k][i, take] = v[take]  # a gap keeps its cloud share, loses its statistics
        if self.acc is not None:
            self.acc.add(values, zg.grid, np.concatenate(([False], observed)),
                         gathered=gathered if zg.grid == self.acc.grid else None)


def _read_ahead(season: _Season, paths: Sequence[Path], *, ahead: int = 2) -> Iterator[tuple]:
    """:meth:`_Season.read` of each path, in order, the next ones read in a thread meanwhile.

    Decoding a date's window (GDAL, without the GIL) overlaps the statistics of the
    previous one; at most ``ahead`` windows wait in memory.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="analysis-read") as pool:
        queue: deque = deque()
        todo = iter(paths)
        for path in itertools.islice(todo, ahead):
            queue.append(pool.submit(season.read, path))
        while queue:
            fut = queue.popleft()
            if (path := next(todo, None)) is not None:
                queue.append(pool.submit(season.read, path))
            yield fut.result()


def counts_as_observation(st: dict[str, np.ndarray], total: np.ndarray, max_cloud_percent: float | None,
              min_valid_fraction: float) -> np.ndarray:
    """Which zones count this date as an observation (not a gap)."""
    ok = st["n_pixels"] > 0
    if max_cloud_percent is not None:
        ok &= st["cloud_pct"] <= max_cloud_percent
    if min_valid_fraction > 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            ok &= st["n_pixels"] / total >= min_valid_fraction
    return ok
