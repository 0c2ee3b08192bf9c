"""Block-wise prediction of LAI (or another SL2P variable) from input stacks.

Memory is bounded by the block, never by the region: each worker thread reads one
window (aligned to the file's tiles) with its own dataset handle, runs the network on
the valid pixels and hands the result to the main thread, which writes it. GDAL and
numpy release the GIL, so threads scale on the cores. Every product is written to a
hidden temporary file and renamed when complete, so a killed run leaves nothing a rerun
would trust; a rerun skips products that are complete and newer than their input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from vercye_lai import __version__
from vercye_lai.errors import (
    ConfigError,
    DataIOError,
    DiskFullError,
    InputError,
    LaiError,
    error_text,
    gdal_reason,
)
from vercye_lai.grid import Grid
from vercye_lai.io import (
    atomic_output,
    check_utf8,
    is_whole,
    open_raster,
    remove_stale,
    tmp_path_for,
)
from vercye_lai.model import (
    DEFAULT_MODEL,
    FLAG_NAMES,
    FLAG_NODATA,
    Network,
    load_error_network,
    load_network,
)
from vercye_lai.model.registry import has_error_network
from vercye_lai.model.sl2p import OUT_OF_RANGE
from vercye_lai.naming import (  # noqa: F401 - API
    LANDSAT_SENSORS,
    SENSORS,
    RasterName,
    find_observations,
    find_rasters,
    flags_path,
    uncertainty_path,
)
from vercye_lai.options import Options, setting
from vercye_lai.stack import StackScaling, check_physical, invalid_mask, open_stack, stack_scaling  # noqa: F401
from vercye_lai.system import default_workers

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (windows done, windows total)


@dataclass
class BlockResult:
    window: Window
    values: list[np.ndarray]  # one (rows, cols) float32 array per network
    flags: list[np.ndarray | None]
    n_valid: int
    uncertainty: list[np.ndarray | None] = field(default_factory=list)  # per network, or empty


#: pixels converted to float32 at a time: bounds the per-block working memory and
#: keeps each chunk's inputs in the CPU's L2 cache (see :mod:`vercye_lai.model.sl2p`)
CHUNK_PIXELS = 1 << 13


def predict_block(
    data: np.ndarray,
    networks: Sequence[Network],
    nodatavals: Sequence[float | None],
    *,
    flags: bool = True,
    out_of_range: str = "clamp",
    errors: Sequence[Network] = (),
) -> tuple[list[np.ndarray], list[np.ndarray | None], int, list[np.ndarray]]:
    """Run the networks on one ``(bands, rows, cols)`` block of stored values.

    ``networks`` (and their ``errors`` networks, one each or none) take the stored values
    directly (see :meth:`Network.for_stored_values`). Returns float32 products (NaN =
    nodata), uint8 flag arrays (255 = input nodata) or ``None``, the number of valid input
    pixels, and the float32 uncertainty of each product (≥ 0, NaN = nodata) when
    ``errors`` are given.
    """
    _, rows, cols = data.shape
    n = rows * cols
    flat = data.reshape(data.shape[0], -1)
    invalid = invalid_mask(data, nodatavals).ravel()
    n_valid = n - int(np.count_nonzero(invalid))
    values = [np.empty(n, dtype=np.float32) for _ in networks]
    qa = [np.empty(n, dtype=np.uint8) if flags else None for _ in networks]
    unc = [np.empty(n, dtype=np.float32) for _ in errors]
    # Mostly valid blocks: run on every pixel in contiguous chunks and blank the invalid
    # ones afterwards (cheaper than gathering); sparse blocks: gather the valid pixels.
    sparse = n_valid < n // 2
    idx = np.flatnonzero(~invalid) if sparse else None
    if sparse:
        for v in (*values, *unc):
            v.fill(np.nan)
        for f in qa:
            if f is not None:
                f.fill(FLAG_NODATA)
    total = n_valid if sparse else n
    for s in range(0, total, CHUNK_PIXELS):
        sel = idx[s : s + CHUNK_PIXELS] if sparse else slice(s, s + CHUNK_PIXELS)
        x = flat[:, sel].astype(np.float32)
        for k, net in enumerate(networks):
            y, f = net.predict(x, flags=flags, out_of_range=out_of_range)
            values[k][sel] = y
            if f is not None:
                qa[k][sel] = f
        for k, err in enumerate(errors):
            unc[k][sel] = np.maximum(err.forward(x), 0.0)  # an uncertainty is never negative
    if not sparse and n_valid < n:
        for v in (*values, *unc):
            v[invalid] = np.nan
        for f in qa:
            if f is not None:
                f[invalid] = FLAG_NODATA
    shape = (rows, cols)
    return ([v.reshape(shape) for v in values], [None if f is None else f.reshape(shape) for f in qa], n_valid,
            [u.reshape(shape) for u in unc])


@dataclass
class PredictResult:
    """What :func:`predict_file` did for one input stack."""

    source: Path
    outputs: list[Path]
    status: str  # "done" | "skipped" | "failed"
    n_valid: int = 0
    n_pixels: int = 0
    seconds: float = 0.0
    error: str | None = None
    date: dt.date | None = None


#: pixels a predict part task covers on Dask (a few 1024² blocks: seconds of work each)
DEFAULT_PART_PIXELS = 4 * 1024 * 1024


def _model_names() -> tuple[str, ...]:
    from vercye_lai.model import MODELS

    return tuple(MODELS)


def _variable_names() -> tuple[str, ...]:
    from vercye_lai.model import VARIABLES

    return tuple(VARIABLES)


@dataclass(frozen=True)
class PredictOptions(Options):
    """Options shared by every date of a predict run: ``vercye-lai predict``, the run
    config's ``[predict]`` table and :func:`predict_file` (see :mod:`vercye_lai.options`)."""

    model: str = setting(
        DEFAULT_MODEL, metavar="NAME|PATH",
        help="SL2P coefficients: a bundled model (vercye-lai models), or a SNAP auxdata folder / "
        "LEAF CSV / .npz.")
    landsat_model: str = setting(
        "sl2p-l8", metavar="NAME|PATH",
        help="Network for Landsat 8/9 and HLS L30 stacks (_L8, _L9, _L30 in the file names: Landsat band "
             "numbering); --model serves Sentinel-2 and HLS S30.")
    variables: tuple[str, ...] = setting(
        ("LAI",), cli="--variable", choices=_variable_names, case_sensitive=False,
        help="Variable to predict; repeat for several (one read of the input serves all).")
    scale: float | None = setting(
        None, help="Reflectance = (DN + offset) x scale, overriding the file (L2A >= 04.00: 1e-4).")
    offset: float | None = setting(None, help="See --scale (L2A >= 04.00: -1000).")
    flags: bool = setting(
        True, help="Write SNAP-style quality bits to {..}_{VAR}_flags.tif beside each product.")
    uncertainty: bool = setting(
        False, help="Also write {..}_{VAR}_uncertainty.tif: the LEAF error network's per-pixel "
        "uncertainty, in the variable's units (sl2p, sl2p-10m).")
    calibration: Path | None = setting(
        None, metavar="FILE", exists=True,
        help="A calibration file of `vercye-lai calibrate`: the products of its variable are "
             "calibrated (method and hash in the tags).")
    out_of_range: str = setting(
        "clamp", choices=OUT_OF_RANGE,
        help="Outputs beyond the valid range + tolerance (LAI > 8.2 for SL2P: the densest canopies): "
             "clamp to the range, set to nodata, or keep the raw network output; flagged either way.")
    cog: bool = setting(
        True, help="Cloud-optimised layout with overviews (else a plain tiled GeoTIFF).")
    block_size: int = setting(
        1024, min=64,
        help="Pixels a side of each processing block (rounded to the input's tiles).")
    part_pixels: int = setting(
        DEFAULT_PART_PIXELS, min=1, cli=None,
        help="Pixels of one predict task on Dask (run config only).")
    workers: int = setting(
        default_factory=default_workers, min=1, cli=None, config=False,
        help="Threads computing blocks in parallel.")
    overwrite: bool = setting(
        False, cli=None, config=False, help="Recompute outputs that already exist.")
    #: GDAL block cache, MB: reads touch each tile once, so a small cache costs no speed
    #: (measured) and keeps the COG copy's memory flat
    gdal_cache_mb: int = setting(
        64, min=1, cli=None, config=False, help="GDAL block cache of each process, MB.")

    def __post_init__(self) -> None:
        # variables are case-insensitive and each predicted once
        object.__setattr__(self, "variables", tuple(dict.fromkeys(v.upper() for v in self.variables)))
        super().__post_init__()
        for key in ("model", "landsat_model"):
            m = str(getattr(self, key))
            if m not in _model_names() and not Path(m).suffix and "/" not in m:
                raise ConfigError(f"{key}: {m!r} is not a bundled model; allowed values: "
                                  f"{', '.join(_model_names())}, or a coefficient file/folder path")


