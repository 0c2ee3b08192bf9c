"""The region library: one GeoJSON per administrative unit, loaded by name.

:func:`build_library` splits a boundary file (shapefile, GeoPackage, GeoJSON…) into one
``{name}.geojson`` per feature, in EPSG:4326, where ``name`` is a file-system-safe form of
the feature's name (the original is kept as the ``original_name`` property). Every other
step refers to a region by that name (``{region}_{res}m_{date}.tif``); :func:`load_region`
finds it again, and suggests close matches for a misspelt name.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

from vercye_lai.errors import DataIOError, InputError
from vercye_lai.io import write_text_atomic

log = logging.getLogger(__name__)

LIBRARY_CRS = "EPSG:4326"
#: Columns that, when present, give a feature's administrative level (case-insensitive).
LEVEL_COLUMNS = ("admin_level", "adm_level", "admin_leve", "level", "gadm_level")
VECTOR_SUFFIXES = (".geojson", ".json", ".shp", ".gpkg", ".fgb", ".zip", ".kml", ".gml")


def safe_name(name: str) -> str:
    """A file-system-safe region name: ``"Ivano-Frankivs'k"`` → ``"Ivano-Frankivsk"``,
    ``"Kiev City"`` → ``"Kiev_City"``. Letters of any script are kept; apostrophes are
    dropped; runs of other characters become one ``_``."""
    s = unicodedata.normalize("NFKC", str(name)).strip()
    s = re.sub(r"['’`ʼ]", "", s)
    s = re.sub(r"[^\w.-]+", "_", s).strip("._-")
    return s


def vector_layer(path: Path, layer: str | None) -> str:
    """The declared geometry type of the layer of ``path`` a reader takes (``layer``, or the
    only one; ``""`` where none is declared), from the file's metadata.

    Raises
    ------
    DataIOError
        Missing file, or not one GDAL reads as vector data.
    InputError
        Several layers and none chosen, or an unknown layer (naming them).
    """
    import pyogrio

    if not path.exists():
        raise DataIOError("file does not exist", path=path)
    try:
        layers = {str(n): str(t or "") for n, t in pyogrio.list_layers(path)}
    except Exception as exc:  # pyogrio raises its own DataSourceError and friends
        raise DataIOError(f"cannot read vector file: {exc}", path=path) from exc
    described = ", ".join(f"{n} ({t or 'no geometry'})" for n, t in layers.items())
    if layer is None and len(layers) > 1:
        raise InputError(f"has {len(layers)} layers: {described}; choose one with --layer "
                         "(run config: layer = ...)", path=path)
    if layer is not None and layer not in layers:
        raise InputError(f"has no layer {layer!r}; its layers: {described}", path=path)
    return layers[layer] if layer is not None else next(iter(layers.values()), "")


def read_vector(path: str | os.PathLike, *, layer: str | None = None, **kw):
    """Read a vector file with geopandas, with errors naming the file.

    Every vector input of the pipeline is read here, so every one is checked the same way:
    a file of several layers needs ``layer`` (never silently the first one); coordinates
    must fit the declared CRS (a GeoJSON is EPSG:4326 by definition, and projected metres
    in one without a CRS member are a common mistake).

    Raises
    ------
    DataIOError
        Missing or unreadable file.
    InputError
        Several layers and none chosen, an unknown layer, no CRS, no feature, or
        coordinates outside lon/lat in a geographic CRS.
    """
    import geopandas as gpd  # imported here: slow to import, not needed by every command

    path = Path(path)
    vector_layer(path, layer)
    try:
        gdf = gpd.read_file(path, layer=layer, **kw)
    except Exception as exc:  # pyogrio raises its own DataSourceError and friends
        raise DataIOError(f"cannot read vector file: {exc}", path=path) from exc
    if not isinstance(gdf, gpd.GeoDataFrame):  # a table (CSV): points from its lon/lat columns
        gdf = _points_of_table(gdf, path)
    if gdf.crs is None:
        raise InputError(
            "vector file has no CRS (a .prj file or a 'crs' member is needed)", path=path
        )
    if gdf.empty:
        raise InputError("vector file has no features", path=path)
    if gdf.crs.is_geographic:
        x0, y0, x1, y1 = gdf.total_bounds
        if max(abs(x0), abs(x1)) > 180.5 or max(abs(y0), abs(y1)) > 90.5:
            raise InputError(
                f"coordinates are not lon/lat (x {x0:.6g} to {x1:.6g}, y {y0:.6g} to {y1:.6g}) although "
                f"the CRS is {gdf.crs.to_string()}; a GeoJSON is always EPSG:4326: reproject it, or use a "
                "format that declares its CRS (GeoPackage)", path=path)
    return gdf


#: column names of a table's point positions (degrees, WGS 84), in order of preference
LON_COLUMNS = ("lon", "longitude", "lng", "long")
LAT_COLUMNS = ("lat", "latitude")


def _points_of_table(df, path: Path):
    """A table with lon/lat columns as points in EPSG:4326 (said in the log)."""
    import geopandas as gpd

    lower = {str(c).lower(): c for c in df.columns}
    lon = next((lower[c] for c in LON_COLUMNS if c in lower), None)
    lat = next((lower[c] for c in LAT_COLUMNS if c in lower), None)
    if lon is None or lat is None:
        raise InputError(f"a table without geometry and without lon/lat columns (its columns: "
                         f"{', '.join(map(str, df.columns))})", path=path)
    import pandas as pd

    x, y = pd.to_numeric(df[lon], errors="coerce"), pd.to_numeric(df[lat], errors="coerce")
    if x.isna().any() or y.isna().any():
        raise InputError(f"columns {lon!r}/{lat!r}: {int((x.isna() | y.isna()).sum())} row(s) without a number "
                         "(decimal commas? write 2.5, not 2,5)", path=path)
    if (y.abs() > 90).any() and (x.abs() <= 90).all():
        raise InputError(f"column {lat!r} holds values beyond ±90°: are {lon!r} and {lat!r} swapped?", path=path)
    log.info("%s: points from columns %s/%s (degrees, EPSG:4326)", path.name, lon, lat)
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(x, y), crs="EPSG:4326")


def _level_column(columns: Iterable[str], level_col: str | None) -> str | None:
    if level_col:
        return level_col
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in LEVEL_COLUMNS if c in lower), None)


def plan_library(src: str | os.PathLike, *, name_col: str, level_col: str | None = None) -> dict:
    """Read a boundary file and return ``{safe name: one-row GeoDataFrame in EPSG:4326}``.

    Parameters
    ----------
    src
        Boundary file (any format GDAL reads).
    name_col
        Column holding each unit's name.
    level_col
        Column giving the administrative level; by default the first of
        :data:`LEVEL_COLUMNS` that exists. A file mixing levels is refused.

    Raises
    ------
    InputError
        Unknown columns, mixed levels, empty or duplicate names.
    """
    gdf = read_vector(src)
    if name_col not in gdf.columns:
        raise InputError(
            f"no column {name_col!r}; columns are: "
            + ", ".join(c for c in gdf.columns if c != "geometry"),
            path=src,
        )
    level = _level_column(gdf.columns, level_col)
    if level_col and level_col not in gdf.columns:
        raise InputError(f"no level column {level_col!r}", path=src)
    if level is not None:
        levels = sorted(str(v) for v in gdf[level].dropna().unique())
        if len(levels) > 1:
            raise InputError(
                f"mixes administrative levels ({level} = {', '.join(levels)}); "
                "select one level first (e.g. with ogr2ogr -where or geopandas)",
                path=src,
            )
    gdf = gdf.to_crs(LIBRARY_CRS)
    out: dict = {}
    for i in range(len(gdf)):
        row = gdf.iloc[[i]].copy()
        original = row[name_col].iloc[0]
        name = safe_name(original) if original is not None else ""
        if not name:
            raise InputError(f"feature {i} has an empty {name_col!r}", path=src)
        if name in out:
            raise InputError(
                f"two features are both named {name!r} in column {name_col!r}; "
                "use a column with unique names (--admin-name-col)",
                path=src,
            )
        row["original_name"] = original
        row["region_name"] = name
        out[name] = row
    return out


def write_region(row, dst: str | os.PathLike) -> Path:
    """Write a one-feature GeoDataFrame as GeoJSON, atomically."""
    return write_text_atomic(dst, row.to_json(na="null", show_bbox=False, drop_id=True))


def build_library(
    src: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    name_col: str,
    level_col: str | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Split a boundary file into ``{output_dir}/{name}.geojson`` files (EPSG:4326).

    Parameters
    ----------
    src, name_col, level_col
        See :func:`plan_library`.
    output_dir, overwrite, progress
        See :func:`write_library`.

    Returns
    -------
    list of Path
        Every region file of ``src``, written now or already present.
    """
    plan = plan_library(src, name_col=name_col, level_col=level_col)
    return write_library(plan, output_dir, overwrite=overwrite, progress=progress)


