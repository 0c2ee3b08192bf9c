"""SL2P on an xarray cube, lazily: ``predict(cube)`` → ``LAI``, ``LAI_flags``, ``LAI_uncertainty``.

The cube is what ``odc.stac.load`` returns (one variable per band, dims ``time, y, x``) or
what ``stackstac.stack`` returns (one DataArray with a ``band`` dimension). Band names are
read as the project reads them everywhere (:func:`vercye_lai.stack.canonical_band`:
``B03`` is ``B3``) and as Earth Search names its assets (``green`` is ``B3``, ``nir08`` is
``B8A``: :data:`vercye_lai.acquire.stac.ASSET_KEYS`). Every chunk runs the one block kernel
of ``predict`` (:func:`vercye_lai.predict.kernel.predict_block`) through
``xr.apply_ufunc(..., dask="parallelized")``: memory is bounded by the chunks, never by the
region or the season, and a pixel gets the LAI, flags and uncertainty ``predict`` gives it.

Scaling (reflectance = stored × ``scale`` + ``offset``, per band; STAC ``raster:bands`` and CF
convention — not ``predict --offset``'s DN offset)
    1. ``scale``/``offset`` given here (a number, or band → number): used as given, not checked.
    2. Declared on the cube: per-band ``scale``/``offset`` (or ``scale_factor``/``add_offset``)
       coordinates along ``band`` (stackstac with ``rescale=False``), or those attributes of
       each variable. Checked against the data (below).
    3. Integer values declaring nothing — raw L2A DNs, as odc-stac loads them: × 1e-4 with
       the −0.1 offset of processing baselines ≥ 04.00 (every product since 2022-01-25 and the
       Collection-1 reprocessing of earlier years), checked against the data; DN 0 is no data
       where the cube declares no nodata (L2A's own: it was read as a dark pixel, LAI 2.9).
    4. Floating values declaring nothing: reflectance already (the loader scaled them, e.g.
       stackstac's default ``rescale=True``), used as stored.

    The check is :func:`vercye_lai.acquire.offset.check_offset`, as for files: per date, on
    a strided sample of at most 256² pixels of green, red and NIR (land: SCL 4/5 where the
    cube has an ``SCL`` band), it drops an offset the data hold already
    (element84/earth-search#71) and applies one a baseline ≥ 04.00 implies but the data lack.
    It computes that sample (one read of the chunks it touches); ``offset_check=False`` skips it.

Angles (``cosVZA``, ``cosSZA``, ``cosRAA``), in this order of precedence
    1. Per-pixel cosine bands in the cube (``cosVZA``, …; integers × 1e-4 unless declared).
    2. Per-pixel degree bands (``sun_zenith``/``sza``, ``sun_azimuth``/``saa``,
       ``view_zenith``/``vza``, ``view_azimuth``/``vaa``, as ``predict-table`` names them).
    3. Otherwise the sun is computed per pixel from the cube's time and each pixel centre's
       position (NOAA equations, :func:`vercye_lai.acquire.angles.solar_position`) and the
       view is ``view_zenith``/``view_azimuth`` (degrees; one value, or one per time, e.g. an
       item's ``view:incidence_angle``/``view:azimuth``), by default a nadir view
       (zenith 0°, azimuth = the sun's, as the STAC source assumes).

    Which one was used is logged and kept in each product's ``angles`` attribute.

Outputs are float32 (NaN = nodata; CF ``units``, ``long_name``, ``standard_name`` for LAI and
FAPAR), flags uint8 (CF ``flag_masks``/``flag_meanings``, 255 = input nodata), the cube's
coordinates and ``spatial_ref`` kept (``grid_mapping``), so ``.odc.geobox`` and ``.rio.crs``
still work and ``to_zarr`` writes what ``vercye-lai cube`` readers expect.

Needs the ``direct`` extra (xarray, dask; odc-stac to load).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vercye_lai.acquire.offset import (
    BOA_OFFSET,
    SAMPLE_SIDE,
    Sample,
    check_offset,
)
from vercye_lai.acquire.scl import LAND_CLASSES
from vercye_lai.acquire.stac import ASSET_KEYS
from vercye_lai.acquire.platform import PLATFORM_TAG, s2_platform
from vercye_lai.errors import BandError, InputError, ModelError, require
from vercye_lai.model import FLAG_NAMES, FLAG_NODATA, load_error_network
from vercye_lai.model.registry import UNIT_MODELS, unit_members, unit_model
from vercye_lai.model.sl2p import FLAG_HAZE
from vercye_lai.predict._cube_block import BlockPlan, _block, sun_angles  # noqa: F401 - part of this module's API
from vercye_lai.predict.kernel import HazeTest  # noqa: F401 - part of this module's API (the block's haze test)
from vercye_lai.predict.options import PredictOptions
from vercye_lai.predict.products import check_model, model_networks
from vercye_lai.predict.table import ANGLE_COLUMNS
from vercye_lai.stack import ANGLE_BANDS, EE_INTEGER_SCALE, canonical_band

try:  # the accessor needs xarray at import; the functions say which extra is missing
    import xarray as xr
except ImportError:  # pragma: no cover - the base install
    xr = None

log = logging.getLogger(__name__)

#: L2A DN per unit reflectance, as a scale
L2A_SCALE = 1e-4
#: CF standard names of the variables that have one
STANDARD_NAMES = {"LAI": "leaf_area_index"}
#: Earth Search / Planetary Computer asset keys → canonical bands (``green`` → ``B3``)
_ALIASES = {k.lower(): b for keys in ASSET_KEYS.values() for b, k in keys.items() if b != "granule"}
#: degree angle bands by the names predict-table reads
_DEGREES = {alias: what for what, names in ANGLE_COLUMNS.items() for alias in names}


def band_name(name: Any) -> str:
    """The canonical band of a cube's variable or ``band`` label: ``B03``, ``b3`` and Earth
    Search's ``green`` are ``B3``; ``scl`` is ``SCL``; degree angle bands get the names of
    :data:`vercye_lai.predict.table.ANGLE_COLUMNS` (``sza`` → ``sun_zenith``)."""
    s = str(name)
    if s.lower() in _ALIASES:
        return _ALIASES[s.lower()]
    key = s.strip().lower().replace(" ", "_").replace("-", "_")
    return _DEGREES.get(key, canonical_band(s))


def _need() -> Any:
    require("dask.array", "direct")
    return require("xarray", "direct")


# ------------------------------------------------------------------------------ the cube


def as_band_array(data: Any) -> Any:
    """``data`` as a DataArray with a ``band`` dimension of canonical band names and a
    ``time`` dimension (length 1 when the cube has none): a Dataset's variables become
    bands (each variable's attributes kept as per-band ``scale``/``offset``/``nodata``
    coordinates); a DataArray keeps its ``band`` labels.

    Raises
    ------
    BandError
        No band dimension (a DataArray), or two variables of one band.
    """
    xr = _need()
    if isinstance(data, xr.Dataset):
        names = [v for v in data.data_vars if data[v].dims and {"y", "x"} <= set(data[v].dims)]
        canon = [band_name(v) for v in names]
        dup = sorted({c for c in canon if canon.count(c) > 1})
        if dup:
            raise BandError(f"the cube has several variables of band(s) {', '.join(dup)}: keep one")
        attrs = {k: [_attr(data[v], k) for v in names] for k in ("scale", "offset", "nodata")}
        arr = data[names].to_array("band").assign_coords(band=canon)
        arr = arr.assign_coords({f"band_{k}": ("band", np.array(v, dtype=float)) for k, v in attrs.items()})
        arr.attrs = {**data.attrs}
    elif isinstance(data, xr.DataArray):
        if "band" not in data.dims:
            raise BandError(f"a DataArray needs a 'band' dimension (has {', '.join(map(str, data.dims))}); "
                            "or give a Dataset of one variable per band")
        arr = data.assign_coords(band=[band_name(b) for b in data["band"].values])
        for k in ("scale", "offset"):
            for c in (k, {"scale": "scale_factor", "offset": "add_offset"}[k]):
                if c in arr.coords and arr[c].dims == ("band",):
                    arr = arr.assign_coords({f"band_{k}": ("band", arr[c].values.astype(float))})
                    break
        nd = arr.attrs.get("nodata", arr.attrs.get("_FillValue", arr.encoding.get("_FillValue")))
        if "band_nodata" not in arr.coords:
            arr = arr.assign_coords(band_nodata=("band", np.full(arr.sizes["band"], np.nan if nd is None else nd,
                                                                 float)))
    else:
        raise InputError(f"predict takes an xarray Dataset or DataArray, not {type(data).__name__}")
    if "time" not in arr.dims:
        arr = arr.expand_dims("time")
    return arr


def _attr(v: Any, key: str) -> float:
    """A variable's ``scale``/``offset``/``nodata`` attribute (CF names too), NaN if none."""
    names = {"scale": ("scale_factor", "scale"), "offset": ("add_offset", "offset"),
             "nodata": ("nodata", "_FillValue")}[key]
    for n in names:
        for where in (v.attrs, v.encoding):
            if n in where and where[n] is not None:
                return float(where[n])
    return np.nan