def options_for(src: str | Path, options: PredictOptions) -> PredictOptions:
    """The options for one stack: a Landsat or HLS L30 stack (``_L8``, ``_L9``, ``_L30`` in
    its name) is predicted with ``landsat_model``; without an error network there, no
    uncertainty raster (logged); a calibration of another model is not applied (logged)."""
    try:
        sensor = RasterName.parse(src).sensor
    except InputError:
        return options
    if sensor not in LANDSAT_SENSORS or options.model == options.landsat_model:
        return options
    changes: dict[str, Any] = {"model": options.landsat_model}
    if options.uncertainty and not has_error_network(options.landsat_model):
        log.warning("%s: %s has no error network; no uncertainty raster for this %s stack",
                    Path(src).name, options.landsat_model, sensor)
        changes["uncertainty"] = False
    if options.calibration is not None:
        log.warning("%s: the calibration is for %s, not applied to this %s stack", Path(src).name,
                    options.model, sensor)
        changes["calibration"] = None
    return dataclasses.replace(options, **changes)


def product_paths(src: str | Path, out_dir: str | Path, variables: Iterable[str]) -> dict[str, Path]:
    """``{region}_{res}m_{date}_{VAR}.tif`` in ``out_dir`` for a conventionally named stack."""
    rn = RasterName.parse(src)
    if rn.suffix:
        raise InputError("looks like a product, not an input stack", path=src)
    return {v: Path(out_dir) / rn.product(v).name for v in variables}


