"""The run config: its types, its parser and the commented example.

``[predict]`` is read into :class:`~vercye_lai.predict.PredictOptions` and each
``[[analyses]]`` entry's options into :class:`~vercye_lai.analysis.options.AnalysisOptions`
(:func:`vercye_lai.options.from_table`): the config has exactly the options of the
commands, with the same defaults, allowed values and checks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from vercye_lai.acquire import SOURCES, Source, register, source
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.errors import ConfigError, InputError
from vercye_lai.naming import check_region_name, resolution_problem
from vercye_lai.options import Table, from_table
from vercye_lai.predict import PredictOptions, direct
from vercye_lai.regions import load_region, region_geometry, region_path
from vercye_lai.run.executor import EXECUTORS, DaskSettings

STEPS = ("acquire", "mosaic", "predict", "analyze", "quicklook")

# the sources that write the products themselves live with predict (they need it), so the
# run registers them: acquire cannot import predict
register(direct.SOURCE)
#: every ``[source] kind`` of a run: the stack sources, then ``stac-direct``
KINDS: tuple[str, ...] = (*SOURCES, direct.SOURCE.kind)

#: zones (fields) an analysis part task covers on threads and Dask
DEFAULT_ZONES_PER_TASK = 1000


@dataclass(frozen=True)
class RegionConfig:
    """One ``[[regions]]`` entry: a name, its geometry (library or file) and a date range."""
    name: str
    start: dt.date
    end: dt.date
    library: Path | None = None
    geometry: Path | None = None

    def geometry_path(self) -> Path:
        """The region's vector file (``{library}/{name}.geojson`` or ``geometry``)."""
        if self.geometry is not None:
            return region_path(self.geometry)
        if self.library is None:
            raise ConfigError(f"regions.{self.name}: this source needs 'library' or 'geometry'")
        return region_path(self.name, self.library)

    @property
    def has_geometry(self) -> bool:
        return self.library is not None or self.geometry is not None

    def shape(self):
        """The region geometry (shapely, EPSG:4326)."""
        return region_geometry(load_region(self.geometry_path()))


@dataclass(frozen=True)
class SourceConfig:
    """The ``[source]`` table: the kind of source and its options (that source's
    ``options`` type, see :mod:`vercye_lai.acquire`)."""
    kind: str
    options: Any

    @property
    def source(self) -> Source:
        """The registered source of this kind."""
        return source(self.kind)


@dataclass(frozen=True)
class Layout:
    """Where a run writes, under its output root (``{region}``, ``{analysis}`` replaced).

    The run config has no key for it: the demo keeps its flat folders with it.
    """
    stacks: str = "stacks/{region}"
    lai: str = "lai/{region}"
    analysis: str = "analysis/{region}/{analysis}"
    state: str = "state"