def write_library(
    plan: dict,
    output_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write the regions of :func:`plan_library` as ``{output_dir}/{name}.geojson``.

    Parameters
    ----------
    plan
        Safe name → one-row GeoDataFrame.
    output_dir
        Library folder (created).
    overwrite
        Rewrite files that already exist (default: keep them, so a rerun is cheap).
    progress
        Called with each region name once it is done.
    """
    out_dir = Path(output_dir)
    paths = []
    for name, row in plan.items():
        dst = out_dir / f"{name}.geojson"
        if dst.exists() and not overwrite:
            log.debug("%s exists, skipped", dst)
        else:
            write_region(row, dst)
            log.debug("wrote %s", dst)
        paths.append(dst)
        if progress:
            progress(name)
    return paths


def library_names(library_dir: str | os.PathLike) -> list[str]:
    """Region names available in a library folder."""
    return sorted(p.stem for p in Path(library_dir).glob("*.geojson") if not p.name.startswith("."))


def region_path(
    name_or_path: str | os.PathLike, library_dir: str | os.PathLike | None = None
) -> Path:
    """Resolve a region name (looked up in ``library_dir``) or a vector file path.

    Raises
    ------
    InputError
        For an unknown name, listing the closest names in the library.
    """
    p = Path(name_or_path)
    if p.suffix.lower() in VECTOR_SUFFIXES or p.exists() or library_dir is None:
        if not p.exists():
            raise DataIOError("region file does not exist", path=p)
        return p
    lib = Path(library_dir)
    if not lib.is_dir():
        raise DataIOError("region library folder does not exist", path=lib)
    for cand in (str(name_or_path), safe_name(str(name_or_path))):
        if (lib / f"{cand}.geojson").exists():
            return lib / f"{cand}.geojson"
    names = library_names(lib)
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(str(name_or_path).lower(), list(by_lower), n=5, cutoff=0.5)
    hint = (
        f"; did you mean {', '.join(by_lower[c] for c in close)}?"
        if close
        else f"; {len(names)} regions in the library"
        + (f", e.g. {', '.join(names[:5])}" if names else "")
    )
    raise InputError(f"unknown region {str(name_or_path)!r}{hint}", path=lib)


def load_region(name_or_path: str | os.PathLike, library_dir: str | os.PathLike | None = None):
    """Load a region as a GeoDataFrame in EPSG:4326.

    Parameters
    ----------
    name_or_path
        A region name of the library (``"Poltava"``), or the path of any vector file.
    library_dir
        The region library folder (needed for names).

    Returns
    -------
    geopandas.GeoDataFrame
        The region's features; :func:`region_geometry` gives their union.

    Raises
    ------
    InputError
        An unknown region, or features that are not polygons (naming the file).
    """
    path = region_path(name_or_path, library_dir)
    gdf = read_vector(path)
    found = non_polygons(gdf)
    if found:  # a point's grid is one pixel: never silently
        raise InputError(f"a region must be polygons (the area to acquire); found {found}", path=path)
    return gdf.to_crs(LIBRARY_CRS)


def non_polygons(gdf) -> str | None:
    """What ``gdf`` holds when it is not polygons only (``"Point (2), Polygon (1)"``), else ``None``."""
    kinds = gdf.geom_type.value_counts()
    if set(kinds.index) <= {"Polygon", "MultiPolygon"}:
        return None
    return ", ".join(f"{k} ({n})" for k, n in kinds.items())


def region_geometry(gdf, crs=None):
    """Union of a region's features as one shapely geometry, optionally reprojected to ``crs``."""
    if crs is not None:
        gdf = gdf.to_crs(crs)
    geom = gdf.geometry.union_all()
    if geom.is_empty:
        raise InputError("region geometry is empty")
    return geom


def region_name(name_or_path: str | os.PathLike) -> str:
    """The region name used in output file names: the name itself, or a file's stem."""
    p = Path(name_or_path)
    return safe_name(p.stem if p.suffix.lower() in VECTOR_SUFFIXES else str(name_or_path))