def is_complete(product: Path, src: Path, network: Network, *, out_of_range: str = "clamp",
                calibration: str = "") -> bool:
    """True if ``product`` exists, opens, was made by ``network`` with the same handling of
    out-of-range outputs and the same calibration (its tag, :func:`calibration_tag`), and
    is newer than ``src``."""
    if not is_whole(product):  # e.g. truncated by a sync: logged there
        return False
    with rasterio.open(product) as ds:
        tags = ds.tags()
    if tags.get("VERCYE_MODEL") != network.model or tags.get("VERCYE_VARIABLE") != network.variable:
        log.info("%s: made by another model/variable; recomputing", product.name)
        return False
    # products of versions before the choice set such outputs to nodata
    if tags.get("VERCYE_OUT_OF_RANGE", "nodata") != out_of_range:
        log.info("%s: made with out_of_range=%s; recomputing", product.name,
                 tags.get("VERCYE_OUT_OF_RANGE", "nodata"))
        return False
    if tags.get("VERCYE_CALIBRATION", "") != calibration:
        log.info("%s: made with another calibration; recomputing", product.name)
        return False
    if product.stat().st_mtime < src.stat().st_mtime:
        log.info("%s: input is newer; recomputing", product.name)
        return False
    return True


def _all_complete(outputs: dict[str, Path], src: Path, networks: Sequence[Network],
                  options: PredictOptions) -> bool:
    """Every product of one stack complete (:func:`is_complete`), and its uncertainty
    raster too when asked for."""
    from vercye_lai.insitu.calibrate import calibration_tag

    cal = load_options_calibration(options)
    return all(is_complete(outputs[n.variable], src, n, out_of_range=options.out_of_range,
                           calibration=calibration_tag(cal, n.variable))
               and (not options.uncertainty or is_complete(uncertainty_path(outputs[n.variable]), src, n,
                                                           out_of_range=options.out_of_range,
                                                           calibration=calibration_tag(cal, n.variable)))
               for n in networks)


