"""LAI straight from a STAC search (``vercye-lai predict-stac``, the ``stac-direct`` source of a
run): search → a lazy stack in Dask chunks → SL2P → the products of ``predict``, with no stack
written.

Per date, the items are those of ``stack-stac`` (:func:`vercye_lai.acquire.stac.search_items`,
mosaic order :func:`~vercye_lai.acquire.stac.date_order`, scaling checked against the data by
:func:`~vercye_lai.acquire.stac.item_scaling`, angles of
:func:`~vercye_lai.acquire.stac.item_angles`), and each chunk (``chunk`` pixels a side) is the
window ``stack-stac`` would write there (:class:`~vercye_lai.acquire.stac.DateItems`: the
assets read with its warp, masked, mosaicked), in the stack contract's stored form (int16 ×
1e-4, :func:`vercye_lai.stack.encode_bands`). A pixel's value does not depend on the chunk it is
read in (the warp fixes the kernel's scale and transforms exactly; odc-stac's per-chunk
reprojection did not: up to 0.04 LAI between chunk sizes in another CRS). That lazy cube goes
through :func:`vercye_lai.xarray.predict` (the kernel of ``predict``), so a pixel's LAI and flags
equal, to the bit, those of ``stack-stac`` + ``predict`` on the same grid, in any CRS and at any
resolution.

The chunks of a date are computed with a bounded number in flight (a Dask ``distributed``
client's workers, or local threads) and written by the products' one writer
(:func:`vercye_lai.predict.products.write_products`): memory is bounded by the chunks, not by
the region or the season. A date whose products are complete is skipped
(:func:`~vercye_lai.predict.products.all_complete`).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from vercye_lai import xarray as vx
from vercye_lai._version import __version__
from vercye_lai.acquire import scl as masks
from vercye_lai.acquire import stac
from vercye_lai.acquire.offset import offset_tag
from vercye_lai.acquire.platform import PLATFORM_TAG, platform_tag
from vercye_lai.acquire.source import Source
from vercye_lai.acquire.stac_search import GDAL_REMOTE_ENV, REMOTE_PREFIXES, item_time, items_by_date, search_items
from vercye_lai.acquire.warp import MADE_TAG, ThreadImages, as_resampling, geometry_to_crs, made_with, target_grid
from vercye_lai.errors import ConfigError, LaiError, NoDataFoundError, detached, require
from vercye_lai.grid import Grid
from vercye_lai.model import Network, load_error_network, load_network
from vercye_lai.model.registry import unit_members, unit_model
from vercye_lai.naming import stack_name
from vercye_lai.options import setting
from vercye_lai.predict.file import PredictResult
from vercye_lai.predict.kernel import BlockResult, HazeTest
from vercye_lai.predict.lanes import worker_share
from vercye_lai.predict.options import PredictOptions
from vercye_lai.predict.products import (
    Prepared,
    all_complete,
    check_model,
    model_networks,
    platform_tags,
    product_paths,
    write_products,
)
from vercye_lai.predict.storage import Storage
from vercye_lai.stack import S2_BANDS_20M, STACK_NODATA, STACK_SCALE, StackScaling, encode_bands, invalid_mask

log = logging.getLogger(__name__)

#: the scaling the products' tags name (the stack contract's)
SCALING = f"stack form x {STACK_SCALE:g} (predict-stac, no stack written)"


@dataclass(frozen=True)
class Options(stac.Options):
    """The ``stac-direct`` source: the ``stac`` source's items, straight to the products."""

    chunk: int = setting(
        1024, min=64, help="Pixels a side of each Dask chunk: one block of SL2P (memory ~100 bytes x chunk^2 "
        "per item and worker).")


def geobox(grid: Grid) -> Any:
    """The odc-geo ``GeoBox`` of a :class:`~vercye_lai.grid.Grid`."""
    return require("odc.geo.geobox", "direct").GeoBox(grid.shape, grid.transform, grid.crs.to_wkt())


#: GDAL's settings while a chunk is read (on a worker thread or a Dask worker): one decoding thread
#: per read (the chunks are the parallelism: a JP2's own threads would put N² threads on N cores),
#: and one environment for the chunk's reads (:func:`~vercye_lai.acquire.stac_search.remote_env`
#: starts none of its own in it: every start of GDAL's environment resets PROJ's search paths
#: for every thread)
CHUNK_ENV = {**GDAL_REMOTE_ENV, "GDAL_NUM_THREADS": "1"}


