"""Local Sentinel-2 L2A products (``.SAFE`` folders or their ``.zip``) → input stacks.

For each date, every tile of that date is brought onto one output grid and the first
valid pixel wins, in the order of :func:`group_by_date` (newest processing baseline, then
the larger valid share; Sentinel-2A, 2B and 2C products alike, their units in the
``PLATFORM`` tag):

Grid
    The region's bounds in the CRS of the tile that covers most of the region, snapped
    outward to a ``resolution`` grid anchored on that tile's upper-left corner (so a 20 m
    output lines up with the 20 m product pixels); pixels outside the region are nodata.
Reflectances
    The 8 bands B3, B4, B5, B6, B7, B8A, B11, B12, each from the image of the product
    whose resolution is the coarsest one finer than or equal to ``resolution`` (else the
    finest coarser one). Resampling: none when the resolutions match (nearest on the same
    grid), ``average`` when coarsening, ``bilinear`` when refining (e.g. B11 at 10 m).
    ``reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE`` from
    ``MTD_MSIL2A.xml`` (offset −1000 from baseline 04.00, absent = 0 before), checked
    against the data (:func:`checked_tile`, in the ``REFLECTANCE_OFFSET`` tag); DN 0 is
    nodata and is left out of averages.
SCL mask
    Classes in ``scl_classes`` (default :data:`~vercye_lai.acquire.scl.DEFAULT_SCL_MASK`)
    are turned into an invalid mask at the SCL's own resolution, then brought onto the
    grid: when coarsening, an output pixel is masked if any part of it is invalid;
    otherwise nearest.
Angles
    From ``MTD_TL.xml`` (see :mod:`vercye_lai.acquire.angles`), interpolated to the grid.

Memory
    The output is computed and written one window of the grid at a time
    (:data:`vercye_lai.stack.WINDOW_SIZE` pixels a side, aligned to the output's tiles):
    about 50 bytes × window pixels, whatever the region's size. Each window reads only
    the source pixels around it, so its values equal those of the whole grid computed at
    once (see :class:`DateMosaic`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from vercye_lai.acquire import scl as masks
from vercye_lai.acquire.angles import (
    TileAngles,
    angle_cosines,
    parse_tile_angles,
)
from vercye_lai.acquire.offset import Sample, check_offset, expected_offset, offset_tag, read_sample
from vercye_lai.acquire.platform import date_order_key, platform_tag
from vercye_lai.acquire.safe_product import (  # noqa: F401 - part of this module's API
    REFLECTANCE_BANDS,
    SafeTile,
    open_safe,
)
from vercye_lai.acquire.scl import DEFAULT_SCL_MASK, scl_mask_setting
from vercye_lai.acquire.source import Source, expand_patterns
from vercye_lai.acquire.warp import (
    MADE_TAG,
    ImageCache,
    choose_resampling,
    first_valid_window,
    keep_existing,
    made_with,
    region_grid,
    warp_to_grid,
    write_windowed,
)
from vercye_lai.errors import InputError
from vercye_lai.grid import Grid
from vercye_lai.naming import stack_name
from vercye_lai.options import Options as OptionsBase
from vercye_lai.options import setting
from vercye_lai.stack import S2_BANDS_20M

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- reading


def _pick(tile: SafeTile, band: str, resolution: float) -> tuple[str, int]:
    """The image of ``band`` to use for ``resolution`` and its own resolution."""
    avail = tile.images.get(band)
    if not avail:
        raise InputError(
            f"has no {band} image (GRANULE/*/IMG_DATA/R*m/*_{band}_*m.jp2)", path=tile.source
        )
    finer = [r for r in avail if r <= resolution]
    res = max(finer) if finer else min(avail)
    if not finer:
        _say_refined(tile.source, res, resolution)
    return avail[res], res


@functools.lru_cache(maxsize=256)
def _say_refined(source: str | Path, have: int, resolution: float) -> None:
    """Once per product: its images are coarser than the stack (a SAFE of R60m bands only)."""
    log.info("%s: no image at %g m or finer; its %d m bands are resampled (bilinear) to %g m",
             Path(source).name, resolution, have, resolution)


def tile_layer(
    tile: SafeTile,
    grid: Grid,
    resolution: float,
    *,
    scl_classes: Iterable[int] = DEFAULT_SCL_MASK,
    angles: TileAngles | None = None,
    images: Callable[[str], rasterio.DatasetReader] | None = None,
    cloud_buffer: int = 0,
) -> dict[str, np.ndarray]:
    """The 11 stack bands of one tile on ``grid``: reflectances (NaN where nodata or
    masked by SCL) and angle cosines.

    Parameters
    ----------
    angles
        The tile's parsed angle grids (default: parsed from ``tile.tile_xml`` here); pass
        them when calling this for many windows of one grid.
    images
        Opens an image path (e.g. an :class:`~vercye_lai.acquire.warp.ImageCache`); default: opened per read.
    cloud_buffer
        Pixels of ``grid`` masked around SCL clouds and shadows
        (:func:`~vercye_lai.acquire.scl.masked_pixels`).
    """
    if images is None:
        images = str  # warp_to_grid opens (and closes) a path itself
    out: dict[str, np.ndarray] = {}
    for band in REFLECTANCE_BANDS:
        src, res = _pick(tile, band, resolution)
        dn = warp_to_grid(
            images(src), grid, resampling=choose_resampling(res, resolution), src_nodata=0
        )
        out[band] = (dn + tile.offsets.get(band, 0.0)) / tile.quantification
    classes = tuple(scl_classes)
    if classes:
        src, res = _pick(tile, "SCL", resolution)
        how = choose_resampling(res, resolution, categorical=True)
        masked = masks.scl_masked(  # NaN (no SCL), any invalid part of the pixel, or near a cloud
            grid, lambda g, prepare: warp_to_grid(images(src), g, resampling=how, prepare=prepare),
            classes, cloud_buffer)
        for band in REFLECTANCE_BANDS:
            out[band][masked] = np.nan
    out.update(
        angle_cosines(
            angles if angles is not None else parse_tile_angles(tile.tile_xml),
            transform=grid.transform,
            crs=grid.crs,
            shape=grid.shape,
        )
    )
    return out


def checked_tile(tile: SafeTile, images: Callable[[str], rasterio.DatasetReader] = str) -> SafeTile:
    """``tile`` with its ``BOA_ADD_OFFSET`` checked against a coarse sample of its coarsest
    B3/B4/B8A/SCL images (:func:`~vercye_lai.acquire.offset.check_offset`): dropped where
    the DNs hold it already, added where a baseline ≥ 04.00 product's DNs lack it; the
    check's note in :attr:`~SafeTile.offset_note`."""
    def sample(band: str, shape=None) -> np.ndarray:
        avail = tile.images.get(band) or {}
        if not avail:
            raise InputError(f"has no {band} image (GRANULE/*/IMG_DATA/R*m/*_{band}_*m.jp2)", path=tile.source)
        return read_sample(images(avail[max(avail)]), shape=shape, nodata=0)

    q = tile.quantification
    offset = tile.offsets.get("B4", 0.0) / q
    green = sample("B3")
    checked = check_offset(
        tile.product,
        Sample(green, sample("B4", green.shape), sample("B8A", green.shape),
               np.isin(sample("SCL", green.shape), masks.LAND_CLASSES)),
        scale=1.0 / q, offset=offset, what="BOA_ADD_OFFSET" if tile.offsets else "no BOA_ADD_OFFSET",
        expected=expected_offset(tile.baseline))
    offsets = tile.offsets
    if checked.offset != offset:
        offsets = {b: checked.offset * q for b in REFLECTANCE_BANDS}
    return dataclasses.replace(tile, offsets=offsets, offset_note=checked.note)


