"""Per-date 11-band stacks from Sentinel-2 L2A items of a STAC catalogue.

Sources
    A STAC API (pystac-client search; Earth Search by default, Microsoft Planetary
    Computer with URL signing) or a *static* catalogue (a ``catalog.json`` path or URL,
    walked with pystac and filtered here by collection, bounding box and date).

Per item
    The 8 reflectance assets are read onto the output grid with a rasterio
    ``WarpedVRT`` each (only the blocks that cover the region are read, from local
    files or over HTTP alike), converted to reflectance factors with the item's
    scale/offset (see :func:`reflectance_scaling`), masked with the SCL classes, and
    given angle bands from the granule metadata asset (``MTD_TL.xml`` angle grids,
    interpolated to the output grid) or, when an item has no such asset, from its
    mean-angle properties (said in the log).

Per date
    Items of the same UTC date (tiles, Sentinel-2 units, reprocessings) are mosaicked in
    the order of :func:`~vercye_lai.acquire.platform.date_order_key`: the newest
    ``s2:processing_baseline`` first, then the larger valid share (``100 −
    s2:nodata_pixel_percentage`` times ``100 − eo:cloud_cover``), then the id; a pixel
    comes from the first item that has a valid value for it. The mosaic is clipped to the
    region, its items' platforms (``platform``, else the id's ``S2C_``) go into the
    ``PLATFORM`` tag, and it is written
    with a :class:`vercye_lai.stack.StackWriter` as ``{region}_{res}m_{date}.tif``, one
    output window at a time (:data:`vercye_lai.stack.WINDOW_SIZE` pixels a side): memory
    is bounded by the window, not the region. The warp options fix the resampling
    kernel's scale and use an exact transformer for reprojection, so a pixel's value does
    not depend on the window (nor on the region's extent) it is computed in.

Why rasterio rather than odc-stac: the masking must happen per item *before* the
mosaic, the scale/offset rules depend on item properties that odc-stac does not read,
and odc-stac needs ``raster:bands`` dtype/nodata metadata that static catalogues often
lack. One ``WarpedVRT`` per asset does the same reprojection/windowed read with fewer
moving parts.

What an item's metadata say (asset keys, unit, mosaic order, scaling, angles) is read in
:mod:`vercye_lai.acquire._stac_items`, the catalogue side in
:mod:`vercye_lai.acquire.stac_search`; both are re-exported here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from rasterio.windows import Window

from vercye_lai.acquire import scl as masks
from vercye_lai.acquire._stac_items import (  # noqa: F401 - an item's metadata, part of this module's API
    ASSET_KEYS,
    BOA_OFFSET_DN,
    QUANTIFICATION,
    REFLECTANCE_BANDS,
    asset_keys,
    date_order,
    declared_scaling,
    item_angles,
    item_platform,
    item_scaling,
    items_digest,
    property_angles,
    reflectance_scaling,
)
from vercye_lai.acquire.angles import TileAngles, angle_cosines
from vercye_lai.acquire.offset import offset_tag
from vercye_lai.acquire.platform import platform_tag
from vercye_lai.acquire.scl import DEFAULT_SCL_MASK, scl_mask_setting
from vercye_lai.acquire.source import Source
from vercye_lai.acquire.stac_search import (  # noqa: F401 - the catalogue side, part of this module's API
    CATALOG_ALIASES,
    EARTH_SEARCH,
    GDAL_REMOTE_ENV,
    PLANETARY_COMPUTER,
    is_static,
    item_date,
    items_by_date,
    read_asset,
    read_bytes,
    search_items,
)
from vercye_lai.acquire.warp import (
    MADE_TAG,
    ImageCache,
    as_resampling,
    geometry_to_crs,
    keep_existing,
    made_with,
    target_grid,
    write_windowed,
)
from vercye_lai.errors import NoDataFoundError
from vercye_lai.grid import Grid
from vercye_lai.naming import stack_name
from vercye_lai.options import Options as OptionsBase
from vercye_lai.options import setting
from vercye_lai.stack import S2_BANDS_20M

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- loading


def item_stack(
    item: Any,
    grid: Grid,
    *,
    scl_classes: Sequence[int] = DEFAULT_SCL_MASK,
    resampling: Resampling = Resampling.bilinear,
    angles: tuple[TileAngles | dict[str, np.ndarray], str] | None = None,
    images: Callable[[str], rasterio.DatasetReader] | None = None,
    scaling: Mapping[str, tuple[float, float]] | None = None,
    cloud_buffer: int = 0,
) -> tuple[np.ndarray, str]:
    """The 11 bands of one item on ``grid`` (physical values, NaN = invalid).

    Parameters
    ----------
    grid
        Output grid, or a window of it (:meth:`~vercye_lai.grid.Grid.window`).
    angles
        :func:`item_angles` of the item (default: read here); pass it when calling this
        for many windows.
    scaling
        Band → ``(scale, offset)`` (default: :func:`reflectance_scaling`, unchecked); pass
        :func:`item_scaling`'s.
    cloud_buffer
        Pixels of ``grid`` masked around SCL clouds and shadows
        (:func:`~vercye_lai.acquire.scl.masked_pixels`).
    images
        Opens the asset hrefs (an :class:`~vercye_lai.acquire.warp.ImageCache` keeps them
        open across windows); default: opened per read.

    Returns
    -------
    tuple
        ``(bands, rows, cols)`` float32 array in :data:`~vercye_lai.stack.S2_BANDS_20M`
        order, and where the angles came from (``"granule metadata"`` or
        ``"item properties"``).
    """
    keys = asset_keys(item)
    images = images or str

    def read(band: str) -> np.ndarray:
        return read_asset(images(item.assets[keys[band]].get_absolute_href()), grid, resampling=resampling)

    scl_href = images(item.assets[keys["SCL"]].get_absolute_href())
    return item_bands(item, grid, read, lambda g, prepare: prepare(read_asset(scl_href, g, resampling=Resampling.nearest)),
                      scl_classes=scl_classes, angles=angles, scaling=scaling, cloud_buffer=cloud_buffer)


def item_bands(
    item: Any,
    grid: Grid,
    read: Callable[[str], np.ndarray],
    scl: Callable[[Grid, Callable[[np.ndarray], np.ndarray]], np.ndarray],
    *,
    scl_classes: Sequence[int] = DEFAULT_SCL_MASK,
    angles: tuple[TileAngles | dict[str, np.ndarray], str] | None = None,
    scaling: Mapping[str, tuple[float, float]] | None = None,
    cloud_buffer: int = 0,
) -> tuple[np.ndarray, str]:
    """:func:`item_stack` of assets already read: ``read(band)`` gives a reflectance asset on
    ``grid`` (float32 DN, NaN = no data), ``scl(g, prepare)`` the SCL image on ``g`` (``grid``
    or it grown by ``cloud_buffer`` pixels) through ``prepare`` (the ``fraction`` of
    :func:`~vercye_lai.acquire.scl.masked_pixels`). The one assembly of an item's 11 bands."""
    keys = asset_keys(item)
    out = np.full((len(S2_BANDS_20M), *grid.shape), np.nan, dtype=np.float32)
    for i, band in enumerate(REFLECTANCE_BANDS, start=3):
        scale, offset = scaling[band] if scaling is not None else reflectance_scaling(item, keys[band])
        out[i] = read(band) * scale + offset
    masked = masks.scl_masked(grid, scl, scl_classes, cloud_buffer)  # NaN SCL (outside the tile) is invalid
    out[:, masked] = np.nan
    geometry, source = angles if angles is not None else item_angles(item)
    if isinstance(geometry, TileAngles):
        cos = angle_cosines(geometry, transform=grid.transform, crs=grid.crs, shape=grid.shape)
    else:
        cos = geometry
    for i, band in enumerate(S2_BANDS_20M[:3]):
        out[i] = np.broadcast_to(cos[band], grid.shape)
    out[:, np.isnan(out).any(axis=0)] = np.nan
    return out, source


