"""A season datacube: the LAI products of a region as one ``(time, y, x)`` dataset.

``vercye-lai cube`` writes NetCDF-4 (``.nc``) or Zarr (``.zarr``) that xarray opens as
one Dataset, following the CF conventions: ``LAI`` with ``standard_name =
"leaf_area_index"``, units and ``_FillValue``; ``time`` as dates; a ``spatial_ref`` grid
mapping with the CRS (``crs_wkt``, ``spatial_ref``, ``GeoTransform``: what rioxarray reads
back); the flags (``LAI_flags``, nearest resampling), the uncertainty and the other
variables where their rasters exist; the model, source files and software version in the
attributes.

All dates are brought onto one grid: ``like`` (a raster), else the first date's, cut to
``geometry`` or ``bbox`` when given. A date on that grid (or a window of it) is copied
exactly; another is resampled (bilinear for values, nearest for flags). The cube is
written one date at a time (memory: one date of the cut grid, whatever the season's
length), atomically.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject

from vercye_lai._version import __version__
from vercye_lai.errors import InputError, LaiError, require
from vercye_lai.grid import Grid
from vercye_lai.io import (
    apply_scaling,
    atomic_output,
    band_scaling,
    open_raster,
    read_values,
    remove_stale,
    tmp_path_for,
    write_error,
)
from vercye_lai.model.sl2p import FLAG_MEANINGS, FLAG_NODATA
from vercye_lai.naming import SENSORS, find_observations, flags_path, uncertainty_path
from vercye_lai.system import default_workers

log = logging.getLogger(__name__)

FORMATS = (".nc", ".zarr")
CF_NAMES = {"LAI": ("leaf_area_index", "m2 m-2"), "FAPAR": (None, "1"), "FCOVER": (None, "1"),
            "CCC": (None, "g m-2"), "CWC": (None, "g m-2")}


@dataclass(frozen=True)
class Layer:
    """One data variable of the cube: its name, the file of each date (``None``: none),
    dtype, fill value and resampling."""

    name: str
    files: list[Path | None]
    dtype: str
    fill: float
    resampling: Resampling
    attrs: dict
    #: declare ``fill`` as ``_FillValue`` (readers then mask it, turning integers into floats);
    #: the flags keep their nodata as a flag value instead and stay integers
    masked: bool = True


def check_bbox(bbox: Sequence[float]) -> None:
    """Raise unless ``bbox`` is a lon/lat box ``(W, S, E, N)``: W < E and S < N, within
    ±180° and ±90° (N < S ended in a GDAL traceback; W > E was ignored: the whole grid)."""
    if len(bbox) != 4:
        raise InputError(f"bbox {tuple(bbox)}: give four numbers, W S E N in degrees")
    w, s, e, n = bbox
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise InputError(f"bbox {tuple(bbox)}: give W S E N in degrees, W < E (within -180..180) and S < N "
                         "(within -90..90); a box across the antimeridian is not supported")


def _cut(grid: Grid, geometry=None, bbox: Sequence[float] | None = None) -> Grid:
    """``grid`` cut to a geometry or lon/lat bbox (whole pixels)."""
    if geometry is None and bbox is None:
        return grid
    from rasterio.warp import transform_bounds

    bounds = geometry.bounds if geometry is not None else tuple(bbox)
    if geometry is None:
        check_bbox(bounds)
    met = grid.overlap(grid.window_for(transform_bounds("EPSG:4326", grid.crs, *bounds)))
    if met is None:
        raise InputError(f"the area {tuple(round(b, 4) for b in bounds)} does not overlap the LAI grid")
    return grid.window(met[2])


def _read_on(path: Path, grid: Grid, *, fill: float, dtype: str, resampling: Resampling) -> np.ndarray:
    """Band 1 of ``path`` on ``grid``: an exact window read when the grids line up, else
    resampled. A file stored as the layer is (int16 products in an int16 layer, float32 in
    float32) is copied as stored; another (int16 in a float32 layer) is read as values."""
    with open_raster(path) as ds:
        raw = np.dtype(ds.dtypes[0]) == np.dtype(dtype) and (dtype != "float32" or band_scaling(ds) == (1.0, 0.0))
        if not raw:  # values, NaN = nodata: a season that mixes storages
            fill, dtype = np.nan, "float32"
        out = np.full(grid.shape, fill, dtype=dtype)
        own = Grid.of(ds)
        t, g = ds.transform, grid.transform
        if own.crs == grid.crs and (t.a, t.b, t.d, t.e) == (g.a, g.b, g.d, g.e):
            col = (g.c - t.c) / t.a
            row = (g.f - t.f) / t.e
            if abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6:  # same pixel lattice
                from rasterio.windows import Window

                win = Window(round(col), round(row), grid.shape[1], grid.shape[0])
                if not raw:
                    return read_values(ds, window=win, boundless=True)
                data = ds.read(1, window=win, boundless=True, fill_value=fill)
                return data.astype(dtype, copy=False)
        reproject(rasterio.band(ds, 1), out, dst_transform=grid.transform, dst_crs=grid.crs,
                  dst_nodata=fill, resampling=resampling)
        return out if raw else apply_scaling(ds, out)


def _date_array(layer: Layer, i: int, grid: Grid) -> np.ndarray:
    """Date ``i`` of ``layer`` on the cube's grid (all fill where that date has no file)."""
    f = layer.files[i]
    if f is None:
        return np.full(grid.shape, layer.fill, layer.dtype)
    return _read_on(f, grid, fill=layer.fill, dtype=layer.dtype, resampling=layer.resampling)