def load_options_calibration(options: PredictOptions):
    """The calibration of ``options`` (:func:`vercye_lai.insitu.calibrate.model_calibration`)."""
    from vercye_lai.insitu.calibrate import model_calibration

    return model_calibration(options.calibration, options.model)


def check_model(options: PredictOptions) -> list[Network]:
    """The networks of ``options`` (and their error networks when ``uncertainty``): a bad
    model or variable fails here, before any date."""
    networks = [load_network(options.model, v) for v in options.variables]
    if options.uncertainty:
        for v in options.variables:
            load_error_network(options.model, v)
    load_options_calibration(options)
    return networks


@contextlib.contextmanager
def _product_writer(dst: Path, src: rasterio.DatasetReader, dtype: str, nodata: float, *, cog: bool, tags: dict,
                    description: str, unit: str = "", threads: int = 1):
    """Open a tiled GeoTIFF for block writes; on success it becomes ``dst`` (as a COG)."""
    with atomic_output(dst) as final_tmp:
        scratch = tmp_path_for(dst) if cog else final_tmp
        try:
            # the COG copy compresses once; its scratch input needs no compression
            profile = Grid.of(src).profile(
                dtype=dtype, nodata=nodata, always_tiled=True,
                **({"compress": None, "zstd_level": None} if cog
                   else {"predictor": 3 if dtype == "float32" else 2}),
            )
            with rasterio.open(scratch, "w", **profile) as ds:
                ds.set_band_description(1, description)
                if unit:
                    ds.units = (unit,)
                ds.update_tags(**tags)
                yield ds
            if cog:
                rasterio.shutil.copy(
                    scratch, final_tmp, driver="COG", compress="ZSTD", level=1, blocksize=512,
                    predictor="YES", overviews="AUTO", resampling="NEAREST" if dtype == "uint8" else "AVERAGE",
                    bigtiff="IF_SAFER",
                    # the copy runs after the blocks: compress its tiles on every worker thread
                    num_threads=str(max(1, threads)),
                )
        finally:
            if cog:
                with contextlib.suppress(OSError):
                    scratch.unlink()


def _windows(ds: rasterio.DatasetReader, block_size: int) -> list[Window]:
    """The block windows of a stack: about ``block_size`` a side, aligned to its tiles."""
    return Grid.of(ds).tiles(block_size, align=ds.block_shapes[0])


def _gdal_env(options: PredictOptions) -> rasterio.Env:
    # one GDAL thread: parallelism comes from our blocks (threads) or tasks (Dask)
    return rasterio.Env(GDAL_CACHEMAX=options.gdal_cache_mb * 1024 * 1024, GDAL_NUM_THREADS=1)


@dataclass(frozen=True)
class _Prepared:
    """What every block of one stack needs: networks on stored values, nodata, windows, tags."""

    stored: list[Network]
    nodatavals: tuple
    windows: list[Window]
    common_tags: dict
    scaling: StackScaling
    inputs: tuple[str, ...]
    errors: list[Network]  # the error networks on stored values (``--uncertainty``), or none
    calibration: Any = None  # (index of its network, Calibration, day of year) or None


def _prepare(ds: rasterio.DatasetReader, src: Path, networks: Sequence[Network],
             options: PredictOptions) -> _Prepared:
    scaling = stack_scaling(ds, networks[0].inputs, scale=options.scale, offset=options.offset)
    log.debug("%s: %s", src.name, scaling.how)
    errors = [load_error_network(options.model, n.variable) for n in networks] if options.uncertainty else []
    cal = load_options_calibration(options)
    calibrated = None
    if cal is not None and cal.variable in [n.variable for n in networks]:
        day = RasterName.parse(src).date
        calibrated = ([n.variable for n in networks].index(cal.variable), cal,
                      float(day.timetuple().tm_yday) if day else None)
    return _Prepared(
        calibration=calibrated,
        stored=[n.for_stored_values(scaling.a, scaling.b) for n in networks],
        errors=[e.for_stored_values(scaling.a, scaling.b) for e in errors],
        nodatavals=tuple(ds.nodatavals),
        windows=_windows(ds, options.block_size),
        common_tags={"VERCYE_SOURCE": src.name, "VERCYE_VERSION": __version__, "VERCYE_SCALING": scaling.how,
                     "VERCYE_OUT_OF_RANGE": options.out_of_range},
        scaling=scaling,
        inputs=tuple(networks[0].inputs),
    )