def mosaic_first_valid(stacks: Iterable[np.ndarray]) -> np.ndarray:
    """Per pixel, the first stack (in order) whose bands are all valid there; stacks after
    the one that completes the mosaic are not computed (``stacks`` may be a generator)."""
    result = None
    for s in stacks:
        if result is None:
            result = s.copy()
        else:
            empty = np.isnan(result).any(axis=0)
            result[:, empty] = s[:, empty]
        if not np.isnan(result).any():
            break
    if result is None:
        raise NoDataFoundError("no item to mosaic")
    return result


@dataclasses.dataclass
class DateItems:
    """The items of one date over a region's grid, mosaicked one output window at a time.

    Only the items' metadata and angle grids are held; :meth:`read` reads the assets
    around one window. Items are mosaicked in the given order (first valid pixel wins).

    Attributes
    ----------
    items
        Items of one date, in mosaic order.
    grid
        Output grid.
    region
        Region as GeoJSON in the grid's CRS; pixels it does not touch are nodata.
    scl_classes, resampling, cloud_buffer
        See :func:`item_stack`.
    images
        Opens the asset hrefs (an :class:`~vercye_lai.acquire.warp.ImageCache`).
    """

    items: Sequence[Any]
    grid: Grid
    region: dict
    scl_classes: Sequence[int] = DEFAULT_SCL_MASK
    resampling: Resampling = Resampling.bilinear
    images: Callable[[str], rasterio.DatasetReader] | None = None
    cloud_buffer: int = 0
    angles: list = dataclasses.field(init=False, repr=False)
    scalings: list = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.angles = [item_angles(it) for it in self.items]
        self.scalings = [item_scaling(it, self.images or str) for it in self.items]

    @property
    def offset_notes(self) -> list[str]:
        """What the offset check found for each item (:func:`item_scaling`)."""
        return [note for _, note in self.scalings]

    @property
    def sources(self) -> set[str]:
        """Where the angles come from (``"granule metadata"``, ``"item properties"``)."""
        return {source for _, source in self.angles}

    def read(self, window: Window) -> np.ndarray:
        """``(bands, rows, cols)`` float32 array of ``window`` (NaN = nodata)."""
        sub = self.grid.window(window)
        return region_mosaic(sub, self.region, (
            item_stack(
                it, sub, scl_classes=self.scl_classes, resampling=self.resampling,
                angles=angles, images=self.images, scaling=scaling, cloud_buffer=self.cloud_buffer,
            )[0]
            for it, angles, (scaling, _) in zip(self.items, self.angles, self.scalings, strict=True)
        ))