def _dates(layers: Sequence[Layer], n: int, grid: Grid, workers: int) -> Iterator[dict[str, np.ndarray]]:
    """Each date's arrays (layer name → array), in order, read ahead on ``workers`` threads
    while the caller writes (GDAL's decoding releases the GIL): at most ``workers + 1`` dates
    in memory, whatever the season's length."""
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="cube-read") as pool:
        ahead: deque = deque()
        for i in range(n):
            ahead.append({layer.name: pool.submit(_date_array, layer, i, grid) for layer in layers})
            if len(ahead) > workers:
                yield {k: f.result() for k, f in ahead.popleft().items()}
        while ahead:
            yield {k: f.result() for k, f in ahead.popleft().items()}


def _spatial_ref(grid: Grid) -> dict:
    t = grid.transform
    wkt = grid.crs.to_wkt()
    return {"crs_wkt": wkt, "spatial_ref": wkt, "GeoTransform": f"{t.c} {t.a} {t.b} {t.f} {t.d} {t.e}",
            "epsg_code": str(grid.crs.to_epsg() or "")}


def _layers(obs: dict, variables: Sequence[str], lai_dir: Path, region: str, resolution: float,
            sensors: Sequence[str], start, end) -> list[Layer]:
    keys = list(obs)
    layers = []
    for var in variables:
        if var == variables[0]:
            files = [obs[k] for k in keys]
        else:
            other = find_observations(lai_dir, region, resolution, sensors=sensors, suffix=var,
                                      extensions=(".tif",), start=start, end=end)
            files = [other.get(k) for k in keys]
        std, units = CF_NAMES.get(var, (None, ""))
        attrs = {"long_name": f"{var} (SL2P)", "units": units, "grid_mapping": "spatial_ref"}
        if std:
            attrs["standard_name"] = std
        layers.append(_value_layer(var, files, attrs))
        flags = [flags_path(f) if f is not None and flags_path(f).exists() else None for f in files]
        if any(flags):
            layers.append(Layer(f"{var}_flags", flags, "uint8", FLAG_NODATA, Resampling.nearest, {
                "long_name": f"{var} quality flags (SNAP bits)", "grid_mapping": "spatial_ref",
                "flag_masks": np.array(list(FLAG_MEANINGS), dtype=np.uint8),
                "flag_meanings": " ".join(v.lower() for v in FLAG_MEANINGS.values()),
                "comment": f"{FLAG_NODATA} = no data (the input pixel was nodata)",
                "nodata": np.uint8(FLAG_NODATA)}, masked=False))
        unc = [uncertainty_path(f) if f is not None and uncertainty_path(f).exists() else None for f in files]
        if any(unc):
            layers.append(_value_layer(f"{var}_uncertainty", unc, {
                "long_name": f"{var} uncertainty (LEAF error network)", "units": units,
                "grid_mapping": "spatial_ref"}))
    return layers


def _value_layer(name: str, files: list[Path | None], attrs: dict) -> Layer:
    """The layer of a variable's (or its uncertainty's) products: int16 with CF ``scale_factor``
    and ``add_offset`` when every date is stored so with one scale (``predict --dtype int16``:
    the cube stays as small), else float32 values."""
    scalings = set()
    for f in files:
        if f is not None:
            with open_raster(f) as ds:
                scalings.add((ds.dtypes[0], ds.nodata, band_scaling(ds)))
    if len(scalings) == 1 and (only := scalings.pop())[0] == "int16" and only[1] is not None:
        scale, offset = only[2]
        return Layer(name, files, "int16", only[1], Resampling.bilinear,
                     {**attrs, "scale_factor": np.float32(scale), "add_offset": np.float32(offset)})
    return Layer(name, files, "float32", np.nan, Resampling.bilinear, attrs)