@dataclass(frozen=True)
class AnalysisConfig:
    """One ``[[analyses]]`` entry: a name, the fields or crop mask, the regions it covers and
    the :class:`~vercye_lai.analysis.options.AnalysisOptions`."""
    name: str
    geometry: Path
    options: AnalysisOptions = AnalysisOptions()
    regions: tuple[str, ...] | None = None  # None: every region
    quicklook: bool = True


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration (see :func:`load_config`)."""
    output_root: Path
    resolution: float
    regions: tuple[RegionConfig, ...]
    sources: tuple[SourceConfig, ...]
    predict: PredictOptions = field(default_factory=PredictOptions)
    analyses: tuple[AnalysisConfig, ...] = ()
    executor: str = "threads"
    workers: int | None = None
    zones_per_task: int = DEFAULT_ZONES_PER_TASK
    dates_per_task: int | None = None  # None: about two analysis parts per worker
    dask: DaskSettings = field(default_factory=DaskSettings)
    path: Path | None = None  # the config file
    layout: Layout = Layout()

    @property
    def source(self) -> SourceConfig:
        """The first (usually the only) source."""
        return self.sources[0]

    def stacks_dir(self, region: str) -> Path:
        """Where acquisition writes the stacks and mosaic the VRTs of ``region``."""
        return self.output_root / self.layout.stacks.format(region=region)

    def source_dir(self, region: str) -> Path:
        """Where the stacks of ``region`` are read from (a local folder, or ``stacks_dir``)."""
        return self.source_dirs(region)[0]

    def source_dirs(self, region: str) -> list[Path]:
        """Every folder the stacks of ``region`` are read from: each local source's folder,
        and ``stacks_dir`` (where the other sources write)."""
        out = []
        for src in self.sources:
            folder = getattr(src.options, "stacks_folder", None)
            out.append(folder(region) if folder else self.stacks_dir(region))
        return list(dict.fromkeys(out + [self.stacks_dir(region)]))

    def lai_dir(self, region: str) -> Path:
        return self.output_root / self.layout.lai.format(region=region)

    def analysis_dir(self, region: str, analysis: AnalysisConfig) -> Path:
        return self.output_root / self.layout.analysis.format(region=region, analysis=analysis.name)

    def state_dir(self) -> Path:
        """Where sources keep their state between runs (Earth Engine tasks)."""
        return self.output_root / self.layout.state


def _named(name: str, key: str) -> str:
    """A region's or an analysis' name: it names files and folders (see :func:`check_region_name`)."""
    try:
        return check_region_name(name, key)
    except InputError as exc:
        raise ConfigError(str(exc)) from None


def _parse_regions(doc: Table, base: Path) -> tuple[RegionConfig, ...]:
    raw = doc.get("regions", list)
    if not raw:
        raise ConfigError("regions: at least one [[regions]] entry is needed")
    out = []
    for i, item in enumerate(raw):
        t = Table(item, f"regions[{i}]", base=base)
        r = RegionConfig(
            name=t.get("name", str), start=t.get("start_date", dt.date), end=t.get("end_date", dt.date),
            library=t.opt("library", Path, exists=True), geometry=t.opt("geometry", Path, exists=True),
        )
        t.done()
        _named(r.name, f"regions[{i}].name")
        if r.start > r.end:
            raise ConfigError(f"regions[{i}]: start_date {r.start} is after end_date {r.end}")
        if r.library and r.geometry:
            raise ConfigError(f"regions[{i}]: give 'library' or 'geometry', not both")
        out.append(r)
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"regions: duplicate region names in {names}")
    return tuple(out)


def _parse_source(doc: Table, base: Path, regions: Sequence[RegionConfig]) -> tuple[SourceConfig, ...]:
    """``[source]`` (one table) or ``[[source]]`` (a list: one region's season from several
    sensors, e.g. Sentinel-2 SAFEs and HLS granules)."""
    raw = doc.data.get("source", {"kind": "local"})
    items = raw if isinstance(raw, list) else [raw]
    doc.used.add("source")
    if not items:
        raise ConfigError("source: an empty list; give at least one [[source]] table")
    out = []
    for i, item in enumerate(items):
        label = f"source[{i}]" if isinstance(raw, list) else "source"
        if not isinstance(item, dict):
            raise ConfigError(f"{label}: expected a table, got {item!r}")
        t = Table(item, label, base=base)
        kind = t.get("kind", str, "local", choices=KINDS)
        src = source(kind)
        options = from_table(src.options, t)
        t.done()
        catalog = getattr(options, "catalog", None)  # a name, a URL, or a static catalogue's path
        if isinstance(catalog, str) and "://" not in catalog and not Path(catalog).is_absolute() and (
                base / catalog).exists():  # relative to the config, as every path is
            options = dataclasses.replace(options, catalog=str(base / catalog))
        if src.needs_geometry:
            for r in regions:
                if not r.has_geometry:
                    raise ConfigError(f"regions.{r.name}: {label}.kind = {kind!r} needs 'library' or "
                                      "'geometry'")
        for j, other in enumerate(out):  # one source per sensor: the stacks of a date share a name
            common = src.sensors(options) & other.source.sensors(other.options)
            if common:
                raise ConfigError(f"{label} ({kind}) and source[{j}] ({other.kind}) both make "
                                  f"{'/'.join(sorted(common))} stacks: a date both cover would keep one "
                                  "source's stack and lose the other's; use one source per sensor")
        out.append(SourceConfig(kind, options))
    return tuple(out)


def _parse_analyses(doc: Table, region_names: Sequence[str]) -> tuple[AnalysisConfig, ...]:
    out = []
    for i, item in enumerate(doc.get("analyses", list, [])):
        t = Table(item, f"analyses[{i}]", base=doc.base)
        geometry = t.get("geometry", Path, exists=True)
        options = from_table(AnalysisOptions, t)
        if options.adjustment_file is not None:  # a calibration file, beside the config
            cal = t.get("adjustment", Path, exists=True)
            options = dataclasses.replace(options, adjustment=str(cal))
        a = AnalysisConfig(
            name=t.get("name", str, geometry.stem), geometry=geometry,
            options=options,
            regions=t.many("regions", str, None), quicklook=t.get("quicklook", bool, True),
        )
        t.done()
        _named(a.name, f"analyses[{i}].name")
        for r in a.regions or ():
            if r not in region_names:
                raise ConfigError(f"analyses[{i}].regions: {r!r} is not allowed; allowed values: "
                                  + ", ".join(region_names))
        out.append(a)
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"analyses: duplicate names {names}; give each a distinct 'name'")
    return tuple(out)


def _parse_dask(doc: Table, base: Path) -> DaskSettings:
    t = Table(doc.get("dask", dict, {}), "dask", base=base)
    # paths relative to the config's folder, not to the working directory
    path, scratch = t.opt("scheduler_file", Path), t.opt("local_directory", Path)
    s = from_table(DaskSettings, t, scheduler_file=None if path is None else str(path),
                   local_directory=None if scratch is None else str(scratch))
    t.done()
    if s.cluster in ("slurm", "pbs") and not (s.scheduler_address or s.scheduler_file) and not (
            s.cores and s.memory):
        raise ConfigError(f"dask: cluster = {s.cluster!r} needs 'cores' and 'memory' (e.g. cores = 8, "
                          "memory = \"32GB\")")
    return s


def parse_config(data: Mapping[str, Any], *, base_dir: str | Path = ".", path: Path | None = None) -> RunConfig:
    """Validate a config already read into a dict (see :func:`load_config`).

    Relative paths are taken relative to ``base_dir`` (the config file's folder).
    """
    base = Path(base_dir)
    doc = Table(data, "", base=base)
    output_root = doc.get("output_root", Path)
    resolution = doc.get("resolution", float, 20.0)
    if why := resolution_problem(resolution):
        raise ConfigError(f"resolution: {why}")
    regions = _parse_regions(doc, base)
    sources = _parse_source(doc, base, regions)
    t = Table(doc.get("predict", dict, {}), "predict", base=base)
    predict = from_table(PredictOptions, t)
    t.done()
    analyses = _parse_analyses(doc, [r.name for r in regions])
    ex = Table(doc.get("executor", dict, {}), "executor")
    kind = ex.get("kind", str, "threads", choices=EXECUTORS)
    workers = ex.opt("workers", int)
    zones_per_task = ex.get("zones_per_task", int, DEFAULT_ZONES_PER_TASK)
    dates_per_task = ex.opt("dates_per_task", int)
    ex.done()
    for key, v in (("zones_per_task", zones_per_task), ("dates_per_task", dates_per_task), ("workers", workers)):
        if v is not None and v < 1:
            raise ConfigError(f"executor.{key}: must be at least 1, not {v}")
    dask = _parse_dask(doc, base)
    doc.done()
    return RunConfig(output_root=output_root, resolution=resolution, regions=regions, sources=sources,
                     predict=predict, analyses=analyses, executor=kind, workers=workers,
                     zones_per_task=zones_per_task, dates_per_task=dates_per_task, dask=dask,
                     path=path)


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run config (``.toml``; ``.yaml``/``.yml`` with PyYAML installed).

    Raises
    ------
    ConfigError
        Unreadable file, or a key that is missing, unknown, of the wrong type or not
        among the allowed values (the message names the key path and the allowed values).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}", path=path) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); save it as "
                          "UTF-8", path=path) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise ConfigError("YAML configs need PyYAML (pip install pyyaml); or use TOML", path=path) from exc
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML: {exc}", path=path) from exc
    else:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML: {exc}", path=path) from exc
    try:
        return parse_config(data, base_dir=path.resolve().parent, path=path)
    except ConfigError as exc:
        if exc.path is None:
            exc.path = str(path)
        raise


#: the bundled demo season (Strickhof 2022): band files, fields, in-situ LAI
DEMO_DATA = Path(str(resources.files("vercye_lai") / "data" / "demo" / "strickhof"))

EXAMPLE_CONFIG = '''\
# vercye-lai run config (TOML). Relative paths are relative to this file.
# Run it with:  vercye-lai run this.toml   (--dry-run lists what would run)
# As printed it runs on the bundled demo season (DEMO = {demo}):
# replace the paths that start with it by your own.

output_root = "vercye-lai-run"   # stacks/, lai/, analysis/, run_summary.json, run.log
resolution = 10                  # metres: 10 or 20 (as in {{region}}_{{res}}m_{{date}})

# One entry per region: a name and its geometry (a region library folder holding
# {{name}}.geojson, or a vector file), and the inclusive date range.
[[regions]]
name = "strickhof"
geometry = "{demo}/strickhof_fields.geojson"   # or: library = "regions/"
start_date = 2022-03-01
end_date = 2022-07-31

# Where the stacks come from: kind = "local" | "bands" | "safe" | "stac" | "gee" | "hls" | "landsat",
# or "stac-direct": the stac source's items straight to the LAI products (no stacks; vercye-lai predict-stac).
# The keys of each are the options of its command (vercye-lai stack-bands|stack-safe|stack-stac|
# export-gee|stack-hls|stack-landsat --help). Several sensors for one season: write the table
# once per source with double brackets (e.g. safe and hls); HLS and Landsat stacks are at their
# own resolution (30 m), whatever the run's `resolution` (Sentinel-2's) says.
#   local: path = folder of existing stacks {{region}}_{{res}}m_{{date}}.{{tif,vrt}} ("{{region}}" allowed)
#   bands: files = ["srf/*.tif"]; band_names, scale, offset, view_zenith, view_azimuth, scl_mask,
#          cloud_buffer
#   safe:  safes = ["downloads/*.SAFE"]; scl_mask = [0, 1, 3, 8, 9, 10, 11]; cloud_buffer
#   stac:  catalog = "earth-search" | "planetary-computer" | URL; collection, crs, max_cloud,
#          scl_mask, cloud_buffer, resampling
#   stac-direct: as stac, and chunk (pixels a side of each Dask chunk); [predict] as for stacks
#   gee:   project, sensor, collection, cloud_mask, scl_mask, cloud_buffer, cs_threshold, max_cloud,
#          folder, crs, timeout, drive_folder_id, client_secret, token
#   hls:   paths = ["hls/"] or catalog = "planetary-computer" | "nasa" | URL; max_cloud, cloud_buffer,
#          fmask, products = ["L30", "S30"]; resolution = 30
#   landsat: paths = ["landsat/"] or catalog = "planetary-computer" | URL; collection, max_cloud,
#          cloud_buffer, qa_bits; resolution = 30
[source]
kind = "bands"
files = ["{demo}/srf/*.tif"]

[predict]
model = "sl2p"              # sl2p (its 11 bands at 10 or 20 m), sl2p-10m (10 m bands), snap-3.0-s2a, snap-3.0-s2b, snap-2.1, or a file
landsat_model = "sl2p-l8"   # for Landsat 8/9 and HLS L30 stacks
variables = ["LAI"]         # LAI, FAPAR, FCOVER, CCC, CWC
block_size = 1024           # pixels a side of a processing block
flags = true                # write {{..}}_LAI_flags.tif quality bits
cog = true                  # cloud-optimised GeoTIFFs

# Any number of analyses, each over every region (or regions = ["name", ...]).
[[analyses]]
name = "fields"
geometry = "{demo}/strickhof_fields.geojson"  # vector file (poly_*) or crop-mask raster (raster)
mode = "poly_iter"           # raster | poly_agg | poly_iter
adjustment = "wheat"         # none | wheat | maize
interpolation = "akima"      # akima | makima | linear | none
id_column = "name"
quicklook = true             # a PNG per zone

[executor]
kind = "threads"             # serial | threads (one machine) | dask (laptop to cluster)
# workers = 4                # default: the cores available (affinity, cgroup quota)
# Threads and Dask split each analysis into parts of neighbouring fields x dates:
# zones_per_task = 1000       # fields per part (a part reads their window once per date)
# dates_per_task = 8          # default: about two parts per worker

# Used with executor.kind = "dask" (pip install 'vercye-lai[dask]'; slurm/pbs: [jobqueue]).
[dask]
cluster = "local"            # local | slurm | pbs
# scheduler_address = "tcp://10.0.0.1:8786"   # or scheduler_file = "scheduler.json"
# n_workers = 4              # local workers, or batch jobs for slurm/pbs
# cores = 8                  # per job (slurm/pbs)
# memory = "32GB"            # per job
# walltime = "02:00:00"
# account = "my-project"
# queue = "normal"
# job_prologue = ["module load gdal", "source ~/venv/bin/activate"]
gdal_cache_mb = 256          # GDAL_CACHEMAX of each worker
retries = 3                  # resubmissions of a task lost with its worker
'''.format(demo=DEMO_DATA.as_posix())
