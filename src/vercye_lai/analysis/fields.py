"""The fields of an analysis: their vector file read and checked, and their zones' names.

A zone is named by its id column's value as text (:func:`zone_ids`), kept as the file gives
it (``validate --series``, ``export-apsim`` and the report give it back); the files an
analysis writes take its file-name form (:func:`zone_stem`). :mod:`.geometry` puts the
zones on the LAI grid.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from vercye_lai.errors import InputError
from vercye_lai.regions import non_polygons, read_vector, vector_layer
from vercye_lai.regions import safe_name as _safe

if TYPE_CHECKING:
    import geopandas as gpd

log = logging.getLogger(__name__)

__all__ = ["check_polygon_file", "known_zone", "read_geometries", "zone_ids", "zone_name", "zone_stem"]


def check_polygon_file(path: str | Path, *, layer: str | None = None) -> None:
    """From the file's metadata only (its layers' declared geometry types): a file whose layer
    declares points or lines cannot be zones of the polygon modes; a file of several layers
    needs ``layer``. What the metadata cannot tell (a mixed or undeclared type) is checked
    when the geometries are read (:func:`read_geometries`).

    Raises
    ------
    DataIOError
        Missing or unreadable file.
    InputError
        A point or line layer, several layers and none chosen, or an unknown layer.
    """
    path = Path(path)
    kind = vector_layer(path, layer)
    if any(word in kind for word in ("Point", "LineString")):
        raise InputError(f"geometries must be polygons in the polygon modes; the layer holds {kind}", path=path)


def read_geometries(path: str | Path, *, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read the polygons of a vector file (any format geopandas/pyogrio reads) and check
    they are usable (see :func:`vercye_lai.regions.read_vector` for the layer and the CRS).

    The index holds the file's feature ids (a GeoPackage's ``fid`` is no column). Empty
    and null geometries are dropped with a warning; invalid ones are repaired with
    :func:`shapely.make_valid`.

    Raises
    ------
    DataIOError
        The file is missing or cannot be read as vector data.
    InputError
        No feature or no non-empty geometry, geometries that are not polygons, several
        layers and none chosen, or the file declares no CRS.
    """
    import shapely

    gdf = read_vector(path, layer=layer, fid_as_index=True)
    empty = gdf.geometry.isna() | gdf.geometry.is_empty
    if empty.all():
        raise InputError("no non-empty geometry in this file", path=path)
    if empty.any():
        log.warning("%s: ignoring %d empty geometries", Path(path).name, int(empty.sum()))
        gdf = gdf[~empty]
    found = non_polygons(gdf)
    if found:  # a line or a point covers no pixel: never a silent empty field
        raise InputError(f"geometries must be polygons in the polygon modes; found {found}", path=path)
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        log.warning("%s: repairing %d invalid geometries", Path(path).name, int(invalid.sum()))
        gdf = gdf.set_geometry(shapely.make_valid(gdf.geometry.values))
    return gdf


def zone_ids(gdf, id_column: str | None, *, path: str | Path | None = None) -> list[str]:
    """The zones' names: ``id_column`` values as text (``3.0`` → ``"3"``), else the row index.

    ``FID`` without such a column means the file's own feature ids (the index of
    :func:`read_geometries`' result; a GeoPackage's ``fid``). Falls back to the row index
    (0, 1, ...) with a warning when the column is absent, has missing values or is not
    unique. The names are kept as they are (``validate --series``, ``export-apsim`` and the
    report give them back); the files take :func:`zone_stem`.

    Raises
    ------
    InputError
        Two ids whose file names would be the same (``"A/B"`` and ``"A B"``; letter case
        counts as the same: not every file system tells it apart).
    """
    values = None
    if id_column and id_column in gdf.columns:
        values = gdf[id_column]
    elif id_column and id_column.upper() == "FID" and gdf.index.name is not None:
        log.info("%s: no column %r; using the file's feature ids", path, id_column)
        values = gdf.index.to_series()
    if values is not None:
        if values.notna().all() and values.is_unique:
            names = [zone_name(v) for v in values]
            _check_stems(names, id_column, path)
            return names
        log.warning("%s: column %r has missing or repeated values; using the row index as id",
                    path, id_column)
    elif id_column:
        log.warning("%s: no column %r; using the row index as id (--id-column to choose one)",
                    path, id_column)
    return [str(i) for i in range(len(gdf))]


def zone_name(value: object) -> str:
    """A zone id as text, as the analysis names the zone (``3.0`` → ``"3"``, as a float
    column of whole numbers holds them)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def zone_stem(name: str) -> str:
    """A zone's name as a file-name fragment (``"Field 1/2"`` → ``"Field_1_2"``; see
    :func:`.regions.safe_name`)."""
    return _safe(name) or "_"


def known_zone(name: str, known: Collection[str]) -> str:
    """The name under which an analysis that knows ``known`` zones has zone ``name``: its
    own, or its file stem where an older analysis named zones as their files (``"Field_1"``
    for ``"Field 1"``); ``name`` when neither is known."""
    return name if name in known or zone_stem(name) not in known else zone_stem(name)


def _check_stems(names: list[str], id_column: str | None, path: str | Path | None) -> None:
    stems: dict[str, list[str]] = {}
    for n in names:
        stems.setdefault(zone_stem(n).casefold(), []).append(n)
    clashes = [ids for ids in stems.values() if len(ids) > 1]
    if clashes:
        shown = "; ".join(", ".join(map(repr, ids)) for ids in clashes[:3]) + (
            f" and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        raise InputError(f"column {id_column!r}: ids that would share a file name ({shown}): rename them "
                         "or choose another --id-column (FID: the file's feature ids)", path=path)