def build_cube(
    lai_dir: str | Path,
    out: str | Path,
    *,
    region: str,
    resolution: float = 20,
    start: dt.date | None = None,
    end: dt.date | None = None,
    geometry=None,
    bbox: Sequence[float] | None = None,
    like: str | Path | None = None,
    variables: Sequence[str] = ("LAI",),
    sensors: Sequence[str] = SENSORS,
    chunk: int = 512,
    codec: str = "zlib",
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the season cube of ``region`` (see the module docstring).

    Parameters
    ----------
    out
        ``….nc`` (NetCDF-4, needs netCDF4) or ``….zarr`` (Zarr format 2 with consolidated
        metadata, which every Zarr reader opens; needs xarray and zarr).
    geometry, bbox
        Cut the grid to a shapely geometry or a ``(west, south, east, north)`` box, both
        EPSG:4326.
    like
        A raster whose grid the cube takes (default: the first date's).
    chunk
        Spatial chunk side (pixels); the time chunk is one date.
    codec
        NetCDF only: ``zlib`` (every reader) or ``zstd`` (faster; readers need netCDF-C ≥
        4.9's filter plugins: see :data:`NETCDF_CODECS`). Zarr: Blosc LZ4.
    workers
        Threads reading dates ahead and deflating NetCDF chunks (default: the cores
        available); memory holds ``workers + 1`` dates.

    Raises
    ------
    NoDataFoundError
        No LAI product of the region in the range.
    InputError
        An unknown output format or an area off the grid.
    DependencyError
        netCDF4 / xarray / zarr missing (the ``cube`` extra).
    """
    out = Path(out)
    if codec not in NETCDF_CODECS:
        raise InputError(f"codec {codec!r} is not allowed; allowed values: {', '.join(NETCDF_CODECS)}")
    if not (isinstance(chunk, int) and chunk > 0):
        raise InputError(f"chunk: a positive number of pixels, not {chunk!r}")
    if bbox is not None:
        check_bbox(bbox)
    workers = workers or default_workers()
    if out.suffix.lower() not in FORMATS:
        raise InputError("the cube's name must end in .nc (NetCDF-4) or .zarr", path=out)
    _check_replaceable(out)
    lai_dir = Path(lai_dir)
    obs = find_observations(lai_dir, region, resolution, sensors=sensors, suffix=variables[0],
                            extensions=(".tif",), start=start, end=end)
    models = []  # each date's (a season may mix one per-unit model's units, or Landsat's)
    for path in obs.values():
        with open_raster(path) as ds:
            models.append(ds.tags().get("VERCYE_MODEL", ""))
            if len(models) == 1:  # the first date's grid, unless --like gives one
                grid = Grid.of(ds)
    if like is not None:
        with open_raster(like) as ds:
            grid = Grid.of(ds)
    grid = _cut(grid, geometry, bbox)
    layers = _layers(obs, variables, lai_dir, region, resolution, sensors, start, end)
    days = [k[0] for k in obs]
    meta = {
        "Conventions": "CF-1.8", "title": f"vercye-lai LAI season cube of {region}",
        "source": f"vercye-lai {__version__}", "region": region,
        "model": ",".join(dict.fromkeys(m for m in models if m)),
        "models": ",".join(models),
        "source_files": ",".join(p.name for p in obs.values()),
        "sensors": ",".join(k[1] for k in obs),
        "history": f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} vercye-lai cube",
    }
    writer = _write_netcdf if out.suffix.lower() == ".nc" else _write_zarr
    writer(out, grid, days, [k[1] for k in obs], layers, meta, chunk, progress, workers=workers, codec=codec)
    log.info("%s: %d date(s) of %d x %d px, %s", out.name, len(days), grid.shape[1], grid.shape[0],
             ", ".join(layer.name for layer in layers))
    return out


def _coords(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    t = grid.transform
    h, w = grid.shape
    return t.c + t.a * (np.arange(w) + 0.5), t.f + t.e * (np.arange(h) + 0.5)


def _coord_attrs(grid: Grid, axis: str) -> dict[str, str]:
    """CF attributes of the ``x`` or ``y`` coordinate (pixel centres)."""
    return {"standard_name": f"projection_{axis}_coordinate", "axis": axis.upper(),
            "units": "m" if grid.crs.is_projected else "degrees"}


#: NetCDF codecs: ``zlib`` (deflate + shuffle, what every NetCDF-4 reader opens; its chunks
#: compressed on every core here) and ``zstd``, fast, which needs netCDF-C ≥ 4.9's filter
#: plugins in the reader (netCDF4-python wheels ≥ 1.6 and recent GDAL have them; h5py needs
#: ``hdf5plugin``; older readers cannot decode the data). Not ``blosc_lz4``: netCDF-C's Blosc
#: filter fails the write on a chunk it cannot compress ("Buffer is uncompressible").
NETCDF_CODECS = {"zlib": {"zlib": True, "complevel": 1, "shuffle": True},
                 "zstd": {"compression": "zstd", "complevel": 1, "shuffle": True}}


def _write_netcdf(out: Path, grid: Grid, days, sensors, layers, meta, chunk, progress, *, workers: int = 1,
                  codec: str = "zlib") -> None:
    netCDF4 = require("netCDF4", "cube")
    h, w = grid.shape
    xs, ys = _coords(grid)
    cs = (1, min(chunk, h), min(chunk, w))
    epoch = dt.date(1970, 1, 1)
    with atomic_output(out) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.setncatts(meta)
            nc.createDimension("time", len(days))
            nc.createDimension("y", h)
            nc.createDimension("x", w)
            tv = nc.createVariable("time", "i4", ("time",))
            tv.setncatts({"standard_name": "time", "units": "days since 1970-01-01", "calendar": "standard"})
            tv[:] = [(day - epoch).days for day in days]
            for name, vals in (("x", xs), ("y", ys)):
                v = nc.createVariable(name, "f8", (name,))
                v[:] = vals
                v.setncatts(_coord_attrs(grid, name))
            sv = nc.createVariable("sensor", str, ("time",))
            sv.long_name = "sensor of each date's product"
            for i, sensor in enumerate(sensors):
                sv[i] = sensor
            ref = nc.createVariable("spatial_ref", "i4")
            ref.setncatts(_spatial_ref(grid))
            data = {}
            for layer in layers:
                fill = np.array(layer.fill, dtype=layer.dtype) if layer.masked else False
                v = nc.createVariable(layer.name, layer.dtype, ("time", "y", "x"), chunksizes=cs, fill_value=fill,
                                      **NETCDF_CODECS[codec])
                v.setncatts({**layer.attrs, "coordinates": "sensor"})  # the sensor is a coordinate of time
                v.set_auto_scale(False)  # int16 layers are written as stored; readers apply scale_factor
                data[layer.name] = v
            if codec != "zlib":  # a fast codec: netCDF-C writes at the speed of the reads
                for i, arrays in enumerate(_dates(layers, len(days), grid, workers)):
                    for name, a in arrays.items():
                        data[name][i] = a
                    if progress:
                        progress(i + 1, len(days))
                return
        # zlib is the slow part: the chunks are deflated on every core and written as they are
        h5py = require("h5py", "cube")
        with h5py.File(tmp, "r+") as h5, ThreadPoolExecutor(max(1, workers), thread_name_prefix="cube-zlib") as pool:
            for i, arrays in enumerate(_dates(layers, len(days), grid, workers)):
                for layer in layers:
                    _write_deflated(h5[layer.name], i, arrays[layer.name], cs[1:], layer.fill, pool)
                if progress:
                    progress(i + 1, len(days))


def _write_deflated(dset, i: int, array: np.ndarray, chunk: tuple[int, int], fill, pool: ThreadPoolExecutor) -> None:
    """Write date ``i`` of a NetCDF-4 variable chunk by chunk, each shuffled and deflated (level
    1) as netCDF-C would (HDF5's shuffle then deflate filters), the chunks compressed on the
    pool's threads (zlib releases the GIL). Edge chunks are padded with ``fill``, as HDF5 stores
    them."""
    h, w = array.shape
    ch, cw = chunk
    size = array.dtype.itemsize

    def pack(corner: tuple[int, int]) -> tuple[tuple[int, int], bytes]:
        r, c = corner
        part = array[r:r + ch, c:c + cw]
        if part.shape != (ch, cw):
            part = np.pad(part, ((0, ch - part.shape[0]), (0, cw - part.shape[1])), constant_values=fill)
        raw = np.ascontiguousarray(part).view(np.uint8).reshape(-1, size).T.tobytes()  # HDF5's byte shuffle
        return corner, zlib.compress(raw, 1)

    corners = [(r, c) for r in range(0, h, ch) for c in range(0, w, cw)]
    for (r, c), packed in pool.map(pack, corners):
        dset.id.write_direct_chunk((i, r, c), packed)


def _plain(value):
    """An attribute value as JSON has it (numpy scalars and arrays to Python)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_zarr(out: Path, grid: Grid, days, sensors, layers, meta, chunk, progress, *, workers: int = 1,
                codec: str = "zlib") -> None:
    """Zarr format 2 with consolidated metadata, written with zarr itself (xarray's per-date
    append and its imports cost more than the writes): the layout xarray writes — CF attributes,
    ``_ARRAY_DIMENSIONS``, ``time`` as days since 1970, ``sensor`` a coordinate of time,
    ``spatial_ref`` the grid mapping — Blosc LZ4 chunks compressed on zarr's threads."""
    zarr = require("zarr", "cube")
    numcodecs = require("numcodecs", "cube")
    h, w = grid.shape
    xs, ys = _coords(grid)
    blosc = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    epoch = dt.date(1970, 1, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out.parent, f"{out.name}.")
    tmp = tmp_path_for(out)
    tmp.unlink()
    try:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        root.attrs.update({k: _plain(v) for k, v in meta.items()})

        def array(name, dims, values=None, **kw):
            attrs = {"_ARRAY_DIMENSIONS": list(dims), **{k: _plain(v) for k, v in kw.pop("attrs", {}).items()}}
            a = root.create_array(name, attributes=attrs, **kw)
            if values is not None:
                a[...] = values
            return a

        array("time", ["time"], np.array([(d - epoch).days for d in days], np.int32), shape=(len(days),),
              dtype="int32", fill_value=None,
              attrs={"standard_name": "time", "units": "days since 1970-01-01", "calendar": "standard"})
        array("y", ["y"], ys, shape=(h,), dtype="float64", fill_value=None, attrs=_coord_attrs(grid, "y"))
        array("x", ["x"], xs, shape=(w,), dtype="float64", fill_value=None, attrs=_coord_attrs(grid, "x"))
        array("sensor", ["time"], np.array(sensors, dtype=object), shape=(len(days),), dtype=str, fill_value=None,
              attrs={"long_name": "sensor of each date's product"})
        array("spatial_ref", [], np.int32(0), shape=(), dtype="int32", fill_value=None, attrs=_spatial_ref(grid))
        data = {layer.name: array(layer.name, ["time", "y", "x"], shape=(len(days), h, w),
                                  chunks=(1, min(chunk, h), min(chunk, w)), dtype=layer.dtype,
                                  fill_value=layer.fill if layer.masked else None, compressors=blosc,
                                  attrs={**layer.attrs, "coordinates": "sensor"})
                for layer in layers}
        for i, read in enumerate(_dates(layers, len(days), grid, workers)):
            for name, a in read.items():
                data[name][i] = a
            if progress:
                progress(i + 1, len(days))
        zarr.consolidate_metadata(str(tmp), zarr_format=2)
        trash = None
        if out.exists():  # replace the old cube only once the new one is whole
            trash = tmp_path_for(out)
            trash.unlink()
            os.replace(out, trash)
        os.replace(tmp, out)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException as exc:
        error = write_error(exc, out) if isinstance(exc, OSError) and not isinstance(exc, LaiError) else None
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp, ignore_errors=True)
        if error is not None and error is not exc:  # a full disk, a permission: said naming the cube
            raise error from exc
        raise


def _head(path: Path, n: int = 8) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _check_replaceable(out: Path) -> None:
    """An existing ``out`` is replaced only when it is a cube of that format: a user's file
    or folder under the name is never renamed away."""
    if not out.exists() and not out.is_symlink():
        return
    zarr = out.suffix.lower() == ".zarr"
    if zarr:
        is_cube = out.is_dir() and any((out / m).exists() for m in (".zgroup", ".zmetadata", "zarr.json"))
    else:  # the file's signature: HDF5 (NetCDF-4) or classic NetCDF, read from its first bytes only
        is_cube = out.is_file() and _head(out).startswith((b"\x89HDF\r\n\x1a\n", b"CDF\x01", b"CDF\x02"))
    if out.is_symlink() or not is_cube:
        kind = "a folder" if out.is_dir() else "a file"
        raise InputError(f"exists and is {kind}, not a {'Zarr' if zarr else 'NetCDF'} cube: not replaced "
                         "(move it away or choose another name)", path=out)


def cube_dates(path: str | Path) -> list[dt.date]:
    """The dates of a cube written here (a convenience for tests and reports)."""
    import xarray as xr

    with xr.open_dataset(path, engine="zarr" if str(path).endswith(".zarr") else None) as ds:
        return [dt.date.fromisoformat(str(t)[:10]) for t in ds["time"].values]