@dataclass
class DateMosaic:
    """The tiles of one date over a region's grid, computed one output window at a time.

    Only the tiles' metadata is held (the angle grids parsed once); :meth:`read` reads the
    source pixels of one window. A window's values equal the whole grid's values there:
    each source image is read around the window with a resampling margin, the angles are
    interpolated at the window's own pixel centres and the region is rasterised with the
    window's transform.

    Attributes
    ----------
    tiles
        Tiles of one date (first valid pixel wins, in this order); their offsets are
        checked here (:func:`checked_tile`).
    grid, region
        Output grid and the region in its CRS (see :func:`region_grid`).
    resolution
        Pixel size in metres.
    scl_classes
        SCL classes to mask (empty: no SCL masking).
    images
        Opens the image paths (an :class:`~vercye_lai.acquire.warp.ImageCache` keeps them open across windows;
        default: opened per read).
    cloud_buffer
        Pixels masked around clouds and shadows (see :func:`tile_layer`).
    """
    tiles: Sequence[SafeTile]
    grid: Grid
    region: object
    resolution: float
    scl_classes: tuple[int, ...] = DEFAULT_SCL_MASK
    images: Callable[[str], rasterio.DatasetReader] | None = None
    cloud_buffer: int = 0
    angles: list[TileAngles] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.scl_classes = tuple(self.scl_classes)
        self.tiles = [checked_tile(t, self.images or str) for t in self.tiles]
        self.angles = [parse_tile_angles(t.tile_xml) for t in self.tiles]

    def read(self, window: Window) -> dict[str, np.ndarray]:
        """Band name → float32 array of ``window``'s shape (reflectance factors, cosines;
        NaN = nodata: outside the region, no data, masked by SCL)."""
        sub = self.grid.window(window)
        layers = (lambda tile=tile, angles=angles: tile_layer(
            tile, sub, self.resolution, scl_classes=self.scl_classes, angles=angles, images=self.images,
            cloud_buffer=self.cloud_buffer)
            for tile, angles in zip(self.tiles, self.angles, strict=True))
        return first_valid_window(layers, S2_BANDS_20M, sub, self.region)