def _given(value: float | Mapping[str, float] | None, band: str) -> float | None:
    if value is None or isinstance(value, (int, float)):
        return value
    return {canonical_band(k): float(v) for k, v in value.items()}.get(band)


def _sample(arr: Any, bands: Sequence[str]) -> dict[str, np.ndarray]:
    """A strided sample of at most :data:`SAMPLE_SIDE` pixels a side of ``bands`` per time
    (float64, NaN where the band's nodata), computed at once."""
    step = max(1, int(np.ceil(max(arr.sizes["y"], arr.sizes["x"]) / SAMPLE_SIDE)))
    sub = arr.sel(band=list(bands)).isel(y=slice(None, None, step), x=slice(None, None, step))
    values = np.asarray(sub.transpose("time", "band", "y", "x").values, dtype=np.float64)
    nd = sub["band_nodata"].values
    out = {}
    for i, b in enumerate(bands):
        v = values[:, i]
        if np.isfinite(nd[i]):
            v = np.where(v == nd[i], np.nan, v)
        out[b] = v
    return out


def cube_scaling(arr: Any, inputs: Sequence[str], *, scale=None, offset=None,
                 offset_check: bool = True) -> tuple[np.ndarray, np.ndarray, str, tuple[str, ...]]:
    """Per time and input band, ``(a, b)`` with physical = stored × a + b (see the module
    docstring), what decided them, and what the offset check found per date."""
    n_t = arr.sizes["time"]
    a, b = np.ones((n_t, len(inputs))), np.zeros((n_t, len(inputs)))
    integer = np.issubdtype(arr.dtype, np.integer)
    refl = [i for i, band in enumerate(inputs) if band not in ANGLE_BANDS]
    declared_s = arr["band_scale"].to_series().to_dict() if "band_scale" in arr.coords else {}
    declared_o = arr["band_offset"].to_series().to_dict() if "band_offset" in arr.coords else {}
    hows = set()
    checked = False
    for i, band in enumerate(inputs):
        s_dec, o_dec = declared_s.get(band, np.nan), declared_o.get(band, np.nan)
        declared = np.isfinite(s_dec) or np.isfinite(o_dec)
        s_dec, o_dec = (1.0 if not np.isfinite(s_dec) else s_dec), (0.0 if not np.isfinite(o_dec) else o_dec)
        if band in ANGLE_BANDS:
            a[:, i], b[:, i] = (s_dec, o_dec) if declared else ((EE_INTEGER_SCALE, 0.0) if integer else (1.0, 0.0))
            continue
        s_user, o_user = _given(scale, band), _given(offset, band)
        if s_user is not None or o_user is not None:
            a[:, i] = s_dec if s_user is None else s_user
            b[:, i] = o_dec if o_user is None else o_user
            hows.add("given")
        elif declared:
            a[:, i], b[:, i] = s_dec, o_dec
            hows.add("declared")
            checked = True
        elif integer:
            a[:, i], b[:, i] = L2A_SCALE, BOA_OFFSET
            hows.add("raw DNs")
            checked = True
        else:
            hows.add("as stored")
    how = {
        "given": "reflectance = stored x scale + offset as given",
        "declared": "reflectance = stored x scale + offset as the cube declares",
        "raw DNs": f"raw L2A DNs: x {L2A_SCALE:g} {BOA_OFFSET:+g} (baseline >= 04.00), checked against the data",
        "as stored": "reflectance as stored (scaled by the loader)",
    }
    notes: tuple[str, ...] = ()
    needed = ("B3", "B4", "B8A")
    if checked and offset_check and all(x in arr["band"].values for x in needed) and refl:
        have_scl = "SCL" in arr["band"].values
        sample = _sample(arr, (*needed, *(("SCL",) if have_scl else ())))
        i4 = list(inputs).index("B4")
        found = []
        for t in range(n_t):
            land = (np.isin(sample["SCL"][t], LAND_CLASSES) if have_scl
                    else np.isfinite(sample["B8A"][t]))
            name = _time_label(arr, t)
            res = check_offset(name, Sample(sample["B3"][t], sample["B4"][t], sample["B8A"][t], land),
                               scale=float(a[t, i4]), offset=float(b[t, i4]),
                               what="the cube's" if "declared" in hows else "assumed",
                               expected=BOA_OFFSET if "raw DNs" in hows else None)
            if res.offset != b[t, i4]:
                b[t, refl] = res.offset
            found.append(res.note)
        notes = tuple(found)
    return a, b, "; ".join(how[h] for h in sorted(hows)) or "angles only", notes