def _write_products(
    ds: rasterio.DatasetReader,
    outputs: dict[str, Path],
    networks: Sequence[Network],
    prep: _Prepared,
    blocks: Iterable[BlockResult],
    options: PredictOptions,
    progress: ProgressFn | None = None,
) -> int:
    """Write block results into the products (atomically, as COGs); return the valid pixels.

    The one writer of products, whether the blocks were computed here (:func:`predict_file`)
    or read back from part files (:func:`assemble_parts`): both give identical files.
    """
    with contextlib.ExitStack() as stack:
        writers, flag_writers, unc_writers = [], [], []
        for net in networks:
            tags = {**prep.common_tags, **net.describe()}
            if prep.calibration is not None and prep.calibration[1].variable == net.variable:
                from vercye_lai.insitu.calibrate import calibration_tag

                tags["VERCYE_CALIBRATION"] = calibration_tag(prep.calibration[1], net.variable)
            dst = outputs[net.variable]
            writers.append(stack.enter_context(_product_writer(
                dst, ds, "float32", float("nan"), cog=options.cog, tags=tags,
                description=net.variable, unit=net.unit, threads=options.workers)))
            if options.flags:
                bits = "; ".join(f"{k}={v}" for k, v in FLAG_NAMES.items())
                flag_writers.append(stack.enter_context(_product_writer(
                    flags_path(dst), ds, "uint8", FLAG_NODATA, cog=options.cog,
                    tags={**tags, "VERCYE_FLAG_BITS": bits, "VERCYE_FLAG_NODATA": "255 = input nodata"},
                    description=f"{net.variable}_flags", threads=options.workers)))
            if prep.errors:
                unc_writers.append(stack.enter_context(_product_writer(
                    uncertainty_path(dst), ds, "float32", float("nan"), cog=options.cog,
                    tags={**tags, "VERCYE_UNCERTAINTY": f"LEAF error network of {net.model} {net.variable}"},
                    description=f"{net.variable}_uncertainty", unit=net.unit, threads=options.workers)))
        n_valid = 0
        for i, res in enumerate(blocks):
            for w, v in zip(writers, res.values):
                w.write(v, 1, window=res.window)
            for w, f in zip(flag_writers, res.flags):
                w.write(f, 1, window=res.window)
            for w, u in zip(unc_writers, res.uncertainty):
                w.write(u, 1, window=res.window)
            n_valid += res.n_valid
            if progress:
                progress(i + 1, len(prep.windows))
    _remove_parts(outputs)
    return n_valid


def predict_file(
    src: str | Path,
    outputs: dict[str, str | Path],
    *,
    options: PredictOptions = PredictOptions(),
    progress: ProgressFn | None = None,
) -> PredictResult:
    """Predict one or more variables for one input stack, block by block.

    Parameters
    ----------
    src
        Input stack (GeoTIFF or VRT), bands in the model's input order (see
        :mod:`vercye_lai.stack`). Any CRS; the outputs keep the input grid.
    outputs
        Variable → output path, e.g. ``{"LAI": Path(".../x_20m_2022-05-01_LAI.tif")}``
        (see :func:`product_paths`); these variables are predicted, whatever
        ``options.variables`` says.
    options
        The model (bundled name or coefficient path, see
        :func:`vercye_lai.model.load_network`), block size (pixels a side, rounded to the
        file's tiles), worker threads, scale/offset override, quality flags
        (``…_flags.tif`` beside each product), COG layout, overwrite.
    progress
        Called with (windows done, windows total) as blocks complete.

    Returns
    -------
    PredictResult
        ``status`` is ``"skipped"`` when every product was already complete.

    Raises
    ------
    LaiError
        Bad input (bands, georeferencing, unreadable blocks) or unknown model/variable.
    """
    src = check_utf8(src)
    outputs = {v: check_utf8(p) for v, p in outputs.items()}
    options = options_for(src, options)
    t0 = time.perf_counter()
    networks = [load_network(options.model, v) for v in outputs]
    if not options.overwrite and _all_complete(outputs, src, networks, options):
        return PredictResult(src, list(outputs.values()), "skipped")

    with _gdal_env(options), open_stack(src, networks[0].inputs) as ds:
        prep = _prepare(ds, src, networks, options)
        blocks = _run_blocks(src, prep.windows, prep, options)
        n_valid = _write_products(ds, outputs, networks, prep, blocks, options, progress)
        n_pixels = ds.width * ds.height
    return PredictResult(src, list(outputs.values()), "done", n_valid, n_pixels, time.perf_counter() - t0)


