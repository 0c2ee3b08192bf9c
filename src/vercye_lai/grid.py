"""One raster grid: CRS, affine transform and shape, with the window arithmetic on it.

Every step that places pixels uses :class:`Grid`: ``stack-safe`` and ``stack-bands``
build their output grid with :meth:`Grid.from_bounds`, predict and the stack writer split
a raster into :meth:`Grid.tiles`, the analysis finds the window of its zones with
:meth:`Grid.window_for` and :meth:`Grid.overlap`, and the GeoTIFFs the pipeline creates
(stacks, products, max maps, aligned masks) get their creation profile from
:meth:`Grid.profile`.

Conventions
    Coordinates and bounds ``(left, bottom, right, top)`` are in CRS units (metres for
    the projected grids of the pipeline); windows, shapes and offsets are in pixels,
    ``shape = (height, width)`` (rows, cols). Pixel ``(row, col)`` covers the half-open
    square between its edges; its value stands for its centre. Grids are not rotated.

Why not ``odc-geo``'s ``GeoBox``: it would add xarray and cachetools to the dependencies
for the few operations here, and its snapping is not the rule the outputs (and the tests)
pin: ``GeoBox.from_bbox`` forgives 0.01 pixel at the edges (here 1e-6) and anchors on a
pixel fraction from the CRS origin, with other float arithmetic.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from vercye_lai.errors import InputError
from vercye_lai.io import GTIFF_PROFILE

log = logging.getLogger(__name__)

#: A pixel coordinate this close to an integer is treated as on the pixel edge, so that
#: float noise in bounds never adds a spurious row or column to a window.
_EDGE_EPS = 1e-6
#: Same, for the grid lines of :meth:`Grid.from_bounds`: a region that went through
#: EPSG:4326 and back lands a few nm off its grid.
_SNAP_EPS = 1e-6


def utm_crs(lon: float, lat: float) -> str:
    """EPSG code of the WGS 84 / UTM zone containing a point (degrees)."""
    zone = min(60, max(1, int((lon + 180.0) // 6.0) + 1))
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


@dataclass(frozen=True)
class Grid:
    """A raster grid: ``crs``, affine ``transform`` (pixel → CRS units) and ``shape``
    ``(height, width)`` in pixels.

    Equality and hashing use the transform rounded to 1e-6 CRS units, so that the same
    lattice read from two files compares equal despite float noise.
    """

    crs: CRS
    transform: Affine
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        # "EPSG:32629" and a CRS are the same grid; int() drops numpy integer types
        if self.crs is not None:
            object.__setattr__(self, "crs", CRS.from_user_input(self.crs))
        object.__setattr__(self, "shape", (int(self.shape[0]), int(self.shape[1])))

    # ------------------------------------------------------------------ constructors

    @classmethod
    def of(cls, dataset: rasterio.io.DatasetReaderBase) -> Grid:
        """The grid of an open rasterio dataset."""
        return cls(dataset.crs, dataset.transform, (dataset.height, dataset.width))

    @classmethod
    def from_bounds(
        cls,
        bounds: tuple[float, float, float, float],
        resolution: float,
        crs,
        *,
        anchor: tuple[float, float] = (0.0, 0.0),
    ) -> Grid:
        """The smallest north-up grid of square ``resolution`` pixels whose lines pass
        through ``anchor`` and which covers ``bounds``.

        Parameters
        ----------
        bounds
            ``(left, bottom, right, top)`` in ``crs`` units.
        resolution
            Pixel size in ``crs`` units.
        crs
            Anything :meth:`rasterio.crs.CRS.from_user_input` takes.
        anchor
            ``(x, y)`` a grid corner passes through, in ``crs`` units (e.g. a tile's
            upper-left corner, so that the grid is the product's own pixel grid).

        Notes
        -----
        A bound within 1e-6 pixel of a grid line is taken as on it (no extra row or
        column for float noise); the grid has at least one pixel each way.
        """
        left, bottom, right, top = bounds
        ax, ay = anchor
        r = float(resolution)
        if not (np.isfinite(r) and r > 0):  # (0 divided by zero)
            raise ValueError(f"resolution must be a positive number, not {resolution}")
        eps = _SNAP_EPS
        x0 = ax + np.floor((left - ax) / r + eps) * r
        x1 = ax + np.ceil((right - ax) / r - eps) * r
        y0 = ay + np.floor((bottom - ay) / r + eps) * r
        y1 = ay + np.ceil((top - ay) / r - eps) * r
        shape = (max(1, round((y1 - y0) / r)), max(1, round((x1 - x0) / r)))
        return cls(CRS.from_user_input(crs), Affine(r, 0, x0, 0, -r, y1), shape)

    # ------------------------------------------------------------------ properties

    @property
    def height(self) -> int:
        """Rows (pixels)."""
        return self.shape[0]

    @property
    def width(self) -> int:
        """Columns (pixels)."""
        return self.shape[1]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of the outer pixel edges, in CRS units."""
        t = self.transform
        x0, x1 = t.c, t.c + self.width * t.a
        y0, y1 = t.f, t.f + self.height * t.e
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size ``(x, y)`` in CRS units, both positive."""
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def full_window(self) -> Window:
        """The window covering the whole grid."""
        return Window(0, 0, self.width, self.height)

    @property
    def key(self) -> tuple:
        """What equality and hashing compare (transform rounded to 1e-6 CRS units)."""
        crs = self.crs.to_wkt() if self.crs is not None else None
        return tuple(round(v, 6) for v in self.transform[:6]), self.height, self.width, crs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grid) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    # ------------------------------------------------------------------ windows

    def aligned_with(self, crs: CRS | str, transform: Affine, *, tol: float = 1e-6) -> bool:
        """Same CRS, pixel size and orientation, origins a whole number of pixels apart:
        one grid's pixels are the other's, with no resampling."""
        if CRS.from_user_input(crs) != CRS.from_user_input(self.crs):
            return False
        a, b = self.transform, transform
        if any(abs(p - q) > tol * max(1.0, abs(p)) for p, q in ((a.a, b.a), (a.e, b.e), (a.b, b.b), (a.d, b.d))):
            return False
        dx, dy = (b.c - a.c) / a.a, (b.f - a.f) / a.e
        return abs(dx - round(dx)) < tol * 1e3 and abs(dy - round(dy)) < tol * 1e3

    def window_for(self, bounds: tuple[float, float, float, float]) -> Window:
        """The smallest whole-pixel window of this grid's lattice that covers ``bounds``.

        Parameters
        ----------
        bounds
            ``(left, bottom, right, top)`` in CRS units.

        Returns
        -------
        Window
            Integer offsets and sizes (pixels), at least 1×1; the window may lie partly
            or wholly outside the grid. A bound within 1e-6 pixel of a pixel edge is taken
            as on that edge, so a pixel is included only when ``bounds`` reach more than
            that into it (bounds through pixel centres include those pixels).
        """
        t = self.transform
        if t.b != 0 or t.d != 0:
            raise InputError("rotated raster grids are not supported")
        left, bottom, right, top = bounds
        inv = ~t
        cols, rows = zip(*(inv * (x, y) for x in (left, right) for y in (bottom, top)), strict=True)
        c0 = math.floor(min(cols) + _EDGE_EPS)
        r0 = math.floor(min(rows) + _EDGE_EPS)
        c1 = math.ceil(max(cols) - _EDGE_EPS)
        r1 = math.ceil(max(rows) - _EDGE_EPS)
        return Window(c0, r0, max(c1 - c0, 1), max(r1 - r0, 1))

    def overlap(self, window: Window) -> tuple[slice, slice, Window] | None:
        """Where ``window`` (pixels of this grid, may extend past it) meets the grid.

        Returns
        -------
        tuple or None
            ``(rows, cols, inner)``: the slices of ``window``'s own array that lie inside
            the grid, and the window of the grid they cover; ``None`` when they do not meet.
        """
        r0, c0 = max(window.row_off, 0), max(window.col_off, 0)
        r1 = min(window.row_off + window.height, self.height)
        c1 = min(window.col_off + window.width, self.width)
        if r1 <= r0 or c1 <= c0:
            return None
        rows = slice(r0 - window.row_off, r1 - window.row_off)
        cols = slice(c0 - window.col_off, c1 - window.col_off)
        return rows, cols, Window(c0, r0, c1 - c0, r1 - r0)

    def window(self, window: Window) -> Grid:
        """The sub-grid of ``window`` (pixels of this grid): same CRS and pixel size."""
        return Grid(
            self.crs, window_transform(window, self.transform), (window.height, window.width)
        )

    def tiles(self, block_size: int = 1024, *, align: tuple[int, int] = (1, 1)) -> list[Window]:
        """Windows of about ``block_size`` pixels a side covering the grid, row by row.

        Parameters
        ----------
        block_size
            Window side in pixels.
        align
            A file's internal block shape (rows, cols) in pixels: the window size is
            rounded down to a multiple of it (at least one block), so that no block is
            decoded by two windows.

        Returns
        -------
        list of Window
            Integer windows inside the grid; the last of a row or column is smaller when
            the grid is not a multiple of the window. For a striped file (``align`` one
            row high and the grid's width or wider), whole rows, about ``block_size``²
            pixels a window.
        """
        width, height = self.width, self.height
        ah, aw = max(1, align[0]), max(1, align[1])
        bw = max(aw, (block_size // aw) * aw) if aw < width else width
        bh = max(ah, (block_size // ah) * ah) if ah < height else height
        if ah == 1 and aw >= width:
            bw = width
            bh = max(1, min(height, (block_size * block_size) // max(width, 1)))
        return [
            Window(c, r, min(bw, width - c), min(bh, height - r))
            for r in range(0, height, bh)
            for c in range(0, width, bw)
        ]

    # ------------------------------------------------------------------ writing

    def profile(
        self, *, dtype, count: int = 1, nodata=None, always_tiled: bool = False, **creation
    ) -> dict:
        """The GeoTIFF creation profile of a raster on this grid (for ``rasterio.open``).

        :data:`~vercye_lai.io.GTIFF_PROFILE`, then ``creation`` (options given ``None``
        are left out, e.g. ``compress=None``), then this grid's size and georeferencing.

        Parameters
        ----------
        dtype, count, nodata
            Data type (any numpy spelling), number of bands, nodata value.
        always_tiled
            Keep the tiles when the grid is smaller than one tile in either direction
            (default: striped then, still compressed, since tiles larger than the raster
            only waste space).
        creation
            More creation options, e.g. ``predictor=2``.
        """
        profile = dict(GTIFF_PROFILE, **creation)
        if not always_tiled and (
            self.width < profile["blockxsize"] or self.height < profile["blockysize"]
        ):
            for k in ("tiled", "blockxsize", "blockysize"):
                profile.pop(k)
        profile = {k: v for k, v in profile.items() if v is not None}
        profile.update(
            width=self.width, height=self.height, count=count, dtype=np.dtype(dtype).name,
            crs=self.crs, transform=self.transform, nodata=nodata,
        )
        return profile