def _time_label(arr: Any, t: int) -> str:
    if "time" in arr.coords:
        return f"cube {np.datetime_as_string(arr['time'].values[t], unit='s')}"
    return f"cube time {t}"


# ------------------------------------------------------------------------------ predict


def _crs(arr: Any) -> str | None:
    """The cube's CRS as WKT/EPSG: odc-stac's and rioxarray's ``spatial_ref``, stackstac's attrs."""
    if "spatial_ref" in arr.coords:
        ref = arr["spatial_ref"].attrs
        for k in ("crs_wkt", "spatial_ref"):
            if ref.get(k):
                return ref[k]
    for k in ("crs",):
        if arr.attrs.get(k):
            return str(arr.attrs[k])
    if "epsg" in arr.coords:
        return f"EPSG:{int(arr['epsg'].values)}"
    return None


def _per_time(value: Any, arr: Any, default: float) -> Any:
    """A view angle: one number, one per time (sequence or DataArray over ``time``)."""
    xr = _need()
    if value is None:
        value = default
    if isinstance(value, xr.DataArray):
        return value.astype(float)
    v = np.broadcast_to(np.asarray(value, float), (arr.sizes["time"],))
    return xr.DataArray(v, dims=("time",), coords={"time": arr["time"]} if "time" in arr.coords else None)