#: a chunk's settings where every asset is a local file: GDAL's JP2 decoding on 2 threads of its own
#: costs 0.38 CPU-s of a 60 m band where its one-thread path costs 1.0 (predict-stac of a 27.5 km square,
#: 2 workers: 5.35 -> 4.2-4.65 CPU-s, measured); those threads drop their errors, but a local JP2 is
#: checked whole when opened (:func:`~vercye_lai.acquire.warp.check_whole_jp2`), and a remote one is
#: read on its reading thread (a failed range request raises there)
LOCAL_CHUNK_ENV = {**CHUNK_ENV, "GDAL_NUM_THREADS": "2"}


def _chunk_env(mosaic: stac.DateItems) -> dict[str, str]:
    """:data:`LOCAL_CHUNK_ENV` where every asset of the date is a local file, else :data:`CHUNK_ENV`."""
    hrefs = (a.get_absolute_href() or a.href for it in mosaic.items for a in it.assets.values())
    return CHUNK_ENV if any(str(h).startswith(REMOTE_PREFIXES) for h in hrefs) else LOCAL_CHUNK_ENV


def _stored_chunk(mosaic: stac.DateItems, env: Mapping[str, str], window: Window) -> np.ndarray:
    """``(11, rows, cols)`` int16 of the date's stack at ``window``: what ``stack-stac`` writes there
    (read in GDAL's ``env``, :func:`_chunk_env`)."""
    try:
        with rasterio.Env(**env):
            return encode_bands(mosaic.read(window))
    except LaiError as exc:  # it crosses to the client: our error, not distributed's bare Exception
        raise detached(exc) from None


def date_cube(items: Sequence[Any], grid: Grid, region: dict, *, when: dt.datetime, chunk: int = 1024,
              resampling: str | Resampling = "bilinear", scl_classes: Sequence[int] = masks.DEFAULT_SCL_MASK,
              cloud_buffer: int = 0, images: Callable | None = None) -> tuple[Any, dict[str, str]]:
    """One date's lazy stack: an ``xr.DataArray`` ``(band, y, x)`` int16 in the stack contract's
    stored form (bands :data:`~vercye_lai.stack.S2_BANDS_20M`, scale 1e-4 declared per band,
    nodata −32768), the date's ``items`` mosaicked in the given order; and the tags that say
    how it was made (as a stack's: items, angles, offset check, platforms).

    ``images`` opens asset hrefs, for the offset check's overview samples and the chunks (a
    :class:`~vercye_lai.acquire.warp.ThreadImages`; default: opened per read)."""
    xr = require("xarray", "direct")
    da = require("dask.array", "direct")
    dask = require("dask", "direct")
    mosaic = stac.DateItems(items, grid, region, tuple(scl_classes), as_resampling(resampling), images, cloud_buffer)
    h, w = grid.shape
    rows = [min(chunk, h - r) for r in range(0, h, chunk)]
    cols = [min(chunk, w - c) for c in range(0, w, chunk)]
    # one task per chunk: stack-stac's window, read with its warp (a pixel's value does not depend on
    # the chunk it is read in; odc-stac's per-chunk reprojection made it depend, up to 0.04 LAI)
    # the mosaic is hashed once, not once per chunk; its assets judged local or remote once, too
    read = dask.delayed(partial(_stored_chunk, mosaic, _chunk_env(mosaic)))
    blocks = [[da.from_delayed(read(Window(c, r, cw, rh)), shape=(len(S2_BANDS_20M), rh, cw), dtype=np.int16)
               for c, cw in zip(range(0, w, chunk), cols)] for r, rh in zip(range(0, h, chunk), rows)]
    data = da.block(blocks)
    gb = geobox(grid)
    coords = {"band": list(S2_BANDS_20M), "scale": ("band", np.full(len(S2_BANDS_20M), STACK_SCALE)),
              "offset": ("band", np.zeros(len(S2_BANDS_20M))), "time": np.datetime64(when.replace(tzinfo=None), "ns"),
              **require("odc.geo.xr", "direct").xr_coords(gb, always_yx=True)}
    cube = xr.DataArray(data, dims=("band", "y", "x"), coords=coords, attrs={"nodata": STACK_NODATA})
    tags = {"STAC_ITEMS": ",".join(i.id for i in items),
            "ANGLES_FROM": ",".join(sorted(mosaic.sources)),
            "SCL_MASKED": masks.scl_mask_text(scl_classes), **masks.cloud_buffer_tag(cloud_buffer),
            **platform_tag(stac.item_platform(it) for it in items),
            **offset_tag(mosaic.offset_notes)}
    return cube, tags