def stack_tiles(
    tiles: Sequence[SafeTile],
    geometry,
    resolution: float,
    *,
    scl_classes: Iterable[int] = DEFAULT_SCL_MASK,
    cloud_buffer: int = 0,
) -> tuple[dict[str, np.ndarray], Grid]:
    """Mosaic the tiles of one date over a region, the whole grid in memory (see
    :func:`write_date_stack` for large regions).

    Parameters
    ----------
    tiles
        Tiles of one date (first valid pixel wins, in the given order).
    geometry
        Region (shapely geometry, EPSG:4326); pixels outside are NaN.
    resolution
        Pixel size in metres.
    scl_classes
        SCL classes to mask (empty: no SCL masking).
    cloud_buffer
        Pixels masked around clouds and shadows (see :func:`tile_layer`).

    Returns
    -------
    bands, grid
        Band name → float32 array (reflectance factors, cosines; NaN = nodata), and the grid.
    """
    grid, region = region_grid(tiles, geometry, resolution)
    with ImageCache() as images:
        mosaic = DateMosaic(tiles, grid, region, resolution, tuple(scl_classes), images, cloud_buffer)
        return mosaic.read(grid.full_window), grid


# ----------------------------------------------------------------------------- driver


def _processing_time(product: str) -> str:
    return product.rsplit("_", 1)[-1]


def _acquisition(t: SafeTile) -> tuple:
    """One tile's acquisition: its reprocessings share the date, tile, unit and datatake
    start of the product name (``S2C_MSIL2A_{datatake}_N…``)."""
    parts = t.product.split("_")
    return t.date, t.tile, parts[0], parts[2] if len(parts) > 2 else t.product


def group_by_date(tiles: Iterable[SafeTile]) -> dict[dt.date, list[SafeTile]]:
    """Tiles grouped by sensing date, each date's in mosaic order
    (:func:`~vercye_lai.acquire.platform.date_order_key`: newest processing baseline, then
    the larger valid share, then the product name). Of the reprocessings of one acquisition
    (same tile, unit and datatake), the newest baseline is kept, then the one processed
    last (product name's last field); acquisitions of other units the same day are kept."""
    latest: dict[tuple, SafeTile] = {}
    for t in tiles:
        key = _acquisition(t)
        old = latest.get(key)
        if old is not None:
            keep = max(t, old, key=lambda x: (x.baseline or -1.0, _processing_time(x.product)))
            log.warning(
                "%s and %s: same tile and acquisition, using %s", old.product, t.product, keep.product
            )
            t = keep
        latest[key] = t
    out: dict[dt.date, list[SafeTile]] = {}
    for t in sorted(latest.values(), key=lambda t: (t.date, date_order_key(t.baseline, t.valid_share, t.product))):
        out.setdefault(t.date, []).append(t)
    return out