def cube_model(model: str | Path, arr: Any) -> str | Path:
    """The model to run on a cube: a per-unit model (``snap-3.0``) becomes the network of the
    cube's Sentinel-2 unit, named by its ``platform`` coordinate (one per time, as stackstac
    gives it) or attribute (``platform``, or the stacks' ``PLATFORM``); any other, itself.

    Raises
    ------
    ModelError
        A per-unit model and a cube that names no unit, or several (its times would need
        different networks: predict each unit's times apart).
    """
    if str(model) not in UNIT_MODELS:
        return model
    named = (arr.coords["platform"].values.ravel().tolist() if "platform" in arr.coords
             else [arr.attrs.get("platform") or arr.attrs.get(PLATFORM_TAG)])
    units = sorted({u for u in (s2_platform(str(p)) for p in named if p is not None) if u})
    choose = f"choose {' or '.join(unit_members(model))} with model="
    if not units:
        raise ModelError(f"{model} runs the network of the cube's Sentinel-2 unit, and this cube names none "
                         f"(no 'platform' coordinate or attribute): set attrs['platform'] (e.g. 'sentinel-2a'), "
                         f"or {choose}")
    if len(units) > 1:
        raise ModelError(f"{model} has a network per Sentinel-2 unit and this cube holds {', '.join(units)}: "
                         f"predict each unit's times apart, or {choose}")
    return unit_model(model, units[0])