def region_mosaic(grid: Grid, region: dict, stacks: Iterable[np.ndarray]) -> np.ndarray:
    """:func:`mosaic_first_valid` of a date's item ``stacks`` on ``grid`` (a window), NaN where
    the pixel does not touch ``region`` (GeoJSON in the grid's CRS); a window outside the
    region computes no stack (``stacks`` may be a generator)."""
    outside = geometry_mask([region], out_shape=grid.shape, transform=grid.transform, all_touched=True)
    if outside.all():  # a window outside the region: nothing to read
        return np.full((len(S2_BANDS_20M), *grid.shape), np.nan, np.float32)
    data = mosaic_first_valid(stacks)
    data[:, outside] = np.nan
    return data


# --------------------------------------------------------------------------- driver


def stack_stac(
    *,
    catalog: str = EARTH_SEARCH,
    collection: str = "sentinel-2-l2a",
    region: str,
    geometry,
    start: dt.date,
    end: dt.date,
    resolution: float,
    out_dir: str | Path,
    crs: str | None = None,
    max_cloud: float | None = None,
    scl_classes: Sequence[int] = DEFAULT_SCL_MASK,
    resampling: str | Resampling = "bilinear",
    overwrite: bool = False,
    on_date: Callable[[dt.date, Path | None], None] | None = None,
    on_plan: Callable[[Mapping[dt.date, list[Any]]], None] | None = None,
    block: int | None = None,
    cloud_buffer: int = 0,
) -> dict[dt.date, Path]:
    """Write one 11-band stack per date with items over a region.

    Parameters
    ----------
    catalog, collection, max_cloud
        See :func:`search_items`.
    region
        Region name of the output files.
    geometry
        Region geometry, shapely, EPSG:4326; pixels outside it are nodata.
    start, end
        Inclusive date range (UTC dates).
    resolution
        Pixel size (m) of the output grid.
    out_dir
        Output folder; files ``{region}_{res}m_{date}.tif``.
    crs
        Output CRS; default: the UTM zone of the region's centroid.
    scl_classes
        SCL classes masked to nodata.
    resampling
        Resampling of the reflectances, by name or rasterio's enum (SCL always uses nearest).
    overwrite
        Rewrite dates whose output exists (default: skip them, so reruns resume).
    on_date
        Called after each date with the output path (``None`` when skipped).
    on_plan
        Called once with date → items before any reading (progress display).
    block
        Output window side in pixels (default :data:`vercye_lai.stack.WINDOW_SIZE`):
        each date is read, mosaicked and written one window at a time, so memory is
        bounded by the window, not by the region.
    cloud_buffer
        Pixels masked around SCL clouds and shadows (see :func:`item_stack`).

    Returns
    -------
    dict
        Date → stack path (written or already present).

    Raises
    ------
    NoDataFoundError
        When the catalogue has no item of ``collection`` over the region in the range.
    """
    resampling = as_resampling(resampling)
    items = search_items(
        catalog, collection=collection, geometry=geometry, start=start, end=end, max_cloud=max_cloud
    )
    if not items:
        raise NoDataFoundError(
            f"no {collection} item over region {region!r} between {start} and {end}", path=catalog
        )
    by_date = items_by_date(items)
    if on_plan:
        on_plan(by_date)
    grid = target_grid(geometry, resolution, crs)
    region_geojson = geometry_to_crs(geometry, grid.crs).__geo_interface__
    out_dir = Path(out_dir)
    written: dict[dt.date, Path] = {}
    for date, date_items in sorted(by_date.items()):
        dst = out_dir / stack_name(region, resolution, date)
        written[date] = dst
        made = made_with(geometry=geometry, resolution=resolution, crs=grid.crs.to_string(),
                         scl_mask=masks.scl_mask_text(scl_classes), cloud_buffer=cloud_buffer, resampling=resampling,
                         items=items_digest(date_items))
        if keep_existing(dst, overwrite, made):
            log.info("%s exists, skipped", dst.name)
            if on_date:
                on_date(date, None)
            continue
        date_items = date_order(date_items)  # the first wins where items overlap
        with rasterio.Env(**GDAL_REMOTE_ENV), ImageCache() as images:
            mosaic = DateItems(
                date_items, grid, region_geojson, tuple(scl_classes), resampling, images, cloud_buffer
            )
            tags = {
                "SOURCE": "STAC",
                MADE_TAG: made,
                "STAC_CATALOG": str(catalog),
                "STAC_ITEMS": ",".join(i.id for i in date_items),
                "ANGLES_FROM": ",".join(sorted(mosaic.sources)),
                "SCL_MASKED": masks.scl_mask_text(scl_classes),
                **masks.cloud_buffer_tag(cloud_buffer),
                "DATE": date.isoformat(),
                **platform_tag(item_platform(it) for it in date_items),
                **offset_tag(mosaic.offset_notes),
            }
            n_valid = write_windowed(dst, grid, mosaic.read, tags=tags, block=block)
        log.info(
            "wrote %s from %d item(s), %.0f%% valid pixels",
            dst.name,
            len(date_items),
            100 * n_valid / (grid.shape[0] * grid.shape[1]),
        )
        if on_date:
            on_date(date, dst)
    return written


