"""A static STAC catalogue of a run's products, written with pystac.

``stac/catalog.json`` under the output root (its own folder, beside the user's); one collection per region (spatial and temporal
extent of its products); one item per region, date and sensor, with the products as
assets (each variable, its flags and uncertainty, and the input stack when it is under
the root), ``proj`` (EPSG, transform, shape), ``raster:bands`` (nodata, unit, data type,
scale/offset) and, for the flags, ``classification:bitfields``. Links are relative
(``SELF_CONTAINED``), so the folder can be moved or served as it is; odc-stac and
stackstac load the items.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import rasterio
from rasterio.warp import transform_bounds

from vercye_lai._version import __version__
from vercye_lai.errors import NoDataFoundError, require
from vercye_lai.io import files_under, remove_stale, tmp_path_for, write_error
from vercye_lai.model.sl2p import FLAG_MEANINGS, FLAG_NODATA
from vercye_lai.naming import flags_path, named_files, uncertainty_path

log = logging.getLogger(__name__)

CATALOG_NAME = "catalog.json"
#: the catalogue's own folder under the output root: its collections and items stay out of the user's folders
CATALOG_DIR = "stac"
VARIABLES = ("LAI", "FAPAR", "FCOVER", "CCC", "CWC")


def _products(root: Path) -> dict[tuple[str, dt.date, str], dict[str, Path]]:
    """(region, date, sensor) → variable → product path, for every product under ``root``."""
    out: dict[tuple[str, dt.date, str], dict[str, Path]] = {}
    for path, rn in named_files(files_under(root, ".tif")):
        if rn.suffix in VARIABLES:
            out.setdefault((rn.region, rn.date, rn.sensor_name), {})[rn.suffix] = path
    return out


def _stacks(root: Path) -> dict[tuple[str, dt.date, str], Path]:
    out: dict[tuple[str, dt.date, str], Path] = {}
    for path, rn in named_files(files_under(root, ".tif", ".vrt")):
        if rn.suffix is None:
            key = (rn.region, rn.date, rn.sensor_name)
            if key not in out or path.suffix == ".vrt":  # a mosaic wins
                out[key] = path
    return out


def _raster_bands(ds: rasterio.DatasetReader, *, unit: str | None = None) -> list:
    from pystac.extensions.raster import RasterBand

    bands = []
    for i in range(ds.count):
        nodata = ds.nodatavals[i]
        kw = {"data_type": ds.dtypes[i]}
        if nodata is not None:
            kw["nodata"] = "nan" if nodata != nodata else nodata
        if unit:
            kw["unit"] = unit
        if ds.scales[i] != 1.0 or ds.offsets[i] != 0.0:
            kw.update(scale=ds.scales[i], offset=ds.offsets[i])
        bands.append(RasterBand.create(**kw))
    return bands


def _asset(item, key: str, path: Path, root_href: Path, *, title: str, roles: list[str],
           unit: str | None = None, flags: bool = False) -> None:
    import pystac
    from pystac.extensions.raster import RasterExtension

    with rasterio.open(path) as ds:
        asset = pystac.Asset(href=str(path), title=title, roles=roles,
                             media_type=pystac.MediaType.COG if path.suffix == ".tif" else "application/xml")
        item.add_asset(key, asset)
        RasterExtension.ext(asset, add_if_missing=True).bands = _raster_bands(ds, unit=unit)
        from pystac.extensions.projection import ProjectionExtension

        proj = ProjectionExtension.ext(asset, add_if_missing=True)
        proj.epsg = ds.crs.to_epsg() if ds.crs else None
        proj.transform = list(ds.transform)[:6]
        proj.shape = [ds.height, ds.width]
    if flags:
        from pystac.extensions.classification import (
            Bitfield,
            Classification,
            ClassificationExtension,
        )

        fields = [Bitfield.create(offset=bit.bit_length() - 1, length=1, name=name.lower(),
                                  classes=[Classification.create(value=0, name="no"),
                                           Classification.create(value=1, name="yes")])
                  for bit, name in FLAG_MEANINGS.items()]
        ClassificationExtension.ext(asset, add_if_missing=True).bitfields = fields
        asset.extra_fields["nodata_note"] = f"{FLAG_NODATA} = input nodata"


def write_catalog(root: str | Path, *, title: str | None = None) -> Path:
    """Write (replace) ``{root}/stac/catalog.json`` and its collections and items (under
    ``stac/``, with links relative to the products), atomically.

    Raises
    ------
    NoDataFoundError
        No product under ``root``.
    DependencyError
        pystac missing (the ``stac`` extra).
    """
    pystac = require("pystac", "stac")
    from pystac.extensions.projection import ProjectionExtension

    root = Path(root)
    products = _products(root)
    if not products:
        raise NoDataFoundError("no {region}_{res}m_{date}_{VAR}.tif product under the folder", path=root)
    stacks = _stacks(root)
    catalog = pystac.Catalog(id="vercye-lai", title=title or f"vercye-lai products in {root.name}",
                             description=f"LAI products written by vercye-lai {__version__}")
    by_region: dict[str, list] = {}
    for (region, day, sensor), variables in sorted(products.items()):
        first = next(iter(variables.values()))
        with rasterio.open(first) as ds:
            bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
            tags = ds.tags()
            epsg = ds.crs.to_epsg()
        from shapely.geometry import box, mapping

        when = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        item_id = f"{region}_{day.isoformat()}" + ("" if sensor == "S2" else f"_{sensor}")
        item = pystac.Item(id=item_id, geometry=mapping(box(*bounds)), bbox=list(bounds), datetime=when,
                           properties={"vercye:model": tags.get("VERCYE_MODEL", ""), "vercye:sensor": sensor,
                                       "vercye:region": region})
        ProjectionExtension.ext(item, add_if_missing=True).epsg = epsg
        for var, path in variables.items():
            _asset(item, var, path, root, title=f"{var} (SL2P {tags.get('VERCYE_MODEL', '')})",
                   roles=["data"], unit="m2 m-2" if var == "LAI" else None)
            if flags_path(path).exists():
                _asset(item, f"{var}_flags", flags_path(path), root, title=f"{var} quality flags",
                       roles=["quality"], flags=True)
            if uncertainty_path(path).exists():
                _asset(item, f"{var}_uncertainty", uncertainty_path(path), root, title=f"{var} uncertainty",
                       roles=["data"], unit="m2 m-2" if var == "LAI" else None)
        if (region, day, sensor) in stacks:
            _asset(item, "stack", stacks[(region, day, sensor)], root, title="input stack (cosines, reflectances)",
                   roles=["source"])
        by_region.setdefault(region, []).append(item)
    for region, items in by_region.items():
        boxes = [it.bbox for it in items]
        extent = pystac.Extent(
            pystac.SpatialExtent([[min(b[0] for b in boxes), min(b[1] for b in boxes),
                                   max(b[2] for b in boxes), max(b[3] for b in boxes)]]),
            pystac.TemporalExtent([[min(it.datetime for it in items), max(it.datetime for it in items)]]))
        coll = pystac.Collection(id=region, description=f"SL2P LAI products of {region}", extent=extent,
                                 license="other", title=region)
        coll.add_items(items)
        catalog.add_child(coll)
    home = root / CATALOG_DIR
    home.mkdir(parents=True, exist_ok=True)
    dst = home / CATALOG_NAME
    remove_stale(home, f"{CATALOG_NAME}.")
    tmp = tmp_path_for(dst)  # a folder: the catalogue is written there, then moved in
    tmp.unlink()
    try:
        catalog.normalize_hrefs(str(tmp) + "/")  # a folder (its name ends in .part)
        _rebase_assets(catalog, home, tmp)
        catalog.save(pystac.CatalogType.SELF_CONTAINED)
        _move_in(tmp, home, list(by_region))
    except OSError as exc:  # a full disk, a permission: said naming the catalogue
        error = write_error(exc, dst)
        if error is exc:
            raise
        raise error from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s: %d collection(s), %d item(s)", dst, len(by_region), sum(map(len, by_region.values())))
    return dst


def _rebase_assets(catalog, root: Path, tmp: Path) -> None:
    """Asset hrefs relative to where the items will be once moved from ``tmp`` to ``root``."""
    for item in catalog.get_items(recursive=True):
        final_dir = root / Path(item.get_self_href()).parent.relative_to(tmp)
        for asset in item.assets.values():
            asset.href = os.path.relpath(asset.href, final_dir)


def _move_in(tmp: Path, root: Path, regions: Iterable[str]) -> None:
    """Replace the catalogue files under ``root`` by those written in ``tmp``."""
    for region in regions:
        dst = root / region
        (dst / "collection.json").unlink(missing_ok=True)
        for old in dst.glob("*/*.json") if dst.is_dir() else ():  # the items of a previous catalogue
            if old.parent.name.startswith(region + "_"):
                old.unlink(missing_ok=True)  # (a catalogue written beside this one may have moved it)
        for f in (tmp / region).rglob("*.json"):
            target = dst / f.relative_to(tmp / region)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, target)
    os.replace(tmp / CATALOG_NAME, root / CATALOG_NAME)  # last: the catalogue appears whole
