"""The stack contract itself (see :mod:`vercye_lai.stack`): band order, storage form, the
writer, the reader's scaling."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from vercye_lai.errors import BandError
from vercye_lai.grid import Grid
from vercye_lai.io import atomic_output, open_raster

log = logging.getLogger(__name__)

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
    # Sentinel-2's scene classification, however spelled ('scl' was not one: no cloud mask, said at INFO)
    "scl": "SCL", "sceneclassification": "SCL", "scene_classification": "SCL",
}


def canonical_band(name: str) -> str:
    """Canonical spelling of a band name: ``'B03'`` → ``'B3'``, ``'b8a'`` → ``'B8A'``,
    ``'cos_vza'`` → ``'cosVZA'``, ``'scl'`` → ``'SCL'``. Unknown names are returned stripped."""
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


def encode_bands(data: np.ndarray) -> np.ndarray:
    """A ``(bands, rows, cols)`` array of physical values in the stack's stored form
    (:func:`encode_stack`); a pixel nodata in any band is nodata in every band."""
    # band by band: encode_stack's float64 temporaries are then one band's size
    encoded = np.empty(data.shape, dtype=STACK_DTYPE)
    for i, band in enumerate(data):
        encoded[i] = encode_stack(band)
    encoded[:, (encoded == STACK_NODATA).any(axis=0)] = STACK_NODATA
    return encoded


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
        encoded = encode_bands(data)
        self._ds.write(encoded, window=window)
        self.valid_pixels += int(np.count_nonzero(encoded[0] != STACK_NODATA))

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


# ------------------------------------------------------------------ the reader

#: EE-exported integer stacks declare no scale: every band is stored × 10000.
EE_INTEGER_SCALE = 1e-4

@dataclass(frozen=True)
class StackScaling:
    """Per-band affine map from stored values to physical values: ``x = DN · a + b``."""

    a: np.ndarray
    b: np.ndarray
    how: str


def stack_scaling(
    ds: rasterio.DatasetReader,
    inputs: Sequence[str],
    *,
    scale: float | None = None,
    offset: float | None = None,
    say: bool = True,
) -> StackScaling:
    """Decide how to turn a stack's stored values into reflectance factors and cosines
    (``say``: warn when ``scale``/``offset`` override the file's).

    In order of precedence:

    1. ``scale``/``offset`` given by the user: reflectance = (DN + offset) × scale for the
       reflectance bands (L2A baseline ≥ 04.00: offset −1000, scale 1e-4); angle bands of an
       integer stack stay × 1e-4. An offset alone keeps the scale the stack has without it
       (declared, or an integer stack's 1e-4): ``--offset 0`` reads data that hold their offset.
    2. Scales/offsets declared in the file (GDAL convention, x = DN × scale + offset).
    3. An integer stack without declared scale: an Earth Engine export, every band
       × 1e-4.
    4. A float stack: values are used as they are.
    """
    n = len(inputs)
    integer = np.issubdtype(np.dtype(ds.dtypes[0]), np.integer)
    declared = any(s != 1.0 for s in ds.scales) or any(o != 0.0 for o in ds.offsets)
    if scale is not None or offset is not None:
        o = 0.0 if offset is None else float(offset)
        if scale is not None:
            a = np.full(n, float(scale))
        else:  # only the offset: the scale the stack has without it (--offset 0 keeps an int16 stack's 1e-4)
            a = np.asarray(ds.scales, float) if declared else np.full(n, EE_INTEGER_SCALE if integer else 1.0)
        b = o * a
        refl_scales = {float(a[i]) for i, band in enumerate(inputs) if band not in ANGLE_BANDS}
        for i, band in enumerate(inputs):
            if band in ANGLE_BANDS:
                a[i], b[i] = (EE_INTEGER_SCALE if integer else 1.0), 0.0
        if declared and say:
            log.warning("%s: --scale/--offset override the scale/offset declared in the file", ds.name)
        s = f"{refl_scales.pop():g}" if len(refl_scales) == 1 else "the file's scales"
        return StackScaling(a, b, f"user: reflectance = (DN + {o:g}) * {s}")
    if declared:
        return StackScaling(np.asarray(ds.scales, float), np.asarray(ds.offsets, float), "declared in file")
    if integer:
        return StackScaling(np.full(n, EE_INTEGER_SCALE), np.zeros(n), "integer stack without scale: x 1e-4")
    return StackScaling(np.ones(n), np.zeros(n), "float stack: as stored")


def open_stack(path: str | Path, inputs: Sequence[str]) -> rasterio.DatasetReader:
    """Open an input stack and check its bands against the network's inputs."""
    ds = open_raster(path)
    try:
        check_band_order(ds.descriptions, inputs, path=path)
    except BandError:
        ds.close()
        raise
    return ds


def invalid_mask(data: np.ndarray, nodatavals: Sequence[float | None]) -> np.ndarray:
    """True where any band is nodata or NaN."""
    if len(set(nodatavals)) == 1 and np.issubdtype(data.dtype, np.integer):
        nd = nodatavals[0]
        info = np.iinfo(data.dtype)
        # the usual integer stack (nodata = the type's minimum): one reduction over the bands
        if nd == info.min:
            return data.min(axis=0) == nd
        if nd == info.max:
            return data.max(axis=0) == nd
    bad = np.zeros(data.shape[1:], dtype=bool)
    floating = np.issubdtype(data.dtype, np.floating)
    for band, nd in zip(data, nodatavals):
        if floating:
            bad |= np.isnan(band)
        if nd is not None and not np.isnan(nd):
            bad |= band == nd
    return bad