def write_date_stack(
    tiles: Sequence[SafeTile],
    geometry,
    dst: str | os.PathLike,
    resolution: float,
    *,
    scl_classes: Iterable[int] = DEFAULT_SCL_MASK,
    overwrite: bool = False,
    block: int | None = None,
    cloud_buffer: int = 0,
) -> bool:
    """Write the stack of one date's tiles to ``dst`` (see :func:`stack_tiles`), one
    output window at a time (``block`` pixels a side, default
    :data:`vercye_lai.stack.WINDOW_SIZE`): memory is bounded by the window, not the region.

    Returns
    -------
    bool
        True when written, False when ``dst`` existed and was kept.
    """
    classes = tuple(scl_classes)
    made = made_with(geometry=geometry, resolution=resolution, scl_mask=masks.scl_mask_text(classes),
                     cloud_buffer=cloud_buffer, products=sorted(t.product for t in tiles))
    if keep_existing(dst, overwrite, made):
        return False
    dst = Path(dst)
    grid, region = region_grid(tiles, geometry, resolution)
    with ImageCache() as images:
        mosaic = DateMosaic(tiles, grid, region, resolution, classes, images, cloud_buffer)
        tags = {
            "SOURCE": "vercye-lai stack-safe", MADE_TAG: made,
            "PRODUCTS": ",".join(t.product for t in tiles),
            "SENSING_TIME": min(t.sensing_time for t in tiles).isoformat(),
            "SCL_MASK": masks.scl_mask_text(classes),
            **masks.cloud_buffer_tag(cloud_buffer),
            "ANGLES": "MTD_TL.xml 5 km grids, bilinear; view angles: detector NaN-mean, mean of B3-B12",
            **platform_tag(t.platform for t in tiles),
            **offset_tag(t.offset_note for t in mosaic.tiles),
        }
        n_valid = write_windowed(dst, grid, mosaic.read, tags=tags, block=block)
    if n_valid == 0:
        log.warning("%s: no valid pixel in the region (clouds or no data)", dst.name)
    log.info("%s: %d tile(s), %d valid pixels", dst.name, len(tiles), n_valid)
    return True


def stack_safe(
    safes: Sequence[str | os.PathLike],
    geometry,
    region: str,
    resolution: float,
    out_dir: str | os.PathLike,
    *,
    scl_classes: Iterable[int] = DEFAULT_SCL_MASK,
    overwrite: bool = False,
    block: int | None = None,
    cloud_buffer: int = 0,
) -> dict[dt.date, Path]:
    """Write ``{out_dir}/{region}_{res}m_{date}.tif`` for every date of ``safes``.

    Parameters
    ----------
    safes
        L2A products (``.SAFE`` folders or ``.zip``), any dates and tiles.
    geometry
        Region (shapely geometry, EPSG:4326).
    region
        Region name for the output file names.
    resolution
        Pixel size in metres.
    out_dir
        Output folder (created).
    scl_classes
        SCL classes masked to nodata.
    overwrite
        Recompute stacks that exist (default: skip them).
    block
        Output window side in pixels (see :func:`write_date_stack`).
    cloud_buffer
        Pixels masked around clouds and shadows (see :func:`tile_layer`).

    Returns
    -------
    dict
        Date → stack path.
    """
    out = {}
    for date, tiles in group_by_date(open_safe(p) for p in safes).items():
        out[date] = Path(out_dir) / stack_name(region, resolution, date)
        write_date_stack(
            tiles, geometry, out[date], resolution, scl_classes=scl_classes, overwrite=overwrite,
            block=block, cloud_buffer=cloud_buffer,
        )
    return out


# --- the ``safe`` source of ``vercye-lai run`` (see :mod:`vercye_lai.acquire`) -------------



@dataclass(frozen=True)
class Options(OptionsBase):
    """The ``safe`` source: L2A products on disk."""
    safes: tuple[Path, ...] = setting(
        cli=None, help="L2A products (.SAFE folders or .zip files) or glob patterns of them.")
    scl_mask: tuple[int, ...] = scl_mask_setting()
    cloud_buffer: int = masks.cloud_buffer_setting()


def acquire(region, options: Options, out_dir: Path, *, resolution: float,
            state_dir: Path) -> dict[dt.date, Path]:
    """The stacks of ``region``'s dates from the products (existing stacks are kept)."""
    safes = expand_patterns(options.safes)
    out = stack_safe(safes, region.shape(), region.name, resolution, out_dir,
                     scl_classes=options.scl_mask, cloud_buffer=options.cloud_buffer)
    return {d: p for d, p in out.items() if region.start <= d <= region.end}


SOURCE = Source("safe", Options, acquire)  # stacks are clipped to the region