def chunk_windows(arr: Any) -> list[Window]:
    """The windows of a ``(…, y, x)`` Dask array's chunks."""
    rows, cols = arr.chunks[-2], arr.chunks[-1]
    r_off, c_off = np.cumsum((0, *rows[:-1])), np.cumsum((0, *cols[:-1]))
    return [Window(int(c), int(r), int(w), int(h)) for r, h in zip(r_off, rows) for c, w in zip(c_off, cols)]


class StoredArrays(NamedTuple):
    """One date's products as 2-D Dask arrays, one per network in each list (flags and
    uncertainty: empty where not made), and the valid input pixels of each chunk (one value
    per chunk)."""

    values: list[Any]
    flags: list[Any]
    uncertainty: list[Any]
    valid: Any


def _valid_pixels(block: np.ndarray) -> np.ndarray:
    """The pixels of a ``(band, y, x)`` stored block where every band has a value, as (1, 1)."""
    invalid = invalid_mask(block, (STACK_NODATA,) * block.shape[0])
    return np.array([[invalid.size - np.count_nonzero(invalid)]], dtype=np.int64)


def stored_arrays(cube: Any, products: Any, networks: Sequence[Network], stores: Sequence[Storage]) -> StoredArrays:
    """The products (:func:`vx.predict`) of one date's stored stack ``cube`` (:func:`date_cube`)
    as stored. The encoding is part of the graph, so it runs where the chunk is computed (on
    a cluster, an int16 chunk comes back at half the bytes) and the writer only writes; the
    valid pixels are counted there too, as predict counts them (whatever the options)."""
    def stored(name: str, store: Storage) -> Any:
        return products[name].data[0].map_blocks(store.encode, dtype=store.dtype)

    def made(suffix: str) -> list[tuple[str, Storage]]:
        return [(n.variable + suffix, s) for n, s in zip(networks, stores, strict=True) if n.variable + suffix in products]

    rows, cols = cube.data.chunks[1:]
    return StoredArrays([stored(n.variable, s) for n, s in zip(networks, stores, strict=True)],
                        [products[name].data[0] for name, _ in made("_flags")],
                        [stored(name, s) for name, s in made("_uncertainty")],
                        cube.data.map_blocks(_valid_pixels, drop_axis=0, chunks=((1,) * len(rows), (1,) * len(cols)),
                                             dtype=np.int64))


def computed_blocks(arrays: StoredArrays, windows: Sequence[Window], *,
                    client: Any = None, workers: int = 1) -> Iterator[BlockResult]:
    """The chunks of one date's stored products as :class:`BlockResult` s, at most
    ``workers + 1`` (``2 × workers`` on a Dask client) in flight: on ``client``
    (``distributed``) or local threads."""
    dask = require("dask", "direct")
    flat = [*arrays.values, *arrays.flags, *arrays.uncertainty, arrays.valid]
    # each chunk as the array's own task, not a slice: slices of the same chunks submitted in
    # turn made tasks of one key with different specs, which a cluster may fail or hang on
    # (dask/dask#9888). Not fused: an array's optimisation fuses its chunk's read and network
    # into a task of its own (the network ran once per product, flags and uncertainty too,
    # measured); unfused, the products of a chunk share them, and a submission only culls
    grids = [a.to_delayed(optimize_graph=False) for a in flat]
    n_cols = len(flat[0].chunks[1])  # chunk_windows runs row by row, as the grids
    index = {(w.row_off, w.col_off): divmod(k, n_cols) for k, w in enumerate(chunk_windows(flat[0]))}

    def piece(w: Window) -> list:
        i, j = index[(w.row_off, w.col_off)]
        return [g[i, j] for g in grids]

    def result(w: Window, chunks: Sequence[np.ndarray]) -> BlockResult:
        nv, nf = len(arrays.values), len(arrays.flags)
        vals, fl, unc = list(chunks[:nv]), list(chunks[nv : nv + nf]), list(chunks[nv + nf : -1])
        return BlockResult(w, vals, fl or [None] * nv, int(chunks[-1][0, 0]), unc)

    pending: collections.deque = collections.deque()
    if client is not None:
        submit = client.compute  # culls the piece's graph: its chunk's tasks, once
        gather, limit = client.gather, 2 * max(1, sum(client.nthreads().values()))
    else:  # on the threads kept across dates (:mod:`.lanes`), ``workers`` chunks at once
        share = worker_share(workers)
        submit = lambda p: share(partial(dask.compute, scheduler="sync"), *p)  # noqa: E731
        gather, limit = lambda f: f.result(), max(1, workers) + 1
    try:
        for w in windows:
            pending.append((w, submit(piece(w))))
            if len(pending) >= limit:
                w0, f = pending.popleft()
                yield result(w0, gather(f))
        while pending:
            w0, f = pending.popleft()
            yield result(w0, gather(f))
    finally:
        for _, f in pending:
            f.cancel() if hasattr(f, "cancel") else None
        if client is None:  # the chunks under way end with the date
            wait([f for _, f in pending])