# --- planning: which dates of a region are to do ------------------------------------------


@dataclass(frozen=True)
class PredictUnit:
    """One date to predict: its input stack, its products and whether they are up to date
    (complete, made by the same model and variable, newer than the stack)."""

    date: dt.date
    src: Path
    outputs: dict[str, Path]
    up_to_date: bool
    sensor: str = "S2"

    @property
    def label(self) -> str:
        """The date, and the sensor when not Sentinel-2 (run summaries)."""
        return self.date.isoformat() + ("" if self.sensor == "S2" else f" {self.sensor}")


def plan_predict(stacks: Mapping[dt.date, Path], out_dir: str | Path, *,
                 options: PredictOptions = PredictOptions()) -> list[PredictUnit]:
    """The dates of ``stacks`` (date → input stack), each with its products in ``out_dir``.

    Raises
    ------
    ModelError
        Unknown model or variable (before any date).
    """
    check_model(options)
    units = []
    for d, src in stacks.items():
        o = options_for(src, options)
        outputs = product_paths(src, out_dir, o.variables)
        done = not o.overwrite and _all_complete(outputs, src, check_model(o), o)
        day, sensor = d if isinstance(d, tuple) else (d, "S2")
        units.append(PredictUnit(day, Path(src), outputs, done, sensor))
    return units


def part_key(unit: PredictUnit, options: PredictOptions) -> str:
    """Identifies a date's input file and every option that changes its parts' content."""
    s = unit.src.stat()
    o = options_for(unit.src, options)
    cal = load_options_calibration(o)
    text = repr((unit.src.name, s.st_size, s.st_mtime_ns, o.model, o.variables, o.block_size,
                 o.flags, o.scale, o.offset, o.part_pixels, o.out_of_range, o.uncertainty,
                 cal.digest() if cal else None))
    return hashlib.sha1(text.encode()).hexdigest()[:10]


# --- split predict: parts computed anywhere (Dask tasks), assembled by one task -----------

#: suffix of the hidden part files written by :func:`predict_windows_to_part`
PART_SUFFIX = ".npz"


def stack_windows(src: str | Path, *, block_size: int = PredictOptions.block_size) -> list[Window]:
    """The block windows :func:`predict_file` processes for ``src`` (to split it into tasks)."""
    with open_raster(src) as ds:
        return _windows(ds, block_size)


def part_path(outputs: dict[str, str | Path], key: str, index: int) -> Path:
    """The hidden part file ``index`` of one date's products, beside its first product.

    ``key`` identifies the input and the options (see the caller); parts of another
    key are stale and removed when the products are assembled.
    """
    first = Path(next(iter(outputs.values())))
    return first.with_name(f".{first.name}.{key}.{index:04d}{PART_SUFFIX}")


def _remove_parts(outputs: dict[str, Path]) -> None:
    """Remove every part file of these products (and temporary files of killed part writes)."""
    first = Path(next(iter(outputs.values())))
    if first.parent.is_dir():
        for p in first.parent.glob(f".{first.name}.*{PART_SUFFIX}"):
            with contextlib.suppress(OSError):
                p.unlink()
        # killed part writes, and parts held by killed finishing tasks (both ``..{name}.….part``)
        remove_stale(first.parent, f".{first.name}.")


