"""Zones on the LAI grid: fields (polygons) or a crop mask, rasterised once per grid.

A *zone* is what one statistics row describes: one field (``poly_iter``), all fields
together (``poly_agg``) or the non-zero pixels of a crop mask (``raster``). For each LAI
grid met during a run, :class:`Zones` computes the window of the LAI raster that covers
the zones, and a label array on that window (0 = outside, ``k`` = zone ``k``). The labels
are cached by grid (transform, shape, CRS), so a season of dates on the same grid
rasterises the polygons once.

All windows are snapped to the raster's own pixel lattice and may extend past the
raster's edge; :func:`read_window` fills the outside with NaN (a boundless read), so a
field partly outside one date's raster keeps its full pixel count on every date.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.windows import Window

from vercye_lai.errors import DataIOError, InputError, gdal_reason
from vercye_lai.grid import Grid
from vercye_lai.io import apply_scaling, atomic_output, nodata_mask, open_raster

if TYPE_CHECKING:
    import geopandas as gpd

log = logging.getLogger(__name__)

def read_window(ds: rasterio.io.DatasetReader, window: Window, *,
                band: int = 1) -> np.ndarray | None:
    """Read one band on ``window`` as float32 with NaN wherever there is no valid value.

    Pixels outside the raster, NaN and the declared nodata all become NaN. A window
    entirely inside the raster is a plain windowed read; one partly outside is read with
    ``boundless=True`` and its outside part set to NaN explicitly (so an integer raster
    without declared nodata cannot leak a fill value of 0 into the statistics).

    Returns
    -------
    numpy.ndarray or None
        ``(window.height, window.width)`` float32, or ``None`` when the window does not
        meet the raster at all.
    """
    hit = Grid.of(ds).overlap(window)
    if hit is None:
        return None
    rows, cols, inner = hit
    inside = inner.width == window.width and inner.height == window.height
    try:
        data = ds.read(band, window=window, boundless=not inside)
    except rasterio.errors.RasterioIOError as exc:
        raise DataIOError(f"cannot read band {band}: {gdal_reason(exc)}", path=ds.name) from exc
    bad = nodata_mask(data, ds.nodata)
    out = apply_scaling(ds, data.astype(np.float32, copy=False), band)  # int16 products declare a scale
    if not inside:
        outside = np.ones(out.shape, dtype=bool)
        outside[rows, cols] = False
        bad |= outside
    if bad.any():
        out = np.where(bad, np.float32(np.nan), out)
    return out


# --------------------------------------------------------------------------- vector input
def _layers(geoms, *, within: float = 0.0) -> list[list[int]]:
    """Split features into layers with no two overlapping features in one layer (nor two
    nearer than ``within``, in the geometries' units: fields that may touch one pixel).

    Rasterising with label ids gives each pixel one label; overlapping fields would
    otherwise lose their shared pixels to whichever was burnt last. Usually one layer.
    """
    import shapely

    tree = shapely.STRtree(geoms)
    a, b = (tree.query(geoms, predicate="dwithin", distance=within) if within > 0
            else tree.query(geoms, predicate="intersects"))
    touching = a != b
    neighbours: dict[int, set[int]] = {}
    for i, j in zip(a[touching].tolist(), b[touching].tolist(), strict=True):
        neighbours.setdefault(i, set()).add(j)
    layer_of: dict[int, int] = {}
    layers: list[list[int]] = []
    for i in range(len(geoms)):
        used = {layer_of[j] for j in neighbours.get(i, ()) if j in layer_of}
        k = next(k for k in range(len(layers) + 1) if k not in used)
        if k == len(layers):
            layers.append([])
        layers[k].append(i)
        layer_of[i] = k
    return layers


# --------------------------------------------------------------------------- zones
@dataclass
class ZoneGrid:
    """The zones rasterised on one LAI grid.

    Attributes
    ----------
    window
        Window of the LAI raster covering all zones (may extend past its edge).
    grid
        The grid of that window.
    labels
        ``(layers, height, width)`` int32 labels, 0 = no zone, ``k`` = zone ``k`` (1-based).
    """
    window: Window
    grid: Grid
    labels: np.ndarray


class Zones:
    """Base class: named zones that can be rasterised on any LAI grid (cached by grid).

    Subclasses implement :meth:`bounds_in` and :meth:`_rasterize`.
    """
    def __init__(self, names: list[str], *, path: str | Path) -> None:
        self.names = names
        self.path = Path(path)
        self._cache: dict[tuple, np.ndarray] = {}

    @property
    def count(self) -> int:
        return len(self.names)

    def bounds_in(self, crs: CRS) -> tuple[float, float, float, float]:
        """Bounds of all zones in ``crs``."""
        raise NotImplementedError

    def zone_bounds_in(self, crs: CRS) -> list[tuple[float, float, float, float]]:
        """Bounds of each zone in ``crs`` (default: the bounds of all zones)."""
        return [self.bounds_in(crs)] * self.count

    def _rasterize(self, grid: Grid) -> np.ndarray:
        raise NotImplementedError

    def share_inside(self, grid: Grid) -> np.ndarray:
        """Per zone: the share of it within the extent of ``grid`` (1 where unknown, a mask)."""
        return np.ones(self.count)

    def meets(self, grid: Grid) -> np.ndarray:
        """Per zone: it overlaps the extent of ``grid`` (a whole LAI raster's grid)."""
        b = np.asarray(self.zone_bounds_in(grid.crs), dtype=np.float64).reshape(-1, 4)
        x0, y0, x1, y1 = grid.bounds
        return (b[:, 0] < x1) & (b[:, 2] > x0) & (b[:, 1] < y1) & (b[:, 3] > y0)

    def on(self, ds: rasterio.io.DatasetReader) -> ZoneGrid:
        """The window of ``ds`` covering the zones, and the zone labels on it (cached)."""
        whole = Grid.of(ds)
        window = whole.window_for(self.bounds_in(ds.crs))
        grid = whole.window(window)
        # the labels depend on the grid only; the window is relative to this file
        labels = self._cache.get(grid.key)
        if labels is None:
            log.debug("rasterising %d zone(s) on a new grid %s", self.count, grid)
            labels = self._cache[grid.key] = self._rasterize(grid)
        return ZoneGrid(window, grid, labels)


class PolygonZones(Zones):
    """Polygons of a vector file as zones: one zone each, or all together.

    Parameters
    ----------
    gdf
        Features with a CRS (any); reprojected to each raster's CRS as needed.
    names
        One name per zone: ``len(gdf)`` names, or one name to merge all polygons.
    all_touched
        Burn every pixel a polygon touches instead of the pixels whose centre it holds.
    """
    def __init__(self, gdf: gpd.GeoDataFrame, names: list[str], *, path: str | Path,
                 all_touched: bool = False) -> None:
        super().__init__(names, path=path)
        if len(names) not in (1, len(gdf)):
            raise ValueError("names must have one entry or one per feature")
        self.gdf = gdf
        self.all_touched = all_touched
        self._by_crs: dict[str, object] = {}
        self._ignored: frozenset[int] = frozenset()  # (see :meth:`ignore`)

    def _geoms(self, crs: CRS):
        key = crs.to_wkt()
        if key not in self._by_crs:
            self._by_crs[key] = self.gdf.geometry.to_crs(crs).values
        return self._by_crs[key]

    def ignore(self, zones: Sequence[int]) -> PolygonZones:
        """Leave ``zones`` (numbers) out of the window every raster is read in: zones that meet
        no raster of the season (skipped anyway). One field misplaced far away (at lon/lat 0, 0)
        made that window span the distance: 1.14 TiB asked for, or GB for a field 150 km off."""
        self._ignored = frozenset(int(z) for z in zones)
        return self

    def bounds_in(self, crs: CRS) -> tuple[float, float, float, float]:
        import shapely

        geoms = self._geoms(crs)
        if self._ignored and self.count > 1 and len(self._ignored) < len(geoms):
            geoms = geoms[[i for i in range(len(geoms)) if i not in self._ignored]]
        return tuple(shapely.total_bounds(geoms).tolist())

    def zone_bounds_in(self, crs: CRS) -> list[tuple[float, float, float, float]]:
        import shapely

        if self.count == 1:
            return [self.bounds_in(crs)]
        return [tuple(b) for b in shapely.bounds(self._geoms(crs)).tolist()]

    def share_inside(self, grid: Grid) -> np.ndarray:
        import shapely

        geoms = self._geoms(grid.crs)
        if self.count == 1:
            geoms = np.array([shapely.union_all(geoms)])
        area = shapely.area(geoms)
        inside = shapely.area(shapely.intersection(geoms, shapely.box(*grid.bounds)))
        return np.divide(inside, area, out=np.ones(len(geoms)), where=area > 0)

    def meets(self, grid: Grid) -> np.ndarray:
        import shapely

        hit = shapely.intersects(self._geoms(grid.crs), shapely.box(*grid.bounds))
        return np.array([hit.any()]) if self.count == 1 else np.asarray(hit)

    def _rasterize(self, grid: Grid) -> np.ndarray:
        geoms = self._geoms(grid.crs)
        if self.count == 1:  # poly_agg: one label for all, overlaps do not matter
            layers = [list(range(len(geoms)))]
            label = np.ones(len(geoms), dtype=np.int32)
        else:
            # with --all-touched, fields apart by less than a pixel's diagonal may touch one pixel
            diagonal = float(np.hypot(*grid.res)) if self.all_touched else 0.0
            layers = _layers(geoms, within=diagonal)
            label = np.arange(1, len(geoms) + 1, dtype=np.int32)
        out = np.zeros((len(layers), *grid.shape), dtype=np.int32)
        for k, members in enumerate(layers):
            rasterize(
                ((geoms[i], int(label[i])) for i in members),
                out=out[k], transform=grid.transform, all_touched=self.all_touched,
                dtype=np.int32,
            )
        return out


def _window_within(ds: rasterio.io.DatasetReader, lonlat: tuple[float, float, float, float]) -> Window:
    """The window of ``ds`` over the lon/lat box ``lonlat``, whole pixels and a 2-pixel margin
    (nearest-neighbour alignment needs the pixels at the edge), within the raster."""
    b = transform_bounds("EPSG:4326", ds.crs, *lonlat, densify_pts=21)
    w = rasterio.windows.from_bounds(*b, transform=ds.transform)
    c0, r0 = math.floor(w.col_off) - 2, math.floor(w.row_off) - 2
    c1, r1 = math.ceil(w.col_off + w.width) + 2, math.ceil(w.row_off + w.height) + 2
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, ds.width), min(r1, ds.height)
    if c1 <= c0 or r1 <= r0:
        raise InputError("the crop mask does not overlap the LAI rasters", path=ds.name)
    return Window(c0, r0, c1 - c0, r1 - r0)


class MaskZones(Zones):
    """The non-zero, non-nodata pixels of a crop-mask raster as one zone.

    The mask may have any CRS, resolution and extent: it is cropped once to the bounding
    box of its crop pixels, then aligned to each LAI grid with nearest-neighbour
    resampling.
    """
    def __init__(self, path: str | Path, name: str, *, within: tuple[float, float, float, float] | None = None) -> None:
        super().__init__([name], path=path)
        with open_raster(path) as ds:
            # only the part over the LAI rasters (``within``: their lon/lat bounds): a national mask
            # was read whole (6 GB for a 2.5 MB file) and its crop pixels beyond the rasters counted
            # as cloud on every date (95 % where 16 % were)
            part = _window_within(ds, within) if within is not None else Window(0, 0, ds.width, ds.height)
            data = ds.read(1, window=part)
            crop = (data != 0) & ~nodata_mask(data, ds.nodata)
            if not crop.any():
                raise InputError("the crop mask has no non-zero pixel" + (" over the LAI rasters" if within else ""),
                                 path=path)
            held = data[crop]  # (a national mask: tens of millions of pixels, selected once)
            lo, hi = held.min(), held.max()
            # a probability (0.7) or a class map (several values), not a mask of 0 and one value
            if lo < 0 or lo != hi or lo != np.round(lo):
                log.warning("%s: the crop mask holds values other than 0 and 1 (%s to %s): every non-zero pixel "
                            "counts as crop; threshold it first if it is a probability or a class map",
                            Path(path).name, lo, hi)
            rows = np.flatnonzero(crop.any(axis=1))
            cols = np.flatnonzero(crop.any(axis=0))
            win = Window(part.col_off + cols[0], part.row_off + rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1)
            self.crop = crop[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.uint8)
            self.transform = ds.window_transform(win)
            self.crs = ds.crs
            self.bounds = rasterio.windows.bounds(win, ds.transform)
        log.debug("crop mask %s: %d crop pixels", Path(path).name, int(self.crop.sum()))

    def bounds_in(self, crs: CRS) -> tuple[float, float, float, float]:
        if crs == self.crs:
            return self.bounds
        return transform_bounds(self.crs, crs, *self.bounds, densify_pts=21)

    def _rasterize(self, grid: Grid) -> np.ndarray:
        if not grid.aligned_with(self.crs, self.transform):
            # a user error or a choice: either way not silent (the pixels are resampled)
            res = f"{abs(self.transform.a):g}×{abs(self.transform.e):g}"
            log.warning("%s: the crop mask's grid (%s, %s px, origin %.6g, %.6g) is not the LAI grid "
                        "(%s, %g×%g px, origin %.6g, %.6g): resampled to it by nearest neighbour "
                        "(vercye-lai reproject-mask aligns it once)", Path(self.path).name, self.crs,
                        res, self.transform.c, self.transform.f, grid.crs, *grid.res,
                        grid.transform.c, grid.transform.f)
        out = np.zeros(grid.shape, dtype=np.uint8)
        reproject(
            self.crop, out, src_transform=self.transform, src_crs=self.crs,
            dst_transform=grid.transform, dst_crs=grid.crs, resampling=Resampling.nearest,
            src_nodata=0, dst_nodata=0,
        )
        return out[None].astype(np.int32)


# --------------------------------------------------------------------------- reproject-mask
def largest_grid(paths: list[Path]) -> tuple[Path, Grid]:
    """The file with the largest extent (in pixels) among ``paths``, and its grid."""
    best: tuple[int, Path, Grid] | None = None
    for p in paths:
        with open_raster(p) as ds:
            g = Grid.of(ds)
        if best is None or g.height * g.width > best[0]:
            best = (g.height * g.width, p, g)
    if best is None:
        raise InputError("no LAI raster to take the grid from")
    return best[1], best[2]


def reproject_mask(mask_path: str | Path, out_path: str | Path, grid: Grid) -> Path:
    """Resample a crop mask onto ``grid`` (nearest neighbour) and write it atomically.

    The output keeps the mask's data type; pixels outside the mask or on its nodata are 0
    (not crop). Written as a compressed GeoTIFF (tiled when larger than one tile).

    Parameters
    ----------
    mask_path
        Crop mask in any CRS, resolution and extent; non-zero = crop.
    out_path
        The aligned mask to write.
    grid
        Target grid, usually the LAI grid from :func:`largest_grid`.
    """
    with open_raster(mask_path) as ds:
        # only the part over the grid (a national mask was read whole: 4.9 GB for a 2.5 MB file)
        try:
            part = _window_within(ds, transform_bounds(grid.crs, "EPSG:4326", *grid.bounds, densify_pts=21))
        except InputError:
            raise InputError("the mask has no non-zero pixel on the LAI grid (no overlap?)", path=mask_path) from None
        data = ds.read(1, window=part)
        # nodata → 0 (not crop) first: GDAL would write the source nodata value into gaps
        data = np.where(nodata_mask(data, ds.nodata), 0, data).astype(data.dtype, copy=False)
        out = np.zeros(grid.shape, dtype=data.dtype)
        reproject(
            data, out, src_transform=ds.window_transform(part), src_crs=ds.crs,
            dst_transform=grid.transform, dst_crs=grid.crs, resampling=Resampling.nearest,
            src_nodata=0, dst_nodata=0,
        )
    if not out.any():
        raise InputError("the mask has no non-zero pixel on the LAI grid (no overlap?)",
                         path=mask_path)
    profile = grid.profile(dtype=out.dtype, nodata=None)
    with atomic_output(out_path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(out, 1)
    log.info("%s: %d crop pixels on a %d×%d grid", Path(out_path).name,
             int(np.count_nonzero(out)), grid.width, grid.height)
    return Path(out_path)