def predict_date(cube: Any, grid: Grid, outputs: dict[str, Path], networks: Sequence, options: PredictOptions, *,
                 tags: dict[str, str], client: Any = None, progress: Callable | None = None) -> int:
    """Write one date's products from its lazy stored stack (:func:`date_cube`); return the
    valid input pixels."""
    products = vx.predict(cube, options=options, offset_check=False)  # checked per item already
    stores = tuple(Storage.of(options.dtype, n) for n in networks)
    arrays = stored_arrays(cube, products, networks, stores)
    a = np.full(len(S2_BANDS_20M), STACK_SCALE)
    b = np.zeros(len(S2_BANDS_20M))
    windows = chunk_windows(arrays.values[0])
    prep = Prepared(
        stored=list(networks), nodatavals=(STACK_NODATA,) * len(S2_BANDS_20M), windows=windows,
        # the stack's tags, as a stack's products carry them (its PLATFORM as VERCYE_PLATFORM)
        common_tags={"VERCYE_SOURCE": tags["STAC_ITEMS"], "VERCYE_VERSION": __version__, "VERCYE_SCALING": SCALING,
                     "VERCYE_OUT_OF_RANGE": options.out_of_range, "VERCYE_HAZE": options.haze,
                     **{k: v for k, v in tags.items() if k != PLATFORM_TAG},
                     **platform_tags(tags)},
        scaling=StackScaling(a, b, SCALING), inputs=tuple(S2_BANDS_20M),
        errors=[load_error_network(options.model, n.variable) for n in networks] if options.uncertainty else [],
        stores=stores, haze=HazeTest.of(S2_BANDS_20M, a, b, options.haze))
    blocks = computed_blocks(arrays, windows, client=client, workers=options.workers)
    return write_products(grid, outputs, networks, prep, blocks, options, progress)