def predict(
    data: Any,
    *,
    model: str = "sl2p",
    variables: Sequence[str] = ("LAI",),
    flags: bool = True,
    uncertainty: bool = False,
    out_of_range: str = "clamp",
    haze: str = "mask",
    scale: float | Mapping[str, float] | None = None,
    offset: float | Mapping[str, float] | None = None,
    offset_check: bool = True,
    view_zenith: Any = None,
    view_azimuth: Any = None,
    options: PredictOptions | None = None,
) -> Any:
    """SL2P variables of a cube, lazily (see the module docstring).

    Parameters
    ----------
    data
        ``xr.Dataset`` of one variable per band (``odc.stac.load``), or ``xr.DataArray`` with
        a ``band`` dimension (``stackstac.stack``); dims ``time`` (optional), ``y``, ``x``, in
        any projected or geographic CRS (needed only to compute the sun). Dask-backed for a
        lazy result; a numpy-backed cube is computed at once.
    model, variables, flags, uncertainty, out_of_range, haze
        As ``vercye-lai predict`` (:class:`~vercye_lai.predict.PredictOptions`); ``options``
        gives them all at once instead. Calibration is not applied here.
    scale, offset
        Reflectance = stored × ``scale`` + ``offset`` (a number for every reflectance band,
        or band → number); ``None``: declared by the cube, else inferred (module docstring).
    offset_check
        Check a declared or inferred offset against the data
        (:func:`vercye_lai.acquire.offset.check_offset`); computes a small sample per date.
    view_zenith, view_azimuth
        Degrees, used only when the cube has no angle bands: one value or one per time;
        default nadir (zenith 0°, azimuth = the sun's).

    Returns
    -------
    xr.Dataset
        ``{VAR}`` float32 (NaN = nodata), ``{VAR}_flags`` uint8 (with ``flags``),
        ``{VAR}_uncertainty`` float32 (with ``uncertainty``); dims ``time, y, x`` with the
        cube's coordinates (and ``spatial_ref``); Dask-backed when the cube is.

    Raises
    ------
    BandError
        A band the network needs is missing (naming the cube's bands).
    InputError
        Values that are not reflectance once scaled (when computed, naming the scaling).
    """
    xr = _need()
    options = options or PredictOptions(model=model, variables=tuple(variables), flags=flags,
                                        uncertainty=uncertainty, out_of_range=out_of_range, haze=haze)
    if options.calibration is not None:
        raise InputError("a calibration is not applied on a cube: calibrate the products of "
                         "`vercye-lai predict`/`predict-stac` instead")
    arr = as_band_array(data)
    options = dataclasses.replace(options, model=cube_model(options.model, arr))
    check_model(options)
    networks = model_networks(options)
    errors = [load_error_network(options.model, n.variable) for n in networks] if options.uncertainty else []
    inputs = tuple(networks[0].inputs)
    have = [str(b) for b in arr["band"].values]
    missing = [b for b in inputs if b not in ANGLE_BANDS and b not in have]
    if missing:
        raise BandError(f"the cube lacks band(s) {', '.join(missing)} for model {options.model} "
                        f"(has {', '.join(have)})")
    degrees = ("sun_zenith", "sun_azimuth", "view_zenith", "view_azimuth")
    if all(b in have for b in ANGLE_BANDS):
        angles, how_angles = "bands", "per-pixel cosine bands of the cube"
    elif all(b in have for b in degrees):
        angles, how_angles = "degrees", "per-pixel angle bands of the cube (degrees)"
    else:
        angles = "computed"
        how_angles = ("sun computed from the time and each pixel's position; view "
                      + ("nadir (assumed: no view angles given)" if view_zenith is None
                         else "as given"))
    log.info("angles: %s", how_angles)
    used = tuple(b for b in have if b in inputs or (angles == "degrees" and b in degrees))
    scaled = arr.sel(band=list(used) + [b for b in ("SCL",) if b in have and b not in used])
    a, b, how, notes = cube_scaling(scaled, used, scale=scale, offset=offset, offset_check=offset_check)
    log.info("scaling: %s", how)
    cube = scaled.sel(band=list(used))
    nodata = tuple(None if not np.isfinite(v) else float(v) for v in cube["band_nodata"].values)
    if how.startswith("raw L2A DNs"):  # L2A's DN 0 is no data: undeclared, it was read as a dark pixel
        nodata = tuple(0.0 if nd is None and band not in ANGLE_BANDS else nd for band, nd in zip(used, nodata,
                                                                                                   strict=True))
    plan = BlockPlan(used, inputs, angles, networks, errors, nodata, options.flags, options.out_of_range,
                     options.haze, crs=_crs(arr))
    if angles == "computed" and plan.crs is None:
        raise InputError("the cube has no angle bands and no CRS to compute the sun's position from")
    # one chunk along band: the kernel needs every band of a pixel
    if cube.chunks is not None:
        cube = cube.chunk({"band": -1})
    coords_t = {"time": cube["time"]} if "time" in cube.coords else None
    a_da = xr.DataArray(a, dims=("time", "band"), coords=coords_t)
    b_da = xr.DataArray(b, dims=("time", "band"), coords=coords_t)
    times = (cube["time"] if "time" in cube.coords else xr.DataArray(
        np.full(cube.sizes["time"], np.datetime64("NaT"), "datetime64[ns]"), dims=("time",)))
    vz = _per_time(view_zenith, cube, 0.0)
    va = _per_time(view_azimuth, cube, np.nan)  # NaN: the sun's azimuth (a nadir view)
    for c in [c for c in cube.coords if c.startswith("band_")]:
        cube = cube.drop_vars(c)
    names = ([n.variable for n in networks] + ([f"{n.variable}_flags" for n in networks] if options.flags else [])
             + [f"{n.variable}_uncertainty" for n in errors])
    dtypes = [np.float32] * len(networks) + [np.uint8] * (len(networks) if options.flags else 0) \
        + [np.float32] * len(errors)
    out = xr.apply_ufunc(
        _block, cube, a_da, b_da, times, cube["y"], cube["x"], vz, va,
        input_core_dims=[["band"], ["band"], ["band"], [], [], [], [], []],
        output_core_dims=[[] for _ in names], kwargs={"plan": plan},
        dask="parallelized", output_dtypes=dtypes,
    )
    out = out if isinstance(out, tuple) else (out,)
    ds = xr.Dataset({n: v.transpose("time", "y", "x") for n, v in zip(names, out)})
    if "spatial_ref" in arr.coords and "spatial_ref" not in ds.coords:
        ds = ds.assign_coords(spatial_ref=arr["spatial_ref"])
    common = {"model": options.model, "scaling": how, "angles": how_angles, "out_of_range": options.out_of_range,
              **({"offset_check": " | ".join(notes)} if notes else {}),
              **({"grid_mapping": "spatial_ref"} if "spatial_ref" in ds.coords else {})}
    for n in networks:
        ds[n.variable].attrs = {"long_name": f"{n.variable} ({n.model})", "units": n.unit or "1",
                                **({"standard_name": STANDARD_NAMES[n.variable]} if n.variable in STANDARD_NAMES
                                   else {}),
                                "valid_range": [float(n.out_min), float(n.out_max)], **common}
        ds[n.variable].encoding["_FillValue"] = np.float32(np.nan)
        if options.flags:
            bits = {**FLAG_NAMES, **({FLAG_HAZE: "HAZE" + ("_MASKED" if options.haze == "mask" else "")}
                                     if options.haze != "off" else {})}
            bits.pop(FLAG_NODATA, None)
            ds[f"{n.variable}_flags"].attrs = {
                "long_name": f"{n.variable} quality flags", "flag_masks": np.array(list(bits), np.uint8),
                "flag_meanings": " ".join(v.lower() for v in bits.values()), "nodata": FLAG_NODATA,
                **{k: v for k, v in common.items() if k == "grid_mapping"}}
            ds[f"{n.variable}_flags"].encoding["_FillValue"] = np.uint8(FLAG_NODATA)
    for e in errors:
        ds[f"{e.variable}_uncertainty"].attrs = {"long_name": f"{e.variable} uncertainty (1 sigma, LEAF error "
                                                 "network)", "units": e.unit or "1", **common}
    ds.attrs = {"title": "SL2P products (vercye-lai)", "model": options.model, "scaling": how,
                "angles": how_angles}
    return ds


if xr is not None:

    @xr.register_dataset_accessor("sl2p")
    @xr.register_dataarray_accessor("sl2p")
    class SL2PAccessor:
        """``cube.sl2p.predict(**kw)``: :func:`predict` of this cube."""

        def __init__(self, obj: Any) -> None:
            self._obj = obj

        def predict(self, **kwargs: Any) -> Any:
            return predict(self._obj, **kwargs)
