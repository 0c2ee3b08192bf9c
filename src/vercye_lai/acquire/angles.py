"""Sun and view angles: Sentinel-2 tile metadata (``MTD_TL.xml``) and solar position.

The SL2P network takes three angle bands: ``cosVZA`` (cosine of the view zenith),
``cosSZA`` (cosine of the sun zenith) and ``cosRAA`` (cosine of the relative azimuth,
``sun azimuth − view azimuth``). All angles here are in degrees; azimuths are measured
clockwise from north.

Tile metadata
    ``MTD_TL.xml`` gives the sun angles (``Sun_Angles_Grid``) and, per band and detector,
    the view angles (``Viewing_Incidence_Angles_Grids``) on a 23 × 23 grid of points 5 km
    apart whose first point is the tile's upper-left corner (``ULX``/``ULY`` of
    ``Tile_Geocoding``), in the tile's UTM CRS. :func:`parse_tile_angles` combines the
    detectors of a band with a NaN-mean (each detector only covers its own strip; where
    two overlap their values are averaged), then averages the bands of the SL2P stack
    (B3, B4, B5, B6, B7, B8A, B11, B12 by default): the network takes one view geometry
    per pixel and the bands differ by a few tenths of a degree. Azimuths are averaged as
    unit vectors so that 359° and 1° give 0°, not 180°. Grid points that no detector
    covers (outside the swath) are NaN in the file; :func:`interpolate_angles` fills them
    from the nearest valid point before interpolating.

Solar position
    :func:`solar_position` implements the NOAA solar calculator equations (Meeus-based,
    geometric angles without refraction, accurate to about 0.01° for 1800–2100), for
    rasters that come without angle metadata.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.crs import CRS

from vercye_lai.errors import DataIOError, InputError

log = logging.getLogger(__name__)

#: ``bandId`` of each band in the Sentinel-2 metadata.
BAND_IDS: dict[str, int] = {
    "B1": 0,
    "B2": 1,
    "B3": 2,
    "B4": 3,
    "B5": 4,
    "B6": 5,
    "B7": 6,
    "B8": 7,
    "B8A": 8,
    "B9": 9,
    "B10": 10,
    "B11": 11,
    "B12": 12,
}
#: Bands whose view angles are averaged by default: the reflectance bands of the 20 m stack.
STACK_VIEW_BANDS: tuple[str, ...] = ("B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12")


@dataclass
class TileAngles:
    """Sun and view angles of one tile on its coarse (5 km) metadata grid.

    Attributes
    ----------
    crs
        CRS of the grid (the tile's UTM zone).
    transform
        Affine transform of the grid seen as a raster whose **pixel centres** are the
        grid points: pixel ``(row, col)`` is centred on ``(ULX + col·step, ULY − row·step)``.
    sun_zenith, sun_azimuth, view_zenith, view_azimuth
        2-D float arrays (rows, cols) in degrees; NaN where the metadata has no value.
    """

    crs: CRS
    transform: rasterio.Affine
    sun_zenith: np.ndarray
    sun_azimuth: np.ndarray
    view_zenith: np.ndarray
    view_azimuth: np.ndarray


# --------------------------------------------------------------------------- XML parsing


def read_xml(xml: str | bytes | os.PathLike) -> tuple[ET.Element, str | None]:
    """Parse XML given as text, bytes or a path; return the root and the path (if any).

    Raises
    ------
    DataIOError
        For a missing file or invalid XML, naming the file.
    """
    path = None
    try:
        if isinstance(xml, bytes):
            return ET.fromstring(xml), None
        if isinstance(xml, str) and xml.lstrip().startswith("<"):
            return ET.fromstring(xml), None
        path = str(xml)
        return ET.parse(path).getroot(), path
    except FileNotFoundError as exc:
        raise DataIOError("metadata file does not exist", path=path) from exc
    except ET.ParseError as exc:
        raise DataIOError(f"metadata is not valid XML: {exc}", path=path) from exc


def _find(root: ET.Element, tag: str, path: str | None) -> ET.Element:
    el = root.find(f".//{tag}")
    if el is None:
        raise InputError(f"tile metadata has no <{tag}> (is this an MTD_TL.xml?)", path=path)
    return el


def _values_grid(el: ET.Element) -> np.ndarray:
    """``<Values_List><VALUES>a b c</VALUES>…`` → 2-D float array (NaN for 'NaN')."""
    rows = [r.text.split() for r in el.iter("VALUES") if r.text]
    return np.array(rows, dtype=np.float64)


def _step(el: ET.Element) -> tuple[float, float]:
    return float(el.findtext("ROW_STEP")), float(el.findtext("COL_STEP"))


def _nanmean_azimuth(stack: np.ndarray, axis: int = 0) -> np.ndarray:
    """Circular NaN-mean of azimuths (degrees) along ``axis``."""
    rad = np.deg2rad(stack)
    with np.errstate(invalid="ignore"), _quiet_nanmean():
        s = np.nanmean(np.sin(rad), axis=axis)
        c = np.nanmean(np.cos(rad), axis=axis)
    return np.rad2deg(np.arctan2(s, c)) % 360.0


@contextlib.contextmanager
def _quiet_nanmean():
    """Silence numpy's 'Mean of empty slice' (all-NaN cells stay NaN on purpose)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _band_ids(bands) -> set[int]:
    try:
        return {BAND_IDS[b] for b in bands}
    except KeyError as exc:
        raise InputError(
            f"unknown Sentinel-2 band {exc.args[0]!r}; known: {', '.join(BAND_IDS)}"
        ) from exc


def parse_tile_angles(
    xml: str | bytes | os.PathLike, *, bands: tuple[str, ...] = STACK_VIEW_BANDS
) -> TileAngles:
    """Read the sun and view angle grids of a Sentinel-2 tile.

    Parameters
    ----------
    xml
        ``MTD_TL.xml`` as a path, or its content as bytes or text.
    bands
        Bands whose view angles are averaged (after combining each band's detectors).

    Returns
    -------
    TileAngles
        Grids in degrees in the tile's CRS.

    Raises
    ------
    InputError
        When the file lacks the geocoding, the sun grid or view grids for ``bands``.
    """
    root, path = read_xml(xml)
    geo = _find(root, "Tile_Geocoding", path)
    epsg = geo.findtext("HORIZONTAL_CS_CODE")
    if not epsg:
        raise InputError("tile metadata has no HORIZONTAL_CS_CODE", path=path)
    pos = geo.find("Geoposition")  # all resolutions share the same corner
    if pos is None:
        raise InputError("tile metadata has no <Geoposition>", path=path)
    ulx, uly = float(pos.findtext("ULX")), float(pos.findtext("ULY"))

    sun = _find(root, "Sun_Angles_Grid", path)
    sz, sa = _values_grid(sun.find("Zenith")), _values_grid(sun.find("Azimuth"))
    row_step, col_step = _step(sun.find("Zenith"))

    wanted = _band_ids(bands)
    per_band_z: dict[int, list[np.ndarray]] = {}
    per_band_a: dict[int, list[np.ndarray]] = {}
    for g in root.iter("Viewing_Incidence_Angles_Grids"):
        bid = int(g.get("bandId", -1))
        if bid in wanted:
            per_band_z.setdefault(bid, []).append(_values_grid(g.find("Zenith")))
            per_band_a.setdefault(bid, []).append(_values_grid(g.find("Azimuth")))
    if not per_band_z:
        raise InputError(
            f"tile metadata has no Viewing_Incidence_Angles_Grids for bands {', '.join(bands)}",
            path=path,
        )
    with _quiet_nanmean():
        band_z = [np.nanmean(np.stack(v), axis=0) for v in per_band_z.values()]
        vz = np.nanmean(np.stack(band_z), axis=0)
    band_a = [_nanmean_azimuth(np.stack(v)) for v in per_band_a.values()]
    va = _nanmean_azimuth(np.stack(band_a))
    transform = rasterio.Affine(
        col_step, 0.0, ulx - col_step / 2, 0.0, -row_step, uly + row_step / 2
    )
    log.debug("tile angles: %d bands, grid %s, step %g m", len(per_band_z), sz.shape, col_step)
    return TileAngles(CRS.from_user_input(epsg), transform, sz, sa, vz, va)


def mean_angles(
    xml: str | bytes | os.PathLike, *, bands: tuple[str, ...] = STACK_VIEW_BANDS
) -> dict:
    """The tile's own mean angles (``Mean_Sun_Angle``, ``Mean_Viewing_Incidence_Angle``).

    Returns
    -------
    dict
        ``sun_zenith``, ``sun_azimuth``, ``view_zenith``, ``view_azimuth`` (degrees; the
        view angles averaged over ``bands``, azimuth as a circular mean) and
        ``view_by_band``: band name → ``(zenith, azimuth)``.
    """
    root, path = read_xml(xml)
    sun = _find(root, "Mean_Sun_Angle", path)
    names = {v: k for k, v in BAND_IDS.items()}
    by_band = {}
    for el in root.iter("Mean_Viewing_Incidence_Angle"):
        name = names.get(int(el.get("bandId", -1)))
        if name:
            by_band[name] = (
                float(el.findtext("ZENITH_ANGLE")),
                float(el.findtext("AZIMUTH_ANGLE")),
            )
    sel = [by_band[b] for b in bands if b in by_band]
    if not sel:
        raise InputError("tile metadata has no Mean_Viewing_Incidence_Angle", path=path)
    z, a = np.array(sel).T
    return {
        "sun_zenith": float(sun.findtext("ZENITH_ANGLE")),
        "sun_azimuth": float(sun.findtext("AZIMUTH_ANGLE")),
        "view_zenith": float(z.mean()),
        "view_azimuth": float(_nanmean_azimuth(a)),
        "view_by_band": by_band,
    }


# ------------------------------------------------------------------------ interpolation


def _fill_nearest(grid: np.ndarray) -> np.ndarray:
    """Replace NaN cells by the value of the nearest valid cell."""
    from scipy import ndimage

    bad = ~np.isfinite(grid)
    if not bad.any():
        return grid
    if bad.all():
        raise InputError("angle grid has no valid value")
    idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
    return grid[tuple(idx)]


def _linear_taps(coords: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation on ``n`` grid points at fractional indices ``coords`` (clamped to
    the grid, i.e. constant extrapolation): lower and upper neighbour, weight of the upper."""
    c = np.clip(coords, 0, n - 1)
    i0 = np.minimum(np.floor(c).astype(int), n - 2) if n > 1 else np.zeros(len(c), int)
    return i0, np.minimum(i0 + 1, n - 1), c - i0


def _apply(t: rasterio.Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply an affine transform to coordinate arrays."""
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f


def _interp_to_grid(
    grids: list[np.ndarray], grid_transform, grid_crs, *, transform, crs, shape
) -> list[np.ndarray]:
    """Bilinear interpolation of coarse grids (pixel centres = grid points) onto the
    centres of an output grid, in any CRS. Edges are extended with the nearest value."""
    from scipy.interpolate import RegularGridInterpolator

    height, width = shape
    n_rows, n_cols = grids[0].shape
    inv = ~grid_transform
    same_crs = CRS.from_user_input(crs) == grid_crs
    if same_crs and transform.b == 0 and transform.d == 0:
        # Axis-aligned output in the grid's CRS: bilinear interpolation is separable (rows,
        # then columns) and needs no per-pixel coordinate arrays. Two taps per axis,
        # elementwise: a window gets the same bits as the whole (a BLAS product would not).
        xs = transform.c + (np.arange(width) + 0.5) * transform.a
        ys = transform.f + (np.arange(height) + 0.5) * transform.e
        fc = (xs - grid_transform.c) / grid_transform.a - 0.5
        fr = (ys - grid_transform.f) / grid_transform.e - 0.5
        (r0, r1, wr), (c0, c1, wc) = _linear_taps(fr, n_rows), _linear_taps(fc, n_cols)
        out = []
        for g in grids:
            rows = g[r0] * (1 - wr)[:, None] + g[r1] * wr[:, None]
            out.append((rows[:, c0] * (1 - wc) + rows[:, c1] * wc).astype(np.float32))
        return out
    # General case (other CRS or rotated grid): per-pixel coordinates, transformed to the
    # grid CRS, fed to RegularGridInterpolator row block by row block to bound memory.
    from rasterio.warp import transform as warp_transform

    axes = (np.arange(n_rows, dtype=float), np.arange(n_cols, dtype=float))
    interps = [RegularGridInterpolator(axes, g, method="linear") for g in grids]
    out = [np.empty(shape, np.float32) for _ in grids]
    cols = np.arange(width) + 0.5
    block = max(1, 2_000_000 // max(width, 1))
    for r0 in range(0, height, block):
        rr, cc = np.meshgrid(np.arange(r0, min(height, r0 + block)) + 0.5, cols, indexing="ij")
        x, y = _apply(transform, cc.ravel(), rr.ravel())
        if not same_crs:
            x, y = warp_transform(crs, grid_crs, x, y)
        fc, fr = _apply(inv, np.asarray(x), np.asarray(y))
        pts = np.column_stack(
            [
                np.clip(np.asarray(fr) - 0.5, 0, n_rows - 1),
                np.clip(np.asarray(fc) - 0.5, 0, n_cols - 1),
            ]
        )
        for o, f in zip(out, interps, strict=True):
            o[r0 : r0 + rr.shape[0]] = f(pts).reshape(rr.shape)
    return out


def interpolate_angles(
    angles: TileAngles, *, transform, crs, shape: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Interpolate the tile's angle grids to the pixel centres of an output grid.

    Parameters
    ----------
    angles
        Coarse grids from :func:`parse_tile_angles`.
    transform, crs, shape
        Output grid (``shape`` = rows, cols); any CRS (reprojected to the tile's).

    Returns
    -------
    dict
        ``sun_zenith``, ``sun_azimuth``, ``view_zenith``, ``view_azimuth``: float32
        arrays of ``shape``, in degrees. Azimuths are interpolated as unit vectors.
    """
    sa, va = (
        np.deg2rad(_fill_nearest(angles.sun_azimuth)),
        np.deg2rad(_fill_nearest(angles.view_azimuth)),
    )
    grids = [
        _fill_nearest(angles.sun_zenith),
        np.sin(sa),
        np.cos(sa),
        _fill_nearest(angles.view_zenith),
        np.sin(va),
        np.cos(va),
    ]
    sz, ss, sc, vz, vs, vc = _interp_to_grid(
        grids, angles.transform, angles.crs, transform=transform, crs=crs, shape=shape
    )
    return {
        "sun_zenith": sz,
        "sun_azimuth": (np.rad2deg(np.arctan2(ss, sc)) % 360).astype(np.float32),
        "view_zenith": vz,
        "view_azimuth": (np.rad2deg(np.arctan2(vs, vc)) % 360).astype(np.float32),
    }


def cosines(sun_zenith, sun_azimuth, view_zenith, view_azimuth) -> dict[str, np.ndarray]:
    """Angles in degrees → ``cosVZA``, ``cosSZA``, ``cosRAA`` (float32, broadcast together);
    ``cosRAA = cos(sun_azimuth − view_azimuth)``."""
    sz, sa, vz, va = np.broadcast_arrays(
        *(
            np.asarray(a, dtype=np.float64)
            for a in (sun_zenith, sun_azimuth, view_zenith, view_azimuth)
        )
    )
    return {
        "cosVZA": np.cos(np.deg2rad(vz)).astype(np.float32),
        "cosSZA": np.cos(np.deg2rad(sz)).astype(np.float32),
        "cosRAA": np.cos(np.deg2rad(sa - va)).astype(np.float32),
    }


def angle_cosines(
    angles: TileAngles, *, transform, crs, shape: tuple[int, int]
) -> dict[str, np.ndarray]:
    """The three SL2P angle bands, ``cosVZA``, ``cosSZA`` and ``cosRAA`` (float32 arrays of
    ``shape``), on the output grid ``transform``/``crs``/``shape`` (see
    :func:`interpolate_angles` and :func:`cosines`)."""
    a = interpolate_angles(angles, transform=transform, crs=crs, shape=shape)
    return cosines(a["sun_zenith"], a["sun_azimuth"], a["view_zenith"], a["view_azimuth"])


# ----------------------------------------------------------------------- solar position


def _julian_day(when: dt.datetime) -> float:
    if when.tzinfo is None:
        raise InputError(f"acquisition time {when.isoformat()} has no time zone; give it in UTC")
    seconds = when.timestamp()
    return seconds / 86400.0 + 2440587.5


def solar_position(when: dt.datetime, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Sun zenith and azimuth (degrees) with the NOAA solar calculator equations.

    Parameters
    ----------
    when
        Time of acquisition, timezone-aware (UTC or any other zone).
    lon, lat
        Longitude and latitude in degrees (WGS 84), scalars or arrays of one shape.

    Returns
    -------
    zenith, azimuth
        Geometric angles (no atmospheric refraction) in degrees; azimuth clockwise from
        north, in [0, 360).
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.radians(np.asarray(lat, dtype=np.float64))
    jd = _julian_day(when)
    jc = (jd - 2451545.0) / 36525.0
    l0 = np.radians((280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360)  # mean longitude
    m = np.radians(357.52911 + jc * (35999.05029 - 0.0001537 * jc))  # mean anomaly
    e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)  # orbit eccentricity
    centre = (
        np.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + np.sin(2 * m) * (0.019993 - 0.000101 * jc)
        + np.sin(3 * m) * 0.000289
    )
    omega = np.radians(125.04 - 1934.136 * jc)
    app_long = np.radians(np.degrees(l0) + centre - 0.00569 - 0.00478 * np.sin(omega))
    obliq = 23 + (26 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60) / 60
    obliq = np.radians(obliq + 0.00256 * np.cos(omega))
    decl = np.arcsin(np.sin(obliq) * np.sin(app_long))
    y = np.tan(obliq / 2) ** 2
    eq_time = 4 * np.degrees(  # equation of time, minutes
        y * np.sin(2 * l0)
        - 2 * e * np.sin(m)
        + 4 * e * y * np.sin(m) * np.cos(2 * l0)
        - 0.5 * y * y * np.sin(4 * l0)
        - 1.25 * e * e * np.sin(2 * m)
    )
    utc = when.astimezone(dt.UTC)
    minutes = utc.hour * 60 + utc.minute + (utc.second + utc.microsecond / 1e6) / 60
    true_solar = (minutes + eq_time + 4 * lon) % 1440
    hour_angle = np.radians(true_solar / 4 - 180)
    cos_zen = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    zen = np.arccos(np.clip(cos_zen, -1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_az = (np.sin(lat) * np.cos(zen) - np.sin(decl)) / (np.cos(lat) * np.sin(zen))
    az = np.degrees(np.arccos(np.clip(np.nan_to_num(cos_az), -1, 1)))
    azimuth = np.where(hour_angle > 0, (az + 180) % 360, (540 - az) % 360)
    return np.degrees(zen), azimuth
