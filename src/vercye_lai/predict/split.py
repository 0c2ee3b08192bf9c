"""Predict split into parts for Dask: plan a region's dates, compute groups of block
windows anywhere into hidden part files, and assemble a date's parts into its products with
the same writer as :func:`~vercye_lai.predict.file.predict_file` (identical files)."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from vercye_lai.errors import DataIOError
from vercye_lai.io import atomic_output, open_raster
from vercye_lai.model import load_network
from vercye_lai.predict.file import PredictResult, run_blocks
from vercye_lai.predict.kernel import BlockResult
from vercye_lai.predict.options import PredictOptions, options_for
from vercye_lai.predict.products import (
    all_complete,
    block_windows,
    check_model,
    gdal_env,
    load_options_calibration,
    model_networks,
    part_path,
    prepare,
    product_paths,
    write_products,
)
from vercye_lai.stack import open_stack


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
        done = not o.overwrite and all_complete(outputs, src, model_networks(o), o)
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



def stack_windows(src: str | Path, *, block_size: int = PredictOptions.block_size) -> list[Window]:
    """The block windows :func:`predict_file` processes for ``src`` (to split it into tasks)."""
    with open_raster(src) as ds:
        return block_windows(ds, block_size)



def window_groups(windows: Sequence[Any], part_pixels: int) -> list[list[Any]]:
    """Consecutive windows grouped into tasks of about ``part_pixels`` pixels."""
    groups: list[list[Any]] = [[]]
    n = 0
    for w in windows:
        if groups[-1] and n + w.width * w.height > part_pixels:
            groups.append([])
            n = 0
        groups[-1].append(w)
        n += w.width * w.height
    return groups


@dataclass(frozen=True)
class DatePart:
    """One part of a date's prediction: these block windows, saved to ``path``."""

    path: Path
    windows: tuple[Window, ...]


def date_parts(unit: PredictUnit, options: PredictOptions) -> list[DatePart]:
    """A date split into parts of about ``options.part_pixels`` pixels (consecutive block
    windows), each with its hidden part file (named after the input and the options, so a
    rerun after an interruption reuses the parts already made)."""
    key = part_key(unit, options)
    groups = window_groups(stack_windows(unit.src, block_size=options.block_size), options.part_pixels)
    return [DatePart(part_path(unit.outputs, key, j), tuple(w)) for j, w in enumerate(groups)]


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
    with gdal_env(options), open_stack(src, networks[0].inputs) as ds:
        prep = prepare(ds, src, networks, options)
        blocks = list(run_blocks(src, windows, prep, options))
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


def read_parts(parts: Sequence[Path], n_networks: int, flags: bool,
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
    with gdal_env(options), open_stack(src, networks[0].inputs) as ds:
        prep = prepare(ds, src, networks, options)
        blocks = read_parts(parts, len(networks), options.flags, prep.windows)
        try:
            n_valid = write_products(ds, outputs, networks, prep, blocks, options)
        except DataIOError:
            for p in parts:  # unusable parts: a rerun computes them again
                p.unlink(missing_ok=True)
            raise
        n_pixels = ds.width * ds.height
    return PredictResult(src, list(outputs.values()), "done", n_valid, n_pixels, time.perf_counter() - t0)
