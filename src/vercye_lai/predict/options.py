"""The options of predict (one typed object for the command, the run config and the library)
and the choice of network by a stack's sensor."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio

from vercye_lai.acquire.platform import PLATFORM_TAG
from vercye_lai.errors import ConfigError, InputError
from vercye_lai.model import DEFAULT_MODEL, MODELS, VARIABLES
from vercye_lai.model.registry import UNIT_MODELS, has_error_network, unit_model
from vercye_lai.model.sl2p import OUT_OF_RANGE
from vercye_lai.naming import LANDSAT_SENSORS, RasterName
from vercye_lai.predict.kernel import HAZE_CHOICES
from vercye_lai.predict.storage import DTYPES
from vercye_lai.options import Options, setting
from vercye_lai.system import default_workers

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (windows done, windows total)


#: pixels a predict part task covers on Dask (a few 1024² blocks: seconds of work each)
DEFAULT_PART_PIXELS = 4 * 1024 * 1024


def _model_names() -> tuple[str, ...]:
    return tuple(MODELS)


def _variable_names() -> tuple[str, ...]:
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
    offset: float | None = setting(
        None, help="See --scale (L2A >= 04.00: -1000). Alone it keeps the stack's own scale (declared, or x 1e-4 "
        "for integers): --offset 0 reads data that hold their offset already.")
    flags: bool = setting(
        True, help="Write SNAP-style quality bits to {..}_{VAR}_flags.tif beside each product.")
    uncertainty: bool = setting(
        False, help="Also write {..}_{VAR}_uncertainty.tif: the LEAF error network's per-pixel "
        "uncertainty, in the variable's units (sl2p, sl2p-10m) - too narrow: on 165 in-situ points "
        "+-1 sigma holds 54 % of the errors, +-2 sigma 80 %. With --calibration: the calibration's "
        "sigma instead (tagged).")
    calibration: Path | None = setting(
        None, metavar="FILE", exists=True,
        help="A calibration file of `vercye-lai calibrate`: the products of its variable are "
             "calibrated (method and hash in the tags).")
    out_of_range: str = setting(
        "clamp", choices=OUT_OF_RANGE,
        help="Outputs beyond the valid range + tolerance (LAI > 8.2 for SL2P: the densest canopies): "
             "clamp to the range, set to nodata, or keep the raw network output; flagged either way.")
    haze: str = setting(
        "mask", choices=HAZE_CHOICES,
        help="Pixels seen through haze or thin cloud that the scene classification called clear "
             "(green reflectance > 0.12 and not below red): nodata and flag bit 64 (mask), only the "
             "flag (flag), or no test (off).")
    dtype: str = setting(
        "int16", choices=DTYPES,
        help="How products are stored: float32; int16 (value = stored x scale, declared in the file: LAI 0.001, "
             "nodata -32768; the reference's LAI format); lerc (float32, LERC with an error of at most half "
             "that step). See the storage table in the docs.")
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
    scratch_memory_mb: int = setting(
        320, min=0, cli=None,
        help="Memory of each process for the COGs being made, MB: an int16/uint8 COG's compressed tiles "
             "(assembled after the last block), else the scratch copy GDAL copies it from; each reserves "
             "its product's raw size in whole tiles and its overviews' third (an 8000² date's int16 LAI "
             "179, its flags 89). Beyond it a scratch goes to disk beside the product, doubling the bytes "
             "written. 0: always on disk.")

    def __post_init__(self) -> None:
        self._type_fields()
        # variables are case-insensitive and each predicted once
        object.__setattr__(self, "variables", tuple(dict.fromkeys(v.upper() for v in self.variables)))
        if self.scale is not None and not self.scale > 0:  # (it failed each date with a bare ValueError)
            raise ConfigError(f"scale: must be positive, not {self.scale}")
        if not self.variables:  # every date "complete" with nothing to make, then nothing to analyse
            raise ConfigError(f"variables: none given; choose from {', '.join(_variable_names())}")
        super().__post_init__()
        for key in ("model", "landsat_model"):
            m = str(getattr(self, key))
            if m not in _model_names() and not Path(m).suffix and "/" not in m:
                raise ConfigError(f"{key}: {m!r} is not a bundled model; allowed values: "
                                  f"{', '.join(_model_names())}, or a coefficient file/folder path")


def options_for(src: str | Path, options: PredictOptions) -> PredictOptions:
    """The options for one stack: a Landsat or HLS L30 stack (``_L8``, ``_L9``, ``_L30`` in
    its name) is predicted with ``landsat_model``; without an error network there, no
    uncertainty raster (logged); a calibration of another model is not applied (logged).
    A per-unit model (``snap-3.0``) becomes the network of the stack's Sentinel-2 unit,
    read from its ``PLATFORM`` tag (:func:`vercye_lai.model.registry.unit_model`)."""
    try:
        sensor = RasterName.parse(src).sensor
    except InputError:
        sensor = None
    if sensor not in LANDSAT_SENSORS and str(options.model) in UNIT_MODELS:
        with rasterio.open(src) as ds:
            platforms = ds.tags().get(PLATFORM_TAG)
        return dataclasses.replace(options, model=unit_model(options.model, platforms, path=src))
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