def predict_stac(
    *,
    catalog: str = stac.EARTH_SEARCH,
    collection: str = "sentinel-2-l2a",
    region: str,
    geometry: Any,
    start: dt.date,
    end: dt.date,
    resolution: float,
    out_dir: str | Path,
    options: PredictOptions = PredictOptions(),
    crs: str | None = None,
    max_cloud: float | None = None,
    scl_classes: Sequence[int] = masks.DEFAULT_SCL_MASK,
    resampling: str | Resampling = "bilinear",
    cloud_buffer: int = 0,
    chunk: int = 1024,
    client: Any = None,
    on_plan: Callable[[int], None] | None = None,
    on_done: Callable[[PredictResult], None] | None = None,
) -> list[PredictResult]:
    """The products of every date of a region straight from a STAC catalogue (module docstring).

    Parameters
    ----------
    catalog, collection, max_cloud, crs, scl_classes, resampling, cloud_buffer
        As ``stack-stac`` (:func:`vercye_lai.acquire.stac.stack_stac`); the grid is the
        same: ``resolution`` m in ``crs`` (default the region's UTM zone), snapped.
    region, geometry
        The region's name (of the product files) and geometry (shapely, EPSG:4326).
    out_dir
        Folder of ``{region}_{res}m_{date}_{VAR}.tif`` (+ ``_flags``, ``_uncertainty``).
    options
        As ``predict`` (model, variables, flags, uncertainty, dtype, COG, overwrite; ``workers``:
        chunks in flight without a client). Calibration is not applied here.
    chunk
        Pixels a side of each Dask chunk.
    client
        A ``distributed.Client`` to compute the chunks on; ``None``: local threads.

    Returns
    -------
    list of PredictResult
        One per date: ``done``, ``skipped`` (complete products) or ``failed``.
    """
    if options.calibration is not None:
        raise ConfigError("predict-stac does not apply a calibration: predict from stacks, or calibrate later")
    resampling = as_resampling(resampling)
    check_model(options)
    for model in unit_members(options.model):
        inputs = tuple(load_network(model, options.variables[0]).inputs)
        if inputs != S2_BANDS_20M:
            raise ConfigError(f"predict-stac makes the 20 m Sentinel-2 inputs; model {model} takes {', '.join(inputs)}")
    items = search_items(catalog, collection=collection, geometry=geometry, start=start, end=end,
                         max_cloud=max_cloud)
    if not items:
        raise NoDataFoundError(f"no {collection} item over region {region!r} between {start} and {end}", path=catalog)
    by_date = items_by_date(items)
    if on_plan:
        on_plan(len(by_date))
    grid = target_grid(geometry, resolution, crs)
    region_geojson = geometry_to_crs(geometry, grid.crs).__geo_interface__
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for date, date_items in sorted(by_date.items()):
        name = stack_name(region, resolution, date)
        outputs = product_paths(name, out_dir, options.variables)
        t0 = time.perf_counter()
        # a per-unit model (snap-3.0): the network of the date's unit, as predict reads it from a stack
        platforms = platform_tag(stac.item_platform(it) for it in date_items).get(PLATFORM_TAG)
        date_options = dataclasses.replace(options, model=unit_model(options.model, platforms, path=name))
        networks = model_networks(date_options)
        # what sets the pixels besides the options (a stack's record of it, as stack-stac writes):
        # another cloud buffer, mask, grid, item or region makes the date again (it was kept)
        made = made_with(geometry=geometry, resolution=resolution, crs=grid.crs.to_string(),
                         scl_mask=masks.scl_mask_text(scl_classes), cloud_buffer=cloud_buffer,
                         resampling=str(resampling), items=stac.items_digest(date_items))
        if not options.overwrite and all_complete(outputs, None, networks, date_options,
                                                  made={MADE_TAG: (made, "")}):
            res = PredictResult(Path(name), list(outputs.values()), "skipped", date=date)
        else:
            date_items = stac.date_order(date_items)  # the first wins where items overlap
            # the chunks' threads keep the assets open for the date (one decoding of a JP2 per thread)
            with ThreadImages.for_threads(options.workers) as images:
                with rasterio.Env(**GDAL_REMOTE_ENV):
                    cube, tags = date_cube(date_items, grid, region_geojson, when=item_time(date_items[0]),
                                           chunk=chunk, resampling=resampling, scl_classes=scl_classes,
                                           cloud_buffer=cloud_buffer, images=images)
                tags["STAC_CATALOG"] = str(catalog)
                tags[MADE_TAG] = made
                n_valid = predict_date(cube, grid, outputs, networks, date_options, tags=tags, client=client)
            res = PredictResult(Path(name), list(outputs.values()), "done", n_valid, grid.shape[0] * grid.shape[1],
                                time.perf_counter() - t0, date=date)
            log.info("%s: products of %d item(s), %s valid px, %.1f s", name, len(date_items), f"{n_valid:,}",
                     res.seconds)
        results.append(res)
        if on_done:
            on_done(res)
    return results


# --- the ``stac-direct`` source of ``vercye-lai run`` ---------------------------------------------


def predict_region(region, options: Options, out_dir: Path, *, resolution: float,
                   predict: PredictOptions = PredictOptions(), client: Any = None,
                   **progress: Any) -> list[PredictResult]:
    """:func:`predict_stac` of a region (:class:`~vercye_lai.acquire.Region` or a run's) with the
    ``stac-direct`` options; ``progress``: ``on_plan``, ``on_done``."""
    return predict_stac(catalog=options.catalog, collection=options.collection, region=region.name,
                        geometry=region.shape(), start=region.start, end=region.end, resolution=resolution,
                        out_dir=out_dir, options=predict, crs=options.crs, max_cloud=options.max_cloud,
                        scl_classes=options.scl_mask, resampling=options.resampling,
                        cloud_buffer=options.cloud_buffer, chunk=options.chunk, client=client, **progress)


def acquire(region, options: Options, out_dir: Path, *, resolution: float, state_dir: Path,
            predict: PredictOptions = PredictOptions(), client: Any = None, **progress: Any) -> dict[dt.date, Path]:
    """The ``stac-direct`` source of a run: the products of ``region``'s dates in ``out_dir``
    (the run's LAI folder); date → its first product. A date that fails fails the region."""
    results = predict_region(region, options, out_dir, resolution=resolution, predict=predict, client=client,
                             **progress)
    return {r.date: r.outputs[0] for r in results if r.outputs}


SOURCE = Source("stac-direct", Options, acquire, in_process=True, products=True)