# --- the ``stac`` source of ``vercye-lai run`` (see :mod:`vercye_lai.acquire`) -------------

RESAMPLINGS = ("nearest", "bilinear", "cubic", "average")


@dataclass(frozen=True)
class Options(OptionsBase):
    """The ``stac`` source: Sentinel-2 L2A items of a STAC API or static catalogue."""

    catalog: str = setting(
        "earth-search",
        help="'earth-search' (Element 84), 'planetary-computer' (signed; needs the "
        "planetary-computer package), a STAC API URL, or a static catalogue (catalog.json "
        "path or URL).")
    collection: str = setting("sentinel-2-l2a", help="STAC collection id.")
    crs: str | None = setting(
        None, default_help="UTM zone of the region", help="Output CRS, e.g. EPSG:32629.")
    max_cloud: float | None = setting(
        None, min=0, max=100, help="Skip items whose eo:cloud_cover is above this (percent).")
    scl_mask: tuple[int, ...] = scl_mask_setting()
    cloud_buffer: int = masks.cloud_buffer_setting()
    resampling: str = setting(
        "bilinear", choices=RESAMPLINGS,
        help="Resampling of the reflectance bands to the output grid (SCL always nearest).")


def acquire(region, options: Options, out_dir: Path, *, resolution: float, state_dir: Path,
            overwrite: bool = False, **progress: Any) -> dict[dt.date, Path]:
    """The stacks of ``region``'s dates from the catalogue (``progress``: ``on_plan``,
    ``on_date`` of :func:`stack_stac`)."""
    return stack_stac(catalog=options.catalog, collection=options.collection, region=region.name,
                      geometry=region.shape(), start=region.start, end=region.end,
                      resolution=resolution, out_dir=out_dir, crs=options.crs,
                      max_cloud=options.max_cloud, scl_classes=options.scl_mask,
                      resampling=Resampling[options.resampling], overwrite=overwrite,
                      cloud_buffer=options.cloud_buffer, **progress)


SOURCE = Source("stac", Options, acquire)  # stacks are clipped to the region