def predict_windows_to_part(
    src: str | Path,
    part: str | Path,
    windows: Sequence[Window],
    *,
    options: PredictOptions = PredictOptions(),
) -> int:
    """Predict some block windows of ``src`` into one part file (atomically).

    The part holds, per window, the values (and flags) of every variable; one call of
    :func:`assemble_parts` later writes all parts of a date into the products. Returns
    the number of valid input pixels in these windows.
    """
    src, part = Path(src), Path(part)
    options = options_for(src, options)
    networks = [load_network(options.model, v) for v in options.variables]
    with _gdal_env(options), open_stack(src, networks[0].inputs) as ds:
        prep = _prepare(ds, src, networks, options)
        blocks = list(_run_blocks(src, windows, prep, options))
    arrays: dict[str, np.ndarray] = {}
    for i, b in enumerate(blocks):
        w = b.window
        arrays[f"w{i}"] = np.array([w.col_off, w.row_off, w.width, w.height, b.n_valid], dtype=np.int64)
        for k, v in enumerate(b.values):
            arrays[f"v{i}_{k}"] = v
        for k, f in enumerate(b.flags):
            if f is not None:
                arrays[f"f{i}_{k}"] = f
        for k, u in enumerate(b.uncertainty):
            arrays[f"u{i}_{k}"] = u
    with atomic_output(part) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, n=np.array(len(blocks)), **arrays)  # uncompressed: parts are short-lived
    return sum(b.n_valid for b in blocks)


def _read_parts(parts: Sequence[Path], n_networks: int, flags: bool,
                expected: Sequence[Window]) -> Iterable[BlockResult]:
    """The blocks stored in ``parts``; raises at the end (so no product is renamed into
    place) unless they are exactly the ``expected`` windows."""
    seen: list[tuple[int, int, int, int]] = []
    for p in parts:
        try:
            z = np.load(p)
        except (OSError, ValueError) as exc:
            raise DataIOError(f"cannot read prediction part: {exc}", path=p) from exc
        with z:
            for i in range(int(z["n"])):
                c, r, w, h, n_valid = (int(x) for x in z[f"w{i}"])
                seen.append((c, r, w, h))
                yield BlockResult(
                    Window(c, r, w, h),
                    [z[f"v{i}_{k}"] for k in range(n_networks)],
                    [z[f"f{i}_{k}"] if flags else None for k in range(n_networks)],
                    n_valid,
                    [z[f"u{i}_{k}"] for k in range(n_networks) if f"u{i}_{k}" in z],
                )
    want = [(int(w.col_off), int(w.row_off), int(w.width), int(w.height)) for w in expected]
    if sorted(seen) != sorted(want):
        raise DataIOError(f"the {len(parts)} part(s) hold {len(seen)} block(s), not the {len(want)} "
                          "blocks of the stack (parts of another block size?)", path=parts[0] if parts else None)


def assemble_parts(
    src: str | Path,
    parts: Sequence[str | Path],
    outputs: dict[str, str | Path],
    *,
    options: PredictOptions = PredictOptions(),
) -> PredictResult:
    """Write the products of one date from its part files, then remove the parts.

    Gives files identical to :func:`predict_file` with the same ``options`` (same writer,
    same blocks), provided the parts cover every window of :func:`stack_windows`.
    """
    src = Path(src)
    options = options_for(src, options)
    outputs = {v: Path(p) for v, p in outputs.items()}
    t0 = time.perf_counter()
    networks = [load_network(options.model, v) for v in outputs]
    parts = [Path(p) for p in parts]
    with _gdal_env(options), open_stack(src, networks[0].inputs) as ds:
        prep = _prepare(ds, src, networks, options)
        blocks = _read_parts(parts, len(networks), options.flags, prep.windows)
        try:
            n_valid = _write_products(ds, outputs, networks, prep, blocks, options)
        except DataIOError:
            for p in parts:  # unusable parts: a rerun computes them again
                p.unlink(missing_ok=True)
            raise
        n_pixels = ds.width * ds.height
    return PredictResult(src, list(outputs.values()), "done", n_valid, n_pixels, time.perf_counter() - t0)


