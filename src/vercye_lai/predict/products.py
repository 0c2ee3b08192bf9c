"""A date's products: their names, when they are complete, what every block of a stack
needs (:func:`prepare`), and :func:`write_products`, which writes them all (one
:mod:`.writer` per product, with the tags that say how each was made)."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.windows import Window

from vercye_lai._version import __version__
from vercye_lai.acquire.platform import PLATFORM_TAG
from vercye_lai.errors import ConfigError, InputError
from vercye_lai.grid import Grid
from vercye_lai.io import is_whole, remove_stale
from vercye_lai.model import FLAG_NAMES, FLAG_NODATA, Network, load_error_network, load_network
from vercye_lai.model.calibration import CALIBRATED_SIGMA, Calibration, calibration_tag, model_calibration
from vercye_lai.model.registry import unit_members
from vercye_lai.model.sl2p import FLAG_CALIBRATION_OUTSIDE, FLAG_HAZE
from vercye_lai.naming import RasterName, flags_path, uncertainty_path
from vercye_lai.predict.kernel import BlockResult, HazeTest
from vercye_lai.predict.lanes import worker_threads
from vercye_lai.predict.options import PredictOptions, ProgressFn
from vercye_lai.predict.phases import NO_PHASES, Phases
from vercye_lai.predict.storage import Storage
from vercye_lai.predict.writer import product_writer
from vercye_lai.stack import L8_BANDS, StackScaling, stack_scaling

log = logging.getLogger(__name__)


def product_paths(src: str | Path, out_dir: str | Path, variables: Iterable[str]) -> dict[str, Path]:
    """``{region}_{res}m_{date}_{VAR}.tif`` in ``out_dir`` for a conventionally named stack."""
    rn = RasterName.parse(src)
    if rn.suffix:
        raise InputError("looks like a product, not an input stack", path=src)
    return {v: Path(out_dir) / rn.product(v).name for v in variables}


def is_complete(product: Path, src: Path | None, network: Network, *, out_of_range: str = "clamp",
                calibration: str = "", storage: str = "float32", made: Mapping[str, tuple[str, str]] = {},
                newer_than: float | None = None) -> bool:
    """True if ``product`` exists, opens, was made by ``network`` with the same handling of
    out-of-range outputs, the same calibration (its tag, :func:`calibration_tag`), the same
    storage (:attr:`Storage.tag`) and the same ``made`` tags (tag -> (value now, the value a
    product of an older version without the tag was made with)), and is newer than ``src``
    (``None``: no input file, as ``predict-stac`` reads none) or ``newer_than`` (a time: the
    newest of a VRT's files)."""
    if not is_whole(product):  # e.g. truncated by a sync: logged there
        return False
    with rasterio.open(product) as ds:
        tags = ds.tags()
    if tags.get("VERCYE_MODEL") != network.model or tags.get("VERCYE_VARIABLE") != network.variable:
        log.info("%s: made by another model/variable; recomputing", product.name)
        return False
    expected = {"VERCYE_OUT_OF_RANGE": (out_of_range, "nodata"),  # older versions set such outputs to nodata
                "VERCYE_CALIBRATION": (calibration, ""), "VERCYE_STORAGE": (storage, "float32"), **made}
    for tag, (now, before) in expected.items():
        if tags.get(tag, before) != now:
            log.info("%s: made with %s %s, not %s; recomputing", product.name, tag, tags.get(tag, before), now)
            return False
    newest = src.stat().st_mtime if newer_than is None and src is not None else newer_than
    if newest is not None and product.stat().st_mtime < newest:
        log.info("%s: input is newer; recomputing", product.name)
        return False
    return True


def all_complete(outputs: dict[str, Path], src: Path | None, networks: Sequence[Network],
                  options: PredictOptions, *, made: Mapping[str, tuple[str, str]] = {}) -> bool:
    """Every product of one stack complete (:func:`is_complete`): made with the options that
    set its values now (haze test; the stack's scaling: a fixed ``--offset`` makes them again;
    ``made``: more tags, tag -> (value now, an older product's value)), newer than the stack
    and, for a VRT, than every file it reads; its flags and uncertainty rasters too when asked for."""
    cal = load_options_calibration(options)
    made = {"VERCYE_HAZE": (options.haze, "mask"), **made}
    newest = None
    if src is not None:
        try:
            with rasterio.open(src) as ds:  # (a VRT's parts: a part made again makes its products again)
                made["VERCYE_SCALING"] = (stack_scaling(ds, networks[0].inputs, scale=options.scale,
                                                        offset=options.offset, say=False).how, "")
                made["VERCYE_SOURCE"] = (src.name, src.name)  # another date's product copied over it was kept
                newest = max(Path(f).stat().st_mtime for f in ds.files if Path(f).exists())
        except (rasterio.errors.RasterioIOError, OSError, ValueError):
            return False  # the stack is read (and its errors said) when the date is made
    return all(is_complete(p, src, n, out_of_range=options.out_of_range, calibration=calibration_tag(cal, n.variable),
                           storage=Storage.of(options.dtype, n).tag, made=made, newer_than=newest)
               for n in networks
               for p in (outputs[n.variable], *([flags_path(outputs[n.variable])] if options.flags else []),
                         *([uncertainty_path(outputs[n.variable])] if options.uncertainty else [])))


def load_options_calibration(options: PredictOptions) -> Calibration | None:
    """The calibration of ``options`` (:func:`vercye_lai.model.calibration.model_calibration`)."""
    return model_calibration(options.calibration, options.model)


def check_model(options: PredictOptions) -> None:
    """Fail before any date on a bad model, variable or calibration: every network of
    ``options`` (each unit's, for a per-unit model) loads, with its error network when
    ``uncertainty``."""
    for model in unit_members(options.model):
        for v in options.variables:
            load_network(model, v)
            if options.uncertainty:
                load_error_network(model, v)
    takes = tuple(load_network(options.landsat_model, options.variables[0]).inputs)
    if takes != L8_BANDS:  # each Landsat date then failed on its band count
        raise ConfigError(f"landsat_model: {options.landsat_model} takes {', '.join(takes)}, not the Landsat "
                          f"inputs {', '.join(L8_BANDS)} (sl2p-l8, or a Landsat coefficient file)")
    load_options_calibration(options)


def model_networks(options: PredictOptions) -> list[Network]:
    """The networks of ``options``' variables. A per-unit model (``snap-3.0``) is a choice made
    per stack or date from its unit (:func:`~vercye_lai.predict.options.options_for`,
    :func:`~vercye_lai.model.registry.unit_model`): given as such it raises ``ModelError``
    rather than pick one unit's network for every input."""
    return [load_network(options.model, v) for v in options.variables]


#: suffix of the hidden part files written by :func:`predict_windows_to_part`
PART_SUFFIX = ".npz"


def part_path(outputs: dict[str, str | Path], key: str, index: int) -> Path:
    """The hidden part file ``index`` of one date's products, beside its first product.

    ``key`` identifies the input and the options (see the caller); parts of another
    key are stale and removed when the products are assembled.
    """
    first = Path(next(iter(outputs.values())))
    return first.with_name(f".{first.name}.{key}.{index:04d}{PART_SUFFIX}")


def remove_parts(outputs: dict[str, Path]) -> None:
    """Remove every part file of these products (and temporary files of killed part writes)."""
    first = Path(next(iter(outputs.values())))
    if first.parent.is_dir():
        for p in first.parent.glob(f".{first.name}.*{PART_SUFFIX}"):
            with contextlib.suppress(OSError):
                p.unlink()
        # killed part writes, and parts held by killed finishing tasks (both ``..{name}.….part``)
        remove_stale(first.parent, f".{first.name}.")



def block_windows(ds: rasterio.DatasetReader, block_size: int) -> list[Window]:
    """The block windows of a stack: about ``block_size`` a side, aligned to its tiles."""
    return Grid.of(ds).tiles(block_size, align=ds.block_shapes[0])


def gdal_env(options: PredictOptions) -> rasterio.Env:
    # one GDAL thread: parallelism comes from our blocks (threads) or tasks (Dask)
    return rasterio.Env(GDAL_CACHEMAX=options.gdal_cache_mb * 1024 * 1024, GDAL_NUM_THREADS=1)


@dataclass(frozen=True)
class DateCalibration:
    """The calibration applied to one date's products: which network's output it replaces,
    and the date's day of year (``None``: the stack's name has no date)."""

    index: int
    calibration: Calibration
    doy: float | None

    @property
    def sigma(self) -> bool:
        """The calibration carries an error model: ``--uncertainty`` writes its σ."""
        return bool(self.calibration.sigma)


@dataclass(frozen=True)
class Prepared:
    """What every block of one stack needs: networks on stored values, nodata, windows, tags."""

    stored: list[Network]
    nodatavals: tuple
    windows: list[Window]
    common_tags: dict
    scaling: StackScaling
    inputs: tuple[str, ...]
    errors: list[Network]  # the error networks on stored values (``--uncertainty``), or none
    #: each product's storage (:meth:`Storage.of` its network and ``--dtype``): what gives the
    #: blocks encodes them (:func:`~vercye_lai.predict.file.run_blocks`' workers, predict-stac's
    #: graph); the writer only writes
    stores: tuple[Storage, ...]
    calibration: DateCalibration | None = None
    haze: HazeTest | None = None


def platform_tags(stack_tags: Mapping[str, str]) -> dict[str, str]:
    """The products' tag of their stack's unit(s) (its ``PLATFORM`` as ``VERCYE_PLATFORM``):
    why a per-unit model (``snap-3.0``) ran the network it names."""
    return {"VERCYE_PLATFORM": stack_tags[PLATFORM_TAG]} if PLATFORM_TAG in stack_tags else {}


def prepare(ds: rasterio.DatasetReader, src: Path, networks: Sequence[Network],
             options: PredictOptions) -> Prepared:
    scaling = stack_scaling(ds, networks[0].inputs, scale=options.scale, offset=options.offset)
    log.debug("%s: %s", src.name, scaling.how)
    errors = [load_error_network(options.model, n.variable) for n in networks] if options.uncertainty else []
    cal = load_options_calibration(options)
    calibrated = None
    if cal is not None and cal.variable in [n.variable for n in networks]:
        day = RasterName.parse(src).date
        calibrated = DateCalibration([n.variable for n in networks].index(cal.variable), cal,
                                     float(day.timetuple().tm_yday) if day else None)
    return Prepared(
        calibration=calibrated,
        haze=HazeTest.of(networks[0].inputs, scaling.a, scaling.b, options.haze),
        stored=[n.for_stored_values(scaling.a, scaling.b) for n in networks],
        errors=[e.for_stored_values(scaling.a, scaling.b) for e in errors],
        nodatavals=tuple(ds.nodatavals),
        windows=block_windows(ds, options.block_size),
        common_tags={"VERCYE_SOURCE": src.name, "VERCYE_VERSION": __version__, "VERCYE_SCALING": scaling.how,
                     "VERCYE_OUT_OF_RANGE": options.out_of_range, "VERCYE_HAZE": options.haze,
                     **platform_tags(ds.tags())},
        scaling=scaling,
        inputs=tuple(networks[0].inputs),
        stores=tuple(Storage.of(options.dtype, n) for n in networks),
    )


def uncertainty_kind(prep: Prepared, net: Network) -> str:
    """Which σ an uncertainty raster holds (its ``VERCYE_UNCERTAINTY`` tag)."""
    c = prep.calibration
    if c is not None and c.sigma and c.calibration.variable == net.variable:
        return f"{CALIBRATED_SIGMA} {calibration_tag(c.calibration, net.variable)}"
    return f"LEAF error network of {net.model} {net.variable}"


class Finishing(contextlib.AbstractContextManager):
    """Like :class:`contextlib.ExitStack` for a date's product writers, but on success their
    exits — each product's COG copy, about one core each — run side by side on the kept
    worker threads (:func:`.lanes.worker_threads`; GDAL releases the GIL), not one after
    another; on an error they run in turn, each cleaning up its temporary files."""

    def __init__(self) -> None:
        self._open: list[contextlib.AbstractContextManager] = []

    def enter_context(self, cm):
        value = cm.__enter__()
        self._open.append(cm)
        return value

    def __exit__(self, kind, exc, tb):
        cms, self._open = self._open, []
        if kind is not None or len(cms) < 2:
            stack = contextlib.ExitStack()
            for cm in cms:
                stack.push(cm)
            return stack.__exit__(kind, exc, tb)  # the last entered exits first
        done = [worker_threads().submit(cm.__exit__, None, None, None) for cm in cms]
        wait(done)
        for f in done:
            f.result()  # the first product that failed raises
        return False


def write_products(
    ds: rasterio.DatasetReader,
    outputs: dict[str, Path],
    networks: Sequence[Network],
    prep: Prepared,
    blocks: Iterable[BlockResult],
    options: PredictOptions,
    progress: ProgressFn | None = None,
    *,
    phases: Phases = NO_PHASES,
) -> int:
    """Write block results into the products (atomically, as COGs); return the valid pixels.

    The one writer of products, whether the blocks were computed here (:func:`predict_file`),
    read back from part files (:func:`assemble_parts`: both give identical files) or computed
    by Dask (predict-stac). The blocks come as stored (``prep.stores``: int16 steps or float32).
    """
    scratch_budget = options.scratch_memory_mb * 1024 * 1024
    # a dataset opened where no GDAL environment exists owns one, which it removes from the
    # thread that closes it: the COG copies close theirs on Finishing's threads, which have none
    own_env = contextlib.nullcontext() if rasterio.env.hasenv() else gdal_env(options)
    # the products' COG copies run side by side (:class:`Finishing`): the cores are shared
    # among them (on 2 cores, one thread each made the tail of a date 0.17 -> 0.14 s, measured)
    copies = len(networks) * (1 + options.flags + bool(prep.errors))
    writer = functools.partial(product_writer, src=ds, cog=options.cog, threads=options.workers,
                               copy_threads=max(1, options.workers // copies), scratch_memory=scratch_budget,
                               phases=phases)
    with own_env, Finishing() as stack:
        writers, flag_writers, unc_writers = [], [], []
        for net, store in zip(networks, prep.stores, strict=True):
            tags = {**prep.common_tags, **net.describe()}
            if prep.calibration is not None and prep.calibration.calibration.variable == net.variable:
                tags["VERCYE_CALIBRATION"] = calibration_tag(prep.calibration.calibration, net.variable)
            dst = outputs[net.variable]
            tags["VERCYE_STORAGE"] = store.tag
            writers.append(stack.enter_context(writer(
                dst, dtype=store.dtype, nodata=store.nodata, tags=tags, description=net.variable, unit=net.unit,
                scale=store.scale, max_error=store.max_error)))
            if options.flags:
                bits = "; ".join(f"{k}={v}" for k, v in FLAG_NAMES.items())
                if "VERCYE_CALIBRATION" in tags:
                    bits += f"; {FLAG_CALIBRATION_OUTSIDE}=CALIBRATION_OUTSIDE_TRAINING_DOMAIN"
                if prep.haze is not None:
                    bits += f"; {FLAG_HAZE}=HAZE" + ("_MASKED" if prep.haze.mask else "")
                flag_writers.append(stack.enter_context(writer(
                    flags_path(dst), dtype="uint8", nodata=FLAG_NODATA,
                    tags={**tags, "VERCYE_FLAG_BITS": bits, "VERCYE_FLAG_NODATA": "255 = input nodata"},
                    description=f"{net.variable}_flags", phase="cog_flags")))
            if prep.errors:
                unc_writers.append(stack.enter_context(writer(
                    uncertainty_path(dst), dtype=store.dtype, nodata=store.nodata,
                    tags={**tags, "VERCYE_UNCERTAINTY": uncertainty_kind(prep, net)},
                    description=f"{net.variable}_uncertainty", unit=net.unit, scale=store.scale,
                    max_error=store.max_error)))
        n_valid = 0
        for i, res in enumerate(blocks):
            for w, v in zip(writers, res.values):  # each product on its lanes (:class:`BlockWriter`)
                w.write(v, res.window)
            for w, f in zip(flag_writers, res.flags):
                w.write(f, res.window)
            for w, u in zip(unc_writers, res.uncertainty):
                w.write(u, res.window)
            n_valid += res.n_valid
            if progress:
                progress(i + 1, len(prep.windows))
    remove_parts(outputs)
    return n_valid
