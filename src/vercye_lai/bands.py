"""The input-stack contract: band order, storage form and the stack writer.

Every acquisition source (Earth Engine, L2A SAFE, STAC, band files) ends in the same
stack that ``predict`` reads: one raster per region and date, bands in
:data:`S2_BANDS_20M` order (or :data:`S2_BANDS_10M` for the 10 m network), reflectances as
surface reflectance factors and angles as cosines, stored as ``int16`` × 10000 with the
scale (1e-4) declared in the file and ``-32768`` as nodata.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from vercye_lai.errors import BandError
from vercye_lai.grid import Grid
from vercye_lai.io import atomic_output

#: Band order of the 20 m SL2P input stack.
S2_BANDS_20M: tuple[str, ...] = (
    "cosVZA", "cosSZA", "cosRAA", "B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12",
)
#: Band order of the 10 m SL2P input stack.
S2_BANDS_10M: tuple[str, ...] = ("cosVZA", "cosSZA", "cosRAA", "B2", "B3", "B4", "B8")
#: Band order of the Landsat 8/9 (and HLS L30) SL2P input stack: Landsat OLI numbering,
#: B3 green, B4 red, B5 NIR, B6 SWIR1, B7 SWIR2 (not Sentinel-2's B5, a red edge).
L8_BANDS: tuple[str, ...] = ("cosVZA", "cosSZA", "cosRAA", "B3", "B4", "B5", "B6", "B7")
ANGLE_BANDS = ("cosVZA", "cosSZA", "cosRAA")

STACK_DTYPE = "int16"
STACK_SCALE = 1e-4
STACK_NODATA = -32768
#: Side (pixels) of the windows the acquisition commands compute and write at a time: a
#: multiple of the 512² tiles; memory use is about 50 bytes × WINDOW_SIZE² per window.
WINDOW_SIZE = 1024

_ALIASES = {
    "cosvza": "cosVZA", "cos_vza": "cosVZA", "cosviewzenith": "cosVZA",
    "cossza": "cosSZA", "cos_sza": "cosSZA", "cossunzenith": "cosSZA",
    "cosraa": "cosRAA", "cos_raa": "cosRAA", "cosrelativeazimuth": "cosRAA",
}


def canonical_band(name: str) -> str:
    """Canonical spelling of a band name: ``'B03'`` → ``'B3'``, ``'b8a'`` → ``'B8A'``,
    ``'cos_vza'`` → ``'cosVZA'``. Unknown names are returned stripped."""
    s = name.strip()
    key = re.sub(r"[\s\-]", "", s).lower()
    if key in _ALIASES:
        return _ALIASES[key]
    m = re.fullmatch(r"(?:sr_)?b0*(\d{1,2})(a?)", key)  # SR_B5: Landsat Collection 2
    if m:
        return f"B{int(m[1])}{m[2].upper()}"
    return s


def check_band_order(
    descriptions: Sequence[str | None], expected: Sequence[str], *, path: str | Path | None = None
) -> None:
    """Check band descriptions (when the file has them) against the expected order.

    Bands without a description are not checked; a file where every band is described
    must match exactly (after :func:`canonical_band`).

    Raises
    ------
    BandError
        On a count or order mismatch, naming the first differing band.
    """
    if len(descriptions) != len(expected):
        raise BandError(
            f"has {len(descriptions)} bands, expected {len(expected)}: {', '.join(expected)}",
            path=path,
        )
    for i, (got, want) in enumerate(zip(descriptions, expected), start=1):
        if got and canonical_band(got) != want:
            got_all = [canonical_band(d) if d else "?" for d in descriptions]
            raise BandError(
                f"band {i} is {got!r} but should be {want!r}; bands must be in the order "
                f"{', '.join(expected)} (file has {', '.join(got_all)})",
                path=path,
            )


def encode_stack(data: np.ndarray) -> np.ndarray:
    """Physical values (reflectance factors, cosines; NaN = nodata) → int16 × 10000."""
    out = np.round(np.asarray(data, dtype=np.float64) / STACK_SCALE)
    bad = ~np.isfinite(out)
    out = np.clip(np.where(bad, 0, out), -32767, 32767).astype(np.int16)
    out[bad] = STACK_NODATA
    return out


def band_array(
    data: np.ndarray | Mapping[str, np.ndarray], bands: Sequence[str], *, path=None
) -> np.ndarray:
    """``(bands, rows, cols)`` array of ``data`` given as such or as band name → 2-D array.

    Raises
    ------
    BandError
        A band missing from the mapping, or an array of another shape.
    """
    if isinstance(data, Mapping):
        missing = [b for b in bands if b not in data]
        if missing:
            raise BandError(f"missing band(s) {', '.join(missing)}", path=path)
        data = np.stack([np.asarray(data[b]) for b in bands])
    data = np.asarray(data)
    if data.ndim != 3 or data.shape[0] != len(bands):
        raise BandError(f"stack must have shape ({len(bands)}, rows, cols), got {data.shape}", path=path)
    return data


class StackWriter:
    """Write an input stack window by window, atomically, in the contract's storage form.

    A context manager: on entry the GeoTIFF is created at a hidden temporary path beside
    ``dst`` (see :func:`vercye_lai.io.atomic_output`) with the band descriptions, scales,
    offsets and tags declared; :meth:`write` encodes and writes one window; on a clean exit
    the file is closed and renamed onto ``dst``, on an exception it is removed. Memory is
    bounded by the windows written, not by the stack.

    Parameters
    ----------
    dst
        Output path, conventionally ``{region}_{res}m_{date}.tif``.
    width, height
        Size of the stack in pixels.
    transform, crs
        Grid of the stack (north-up affine transform, CRS of the coordinates).
    bands
        Band names, in file order; written as band descriptions.
    tags
        Extra dataset metadata (e.g. source product, sensing time).

    Examples
    --------
    >>> with StackWriter(dst, width=w, height=h, transform=t, crs=crs) as out:  # doctest: +SKIP
    ...     for win in out.windows():
    ...         out.write(win, compute(win))
    """

    def __init__(
        self,
        dst: str | Path,
        *,
        width: int,
        height: int,
        transform: rasterio.Affine,
        crs,
        bands: Sequence[str] = S2_BANDS_20M,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.dst = Path(dst)
        self.width, self.height = int(width), int(height)
        self.transform, self.crs = transform, crs
        self.grid = Grid(crs, transform, (self.height, self.width))
        self.bands = tuple(bands)
        self.tags = dict(tags or {})
        #: Pixels written so far that are valid (not nodata) in every band.
        self.valid_pixels = 0
        self._stack: contextlib.ExitStack | None = None
        self._ds = None

    def __enter__(self) -> StackWriter:
        profile = self.grid.profile(
            dtype=STACK_DTYPE, count=len(self.bands), nodata=STACK_NODATA, predictor=2
        )
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_output(self.dst))
            ds = stack.enter_context(rasterio.open(tmp, "w", **profile))
            ds.scales = [STACK_SCALE] * len(self.bands)
            ds.offsets = [0.0] * len(self.bands)
            for i, b in enumerate(self.bands, start=1):
                ds.set_band_description(i, b)
            if self.tags:
                ds.update_tags(**{k: str(v) for k, v in self.tags.items()})
            self._ds, self._stack = ds, stack.pop_all()
        return self

    def __exit__(self, *exc) -> bool:
        stack, self._stack, self._ds = self._stack, None, None
        # closes the dataset, then renames the temporary file (or removes it on an exception)
        return bool(stack is not None and stack.__exit__(*exc))

    @property
    def block_shape(self) -> tuple[int, int]:
        """Internal block (tile or strip) shape of the file, rows × cols."""
        self._check_open()
        return self._ds.block_shapes[0]

    def windows(self, block: int | None = None) -> list[Window]:
        """Windows of about ``block``² pixels covering the stack (default ``block``:
        :data:`WINDOW_SIZE`), in write order.

        Aligned to the file's blocks so that each compressed block is written once: whole
        tiles (``block`` a side, a multiple of the tile size), or whole rows of strips for
        narrow stacks. A ``block`` smaller than one tile or strip gives unaligned windows
        of ``block`` a side (correct, but blocks are then re-compressed; for tests).
        """
        block = WINDOW_SIZE if block is None else int(block)
        bh, bw = self.block_shape
        if bw >= self.width:  # strips (or one column of tiles): whole rows
            rows = (block * block // self.width) // bh * bh
            if rows >= bh:
                return [
                    Window(0, r, self.width, min(rows, self.height - r))
                    for r in range(0, self.height, rows)
                ]
        elif block >= max(bh, bw):
            return self.grid.tiles(block, align=(bh, bw))
        return self.grid.tiles(block)

    def write(self, window: Window, data: np.ndarray | Mapping[str, np.ndarray]) -> None:
        """Encode and write one window of physical values.

        Parameters
        ----------
        window
            Where ``data`` goes, in pixels of the stack.
        data
            ``(bands, rows, cols)`` array, or a mapping band name → 2-D array, of physical
            values: reflectance factors (0–1) and cosines; NaN marks nodata (clouds, no
            data). A pixel that is NaN in any band is written as nodata in every band.
        """
        self._check_open()
        data = band_array(data, self.bands, path=self.dst)
        shape = (int(window.height), int(window.width))
        if data.shape[1:] != shape:
            raise BandError(f"window of {shape} pixels given data of {data.shape[1:]}", path=self.dst)
        # band by band: encode_stack's float64 temporaries are then one band's size
        encoded = np.empty(data.shape, dtype=STACK_DTYPE)
        for i, band in enumerate(data):
            encoded[i] = encode_stack(band)
        bad = (encoded == STACK_NODATA).any(axis=0)
        encoded[:, bad] = STACK_NODATA
        self._ds.write(encoded, window=window)
        self.valid_pixels += int(bad.size - np.count_nonzero(bad))

    def _check_open(self) -> None:
        if self._ds is None:
            raise RuntimeError("StackWriter is not open: use it in a with statement")


def write_stack(
    dst: str | Path,
    data: np.ndarray | Mapping[str, np.ndarray],
    *,
    transform: rasterio.Affine,
    crs,
    bands: Sequence[str] = S2_BANDS_20M,
    tags: Mapping[str, str] | None = None,
) -> Path:
    """Write a whole input stack atomically in the contract's storage form.

    A one-window :class:`StackWriter`; for stacks too large for memory, use that.

    Parameters
    ----------
    dst
        Output path, conventionally ``{region}_{res}m_{date}.tif``.
    data
        ``(bands, rows, cols)`` array, or a mapping band name → 2-D array, of physical
        values: reflectance factors (0–1) and cosines; NaN marks nodata (clouds, no data).
        A pixel that is NaN in any band is written as nodata in every band.
    transform, crs
        Grid of the data.
    bands
        Band names, in file order; written as band descriptions.
    tags
        Extra dataset metadata (e.g. source product, sensing time).
    """
    data = band_array(data, bands, path=dst)
    _, height, width = data.shape
    with StackWriter(
        dst, width=width, height=height, transform=transform, crs=crs, bands=bands, tags=tags
    ) as out:
        out.write(Window(0, 0, width, height), data)
    return Path(dst)
