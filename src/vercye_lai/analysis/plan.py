"""Planning an analysis: its options and inputs checked, its zones and days laid out.

:func:`plan_analysis` reads the geometry file and the LAI files' metadata (no pixels) and
returns an :class:`AnalysisPlan`, small and picklable, that the parts of the analysis
(:func:`~.core.analyze_part`) and its final step (:func:`~.core.finish_analysis`) share.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.warp import transform_bounds

from vercye_lai.analysis.fields import read_geometries, zone_ids
from vercye_lai.analysis.geometry import MaskZones, PolygonZones, Zones
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.analysis.timeseries import adjustment_calibration
from vercye_lai.errors import InputError
from vercye_lai.grid import Grid
from vercye_lai.io import open_raster
from vercye_lai.model.calibration import Calibration
from vercye_lai.model.registry import model_family
from vercye_lai.naming import LANDSAT_SENSORS, RasterName, find_observations, uncertainty_path
from vercye_lai.options import check_value, settings_of

log = logging.getLogger(__name__)


def build_zones(geometry_path: str | Path, mode: str, *, id_column: str | None = "FID",
                all_touched: bool = False, layer: str | None = None,
                within: tuple[float, float, float, float] | None = None) -> Zones:
    """The zones of ``geometry_path`` for ``mode`` (see :func:`analyze`); a crop mask only where
    it meets ``within`` (the LAI rasters' lon/lat bounds)."""
    check_value("mode", mode, settings_of(AnalysisOptions)["mode"])
    path = Path(geometry_path)
    if mode == "raster":
        return MaskZones(path, path.stem, within=within)
    gdf = read_geometries(path, layer=layer)
    names = zone_ids(gdf, id_column, path=path) if mode == "poly_iter" else [path.stem]
    return PolygonZones(gdf, names, path=path, all_touched=all_touched)


@dataclass(frozen=True, eq=False)
class AnalysisPlan:
    """One analysis, checked and planned: what its parts and its final step need.

    Made by :func:`plan_analysis`; small and picklable, so that the parts
    (:func:`analyze_part`) can run anywhere, e.g. on Dask workers.

    Attributes
    ----------
    files
        Date → LAI file, for the dates of the range that have one.
    names
        Zone names, in feature order (one name in ``raster`` and ``poly_agg`` modes).
    order
        Zone numbers (0-based) in a space-filling-curve order of their centroids, so that
        consecutive zones are near each other and a chunk of them has a small window.
    reference
        The first LAI file (by date) whose raster meets the zones: the max maps are on its
        grid and the zones' pixel counts are taken there.
    options
        How the statistics and maps are made.
    """
    lai_dir: Path
    outdir: Path
    region: str
    geometry_path: Path
    start: dt.date
    end: dt.date
    files: dict[dt.date, Path]
    names: tuple[str, ...]
    order: tuple[int, ...]
    reference: Path
    options: AnalysisOptions = AnalysisOptions()
    #: other sensors' files of a date that :attr:`files` has (in ``options.sensors`` order)
    more: dict[dt.date, tuple[Path, ...]] = field(default_factory=dict)
    #: zones that meet no raster of the season: left out of the windows read (skipped anyway)
    ignored: tuple[int, ...] = ()
    #: the lon/lat bounds of the season's rasters (a crop mask is read there only)
    extent: tuple[float, float, float, float] | None = None
    #: the zones :func:`plan_analysis` built, reused by parts run in this process; not
    #: pickled (a Dask worker elsewhere reads the geometry file again)
    built: Zones | None = field(default=None, repr=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "built": None}

    @functools.cached_property
    def has_uncertainty(self) -> bool:
        """The LAI files have uncertainty rasters beside them (``predict --uncertainty``):
        the CSVs then get a ``LAI Uncertainty`` column."""
        return any(uncertainty_path(p).exists() for p in self.all_files)

    @property
    def all_files(self) -> list[Path]:
        """Every LAI file, by date (a date's sensors in ``options.sensors`` order)."""
        return [p for d in sorted(self.files) for p in (self.files[d], *self.more.get(d, ()))]

    def day_files(self, day: dt.date) -> tuple[Path, ...]:
        """The files of ``day`` (none, one, or one per sensor)."""
        return (self.files[day], *self.more.get(day, ())) if day in self.files else ()

    @functools.cached_property
    def multi_sensor(self) -> bool:
        """Some file is not Sentinel-2's: the CSVs get a ``sensor`` column."""
        return any(sensor_of(p) != "S2" for p in self.all_files)

    @functools.cached_property
    def days(self) -> list[dt.date]:
        """Every day of the range, in order (the rows of the CSVs)."""
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def file_days(self) -> list[int]:
        """Positions in :attr:`days` of the days that have a file."""
        return [(d - self.start).days for d in sorted(self.files)]

    def zone_chunks(self, size: int | None = None) -> list[tuple[int, ...]]:
        """The zones in chunks of at most ``size`` neighbouring zones (default: one chunk)."""
        order = self.order
        size = size or len(order)
        return [tuple(sorted(order[i:i + size])) for i in range(0, len(order), size)]

    def day_chunks(self, size: int | None = None) -> list[tuple[int, ...]]:
        """The days that have a file, in chunks of at most ``size`` (default: one chunk)."""
        days = self.file_days
        size = size or len(days)
        return [tuple(days[i:i + size]) for i in range(0, len(days), size)]


def plan_zones(plan: AnalysisPlan, zones: Sequence[int] | None = None) -> Zones:
    """The zones numbered ``zones`` (default: all) of ``plan``, ready to rasterise."""
    every = plan.built
    if every is None:  # in another process: read the geometry again
        if plan.options.mode == "raster":
            every = MaskZones(plan.geometry_path, plan.names[0], within=plan.extent)
        else:
            every = PolygonZones(read_geometries(plan.geometry_path, layer=plan.options.layer), list(plan.names),
                                 path=plan.geometry_path, all_touched=plan.options.all_touched)
            every.ignore(plan.ignored)
    if zones is None or plan.options.mode != "poly_iter":
        return every
    idx = list(zones)
    ignored = set(plan.ignored)
    return PolygonZones(every.gdf.iloc[idx], [plan.names[i] for i in idx], path=plan.geometry_path,
                        all_touched=plan.options.all_touched).ignore([k for k, i in enumerate(idx) if i in ignored])


def _spatial_order(zones: Zones) -> tuple[int, ...]:
    """Zone numbers along a Hilbert curve of their centroids (feature order for one zone)."""
    if not isinstance(zones, PolygonZones) or zones.count < 2:
        return tuple(range(zones.count))
    import geopandas as gpd
    import shapely

    b = shapely.bounds(zones.gdf.geometry.values)  # box centres: enough for an order
    centres = gpd.GeoSeries(shapely.points((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2))
    return tuple(np.argsort(centres.hilbert_distance().to_numpy(), kind="stable").tolist())


def sensor_of(path: Path) -> str:
    """``S2`` or the sensor token of a product's name."""
    try:
        return RasterName.parse(path).sensor_name
    except InputError:
        return "S2"


def split_observations(obs: Mapping) -> tuple[dict[dt.date, Path], dict[dt.date, tuple[Path, ...]]]:
    """``(date, sensor) → path`` (or ``date → path``) as the first file of each date and
    the others."""
    first: dict[dt.date, Path] = {}
    more: dict[dt.date, list[Path]] = {}
    for key, path in obs.items():
        day = key[0] if isinstance(key, tuple) else key
        if day in first:
            more.setdefault(day, []).append(Path(path))
        else:
            first[day] = Path(path)
    return dict(sorted(first.items())), {d: tuple(v) for d, v in more.items()}


def _grids(paths: Sequence[Path]) -> list[Grid]:
    """The grid of each raster of ``paths`` (its metadata; each file opened once for the plan)."""
    grids = []
    for path in paths:
        with open_raster(path) as ds:
            grids.append(Grid.of(ds))
    return grids


def _lonlat_extent(grids: Sequence[Grid]) -> tuple[float, float, float, float]:
    """The lon/lat bounds of ``grids`` together."""
    boxes = {(g.crs.to_string(), g.bounds) for g in grids}
    lonlat = np.array([transform_bounds(crs, "EPSG:4326", *b, densify_pts=21) for crs, b in boxes])
    return (float(lonlat[:, 0].min()), float(lonlat[:, 1].min()), float(lonlat[:, 2].max()), float(lonlat[:, 3].max()))


def _outside_every_raster(zones: Zones, grids: Sequence[Grid]) -> tuple[int, ...]:
    """The zones that meet no raster of ``grids`` (each distinct grid tried once)."""
    if zones.count < 2:
        return ()
    met = np.zeros(zones.count, dtype=bool)
    for grid in dict.fromkeys(grids):
        met |= zones.meets(grid)
    return tuple(int(z) for z in np.flatnonzero(~met))


def _reference_file(paths: Sequence[Path], grids: Sequence[Grid], zones: Zones) -> tuple[Path, Grid] | None:
    """The first file (by date, then sensor) whose raster (of ``grids``, one per path) meets
    the zones' window, and its grid."""
    for path, grid in zip(paths, grids, strict=True):
        if grid.overlap(grid.window_for(zones.bounds_in(grid.crs))) is not None:
            return path, grid
    return None


def check_product_models(files: Mapping, calibration: Calibration | None = None) -> None:
    """The products were made by a network of their sensor (Landsat numbering for L30/L8/L9,
    Sentinel-2's for S2/S30: their tags say which inputs), and a calibration applied to them
    was fitted for the model that made them — the same rule as predict's. A sensor's products
    made by models of different families (not one per-unit model's units) are logged.

    Raises
    ------
    InputError
        Naming the product and what made it.
    """
    families: dict[tuple[bool, str], dict[str, list[str]]] = {}  # (Landsat?, model family) -> model -> dates
    for key, path in files.items():
        sensor = key[1] if isinstance(key, tuple) else "S2"
        with open_raster(path) as ds:
            tags = ds.tags()
        inputs, model = tags.get("VERCYE_MODEL_INPUTS", ""), tags.get("VERCYE_MODEL", "")
        if model:
            day = key[0] if isinstance(key, tuple) else key
            family = families.setdefault((sensor in LANDSAT_SENSORS, model_family(model)), {})
            family.setdefault(model, []).append(str(day))
        if inputs:  # products of other tools carry no tags: nothing to check
            landsat_net = "B8A" not in inputs.split(",") and "B2" not in inputs.split(",")
            if landsat_net != (sensor in LANDSAT_SENSORS):
                made = "a Landsat" if landsat_net else "a Sentinel-2"
                raise InputError(f"{sensor} product made by {made} network ({model}): predict it again with "
                                 f"the network of its sensor (--landsat-model / --model)", path=path)
        if calibration is not None and model and model != calibration.model:
            raise InputError(f"the adjustment's calibration was fitted for model {calibration.model}, this "
                             f"product was made by {model}: fit one for {model}", path=calibration.path)
    for landsat in (False, True):
        mixed = [models for (ls, _), models in families.items() if ls == landsat]
        if len(mixed) > 1:  # a rerun of some dates with another --model: the series steps between networks
            log.warning("the %s products mix models (the series steps where the model changes): %s; predict "
                        "the season again with one --model", "Landsat" if landsat else "Sentinel-2",
                        "; ".join(f"{m} ({', '.join(d[:3])}{', …' if len(d) > 3 else ''})"
                                  for models in mixed for m, d in models.items()))


def _say_outside(zones: Zones, grid: Grid) -> None:
    """Warn of zones partly outside the LAI rasters (the reference's ``grid``): their pixels
    there count as no data on every date, so a --max-cloud-percent makes every day a gap."""
    share = zones.share_inside(grid)
    out = [(n, 1 - s) for n, s in zip(zones.names, share, strict=True) if 0 < s < 0.95]  # (wholly outside: skipped)
    if out:
        shown = ", ".join(f"{n} ({100 * f:.0f}% outside)" for n, f in out[:10])
        log.warning("%d zone(s) lie partly outside the LAI rasters: %s%s; their pixels there count as no data "
                    "(the cloud/no-data share) on every date", len(out), shown,
                    f" and {len(out) - 10} more" if len(out) > 10 else "")


def plan_analysis(
    lai_dir: str | Path,
    outdir: str | Path,
    region: str,
    geometry_path: str | Path,
    *,
    resolution: float = 20,
    start: dt.date | None = None,
    end: dt.date | None = None,
    options: AnalysisOptions = AnalysisOptions(),
    files: Mapping | None = None,
) -> AnalysisPlan:
    """Check the options and inputs of an analysis and plan it (see :func:`analyze`).

    Reads the geometry file and the LAI files' metadata, no pixels. Raises as
    :func:`analyze` does for bad options, missing files and a geometry that meets no
    raster.

    Parameters
    ----------
    lai_dir
        Folder of ``{region}_{res}m_{YYYY-MM-DD}_{variable}.tif`` (LAI in m²/m², any CRS;
        NaN and the declared nodata are invalid).
    outdir
        Folder for ``{region}_{geometry}[_{id}]_{start}_{end}_STATS.csv`` and ``_MAX.tif``.
    region
        Region name as in the file names.
    geometry_path
        ``raster`` mode: a crop mask raster (non-zero = crop), any CRS/resolution/extent.
        ``poly_agg``/``poly_iter``: a vector file in any CRS (reprojected to the LAI CRS).
    resolution
        Pixel size (m) in the file names.
    start, end
        Inclusive date range; default: the first and last date with a file.
    options
        Mode, adjustment, gap filling, thresholds... (see :class:`.options.AnalysisOptions`).
    """
    if start and end and start > end:
        raise InputError(f"start date {start} is after end date {end}")
    o = options
    cal = adjustment_calibration(o.adjustment_file) if o.adjustment_file is not None else None
    if files is None:
        files = find_observations(lai_dir, region, resolution, sensors=o.sensors, suffix=o.variable,
                                  extensions=(".tif",), start=start, end=end)
    check_product_models(files, cal)
    files, more = split_observations(files)
    every = [p for d in sorted(files) for p in (files[d], *more.get(d, ()))]
    grids = _grids(every)
    extent = _lonlat_extent(grids)
    zones = build_zones(geometry_path, o.mode, id_column=o.id_column, all_touched=o.all_touched,
                        layer=o.layer, within=extent)
    ignored = _outside_every_raster(zones, grids)
    if isinstance(zones, PolygonZones):
        zones.ignore(ignored)
    found = _reference_file(every, grids, zones)
    if found is None:
        raise InputError(
            f"the geometry does not overlap any of the {len(files)} '{region}' LAI raster(s) "
            f"in {lai_dir} between {start or min(files)} and {end or max(files)}",
            path=geometry_path)
    reference, reference_grid = found
    _say_outside(zones, reference_grid)
    return AnalysisPlan(
        lai_dir=Path(lai_dir), outdir=Path(outdir), region=region,
        geometry_path=Path(geometry_path), start=start or min(files), end=end or max(files),
        files=dict(files), names=tuple(zones.names), order=_spatial_order(zones),
        reference=reference, options=options, built=zones, more=more, ignored=ignored, extent=extent,
    )