def _calibrate_block(values: list[np.ndarray], data: np.ndarray, prep: _Prepared) -> None:
    """Replace the calibrated variable's values of a block by the calibration's (in place)."""
    k, cal, doy = prep.calibration
    v = values[k]
    x = None
    if cal.needs_bands:  # the physical inputs, as predict-table gives them
        x = (data.reshape(data.shape[0], -1).astype(np.float64) * prep.scaling.a[:, None]
             + prep.scaling.b[:, None])
    d = None if doy is None else np.full(v.size, doy)
    values[k] = cal.apply(v.ravel(), x, d).astype(np.float32).reshape(v.shape)


def _run_blocks(
    src: Path,
    windows: Sequence[Window],
    prep: _Prepared,
    options: PredictOptions,
) -> Iterable[BlockResult]:
    """Yield block results as they complete, with a bounded number in flight.

    Each block is checked to hold physical values first (:func:`check_physical`): a wrong
    scale fails the date instead of writing a plausible-looking product.
    """
    local = threading.local()
    handles: list[rasterio.DatasetReader] = []
    lock = threading.Lock()

    def work(window: Window) -> BlockResult:
        ds = getattr(local, "ds", None)
        if ds is None:  # one handle per thread: GDAL datasets are not thread-safe
            ds = local.ds = rasterio.open(src)
            with lock:
                handles.append(ds)
        try:
            data = ds.read(window=window)
        except rasterio.errors.RasterioIOError as exc:
            raise DataIOError(f"cannot read block {window.col_off},{window.row_off}: {gdal_reason(exc)}", path=src) from exc
        check_physical(data, prep.scaling, prep.inputs, prep.nodatavals, path=src)
        values, flags, n_valid, unc = predict_block(data, prep.stored, prep.nodatavals, flags=options.flags,
                                                    out_of_range=options.out_of_range, errors=prep.errors)
        if prep.calibration is not None:
            _calibrate_block(values, data, prep)
        return BlockResult(window, values, flags, n_valid, unc)

    workers = max(1, options.workers)
    max_in_flight = workers + 1  # bounds memory: a few blocks, whatever the region size
    pending: set[Future] = set()
    todo = iter(windows)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="predict") as pool:
            for w in todo:
                pending.add(pool.submit(work, w))
                if len(pending) >= max_in_flight:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        yield f.result()
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
    finally:
        for f in pending:
            f.cancel()
        for h in handles:
            h.close()


def predict_dir(
    s2_dir: str | Path,
    out_dir: str | Path,
    *,
    region: str,
    resolution: float = 20,
    start: dt.date | None = None,
    end: dt.date | None = None,
    options: PredictOptions = PredictOptions(),
    on_start: Callable[[dt.date, Path], None] | None = None,
    progress: ProgressFn | None = None,
    on_done: Callable[[PredictResult], None] | None = None,
) -> list[PredictResult]:
    """Predict every date of a region: ``{region}_{res}m_{date}[_{SENSOR}].{vrt,tif}`` in
    ``s2_dir`` → ``{region}_{res}m_{date}[_{SENSOR}]_{VAR}.tif`` in ``out_dir``: Sentinel-2
    stacks at ``resolution``, Landsat and HLS stacks at theirs (see :func:`options_for`).

    A date that fails (corrupt file, wrong bands) is reported in its result and the other
    dates still run; model/variable errors fail at once, before any date.

    Raises
    ------
    NoDataFoundError
        No stack for the region/resolution (and date range) in ``s2_dir``.
    ModelError
        Unknown model or variable.
    """
    check_model(options)  # fail fast on a bad model/variable, not once per date
    stacks = find_observations(s2_dir, region, resolution, sensors=SENSORS, start=start, end=end)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for i, ((date, _sensor), src) in enumerate(stacks.items()):
        disk_full = False
        if on_start:
            on_start(date, src)
        try:
            res = predict_file(
                src, product_paths(src, out_dir, options.variables), options=options, progress=progress
            )
        except (LaiError, OSError) as exc:  # an OS/GDAL error is one date's failure too
            error = error_text(exc)
            disk_full = isinstance(exc, DiskFullError)
            if disk_full:  # every later date would fail the same way
                error += f"; stopped: the {len(stacks) - i - 1} later date(s) were not attempted"
            log.error("%s", error)
            res = PredictResult(src, [], "failed", error=error)
        res.date = date
        results.append(res)
        if on_done:
            on_done(res)
        if disk_full:
            break
    return results
