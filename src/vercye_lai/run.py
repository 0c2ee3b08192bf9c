"""One command for the whole pipeline: ``vercye-lai run CONFIG``.

A TOML (or YAML, with PyYAML) config names the regions and date ranges, the source of
the stacks, the model, the analyses and the executor; :func:`run_pipeline` runs
acquire → mosaic → predict → analyze → quicklook over every region, skipping each unit
of work whose outputs are complete and newer than its inputs, and returns a
:class:`RunSummary` (also written as ``run_summary.json`` in the output root).

Layout of the output root::

    stacks/{region}/      acquired stacks and VRT mosaics   {region}_{res}m_{date}.{tif,vrt}
    lai/{region}/         products                          {region}_{res}m_{date}_LAI.tif
    analysis/{region}/{analysis}/   _STATS.csv, _MAX.tif, _QUICKLOOK.png, MANIFEST.json
    state/                Earth Engine export state
    run_summary.json      what the last run did

Every output is written atomically (hidden temporary file, then rename), so a run killed
at any moment and started again redoes only what is missing and ends with the same files
as an uninterrupted run. Units of work and where they run: see :mod:`vercye_lai.executor`
and :func:`run_pipeline`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .errors import ConfigError, LaiError, NoDataFoundError
from .executor import CLUSTERS, EXECUTORS, DaskSettings, Executor, SerialExecutor, make_executor
from .io import TMP_SUFFIX, write_text_atomic
from .naming import find_rasters

log = logging.getLogger(__name__)

STEPS = ("acquire", "mosaic", "predict", "analyze", "quicklook")
SOURCES = ("local", "safe", "stac", "gee")
SUMMARY_NAME = "run_summary.json"
LOG_NAME = "run.log"
MANIFEST_NAME = "MANIFEST.json"

#: pixels a predict part task covers on Dask (a few 1024² blocks: seconds of work each)
DEFAULT_PART_PIXELS = 4 * 1024 * 1024
#: zones (fields) an analysis part task covers on threads and Dask
DEFAULT_ZONES_PER_TASK = 1000


# ==================================================================== configuration


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
        from .regions import region_path

        if self.geometry is not None:
            return region_path(self.geometry)
        if self.library is None:
            raise ConfigError(f"regions.{self.name}: this source needs 'library' or 'geometry'")
        return region_path(self.name, self.library)

    def shape(self):
        """The region geometry (shapely, EPSG:4326)."""
        from .regions import load_region, region_geometry

        return region_geometry(load_region(self.geometry_path()))


@dataclass(frozen=True)
class SourceConfig:
    """The ``[source]`` table: where the stacks come from, and that source's options."""

    kind: str = "local"
    path: str | None = None  # local: stacks folder; "{region}" is replaced by the region name
    safes: tuple[str, ...] = ()  # safe: SAFE folders/zips or glob patterns
    catalog: str = "earth-search"  # stac
    collection: str | None = None  # stac / gee
    max_cloud: float | None = None
    crs: str | None = None
    scl_mask: tuple[int, ...] | None = None
    project: str | None = None  # gee
    folder: str | None = None
    drive_folder_id: str | None = None
    client_secret: str | None = None
    token: str | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class PredictConfig:
    """The ``[predict]`` table (see :class:`vercye_lai.predict.PredictOptions`)."""

    model: str = "sl2p"
    variables: tuple[str, ...] = ("LAI",)
    block_size: int = 1024
    flags: bool = True
    cog: bool = True
    scale: float | None = None
    offset: float | None = None
    part_pixels: int = DEFAULT_PART_PIXELS


@dataclass(frozen=True)
class AnalysisConfig:
    """One ``[[analyses]]`` entry: the arguments of :func:`vercye_lai.analysis.analyze`."""

    name: str
    geometry: Path
    mode: str = "poly_iter"
    adjustment: str = "none"
    interpolation: str = "akima"
    smooth: str = "none"
    smooth_window: int = 5
    max_cloud_percent: float | None = None
    min_valid_fraction: float = 0.0
    id_column: str | None = "FID"
    all_touched: bool = False
    date_format: str = "iso"
    max_bands: str = "both"
    variable: str = "LAI"
    regions: tuple[str, ...] | None = None  # None: every region
    quicklook: bool = True

    def analyze_kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "mode", "adjustment", "interpolation", "smooth", "smooth_window", "max_cloud_percent",
            "min_valid_fraction", "id_column", "all_touched", "date_format", "max_bands", "variable")}


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration (see :func:`load_config`)."""

    output_root: Path
    resolution: float
    regions: tuple[RegionConfig, ...]
    source: SourceConfig = SourceConfig()
    predict: PredictConfig = PredictConfig()
    analyses: tuple[AnalysisConfig, ...] = ()
    executor: str = "threads"
    workers: int | None = None
    zones_per_task: int = DEFAULT_ZONES_PER_TASK
    dates_per_task: int | None = None  # None: about two analysis parts per worker
    dask: DaskSettings = field(default_factory=DaskSettings)
    path: Path | None = None  # the config file

    def stacks_dir(self, region: str) -> Path:
        """Where acquisition writes the stacks and mosaic the VRTs of ``region``."""
        return self.output_root / "stacks" / region

    def source_dir(self, region: str) -> Path:
        """Where the stacks of ``region`` are read from (the local folder, or ``stacks_dir``)."""
        if self.source.kind == "local":
            return Path(self.source.path.replace("{region}", region))
        return self.stacks_dir(region)

    def lai_dir(self, region: str) -> Path:
        return self.output_root / "lai" / region

    def analysis_dir(self, region: str, analysis: AnalysisConfig) -> Path:
        return self.output_root / "analysis" / region / analysis.name


_MISSING = object()
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a table", dt.date: "a date (YYYY-MM-DD)"}


class _Table:
    """Typed access to one table of the config; every error names the full key path."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a table, got {data!r}")
        self.data, self.path, self.used = dict(data), path, set()

    def key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, typ: type, default: Any = _MISSING, *, choices: Sequence | None = None) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is _MISSING:
                raise ConfigError(f"{self.key(key)}: required key is missing")
            return default
        v = self.data[key]
        if typ is dt.date and isinstance(v, str):
            try:
                v = dt.date.fromisoformat(v)
            except ValueError:
                pass
        ok = isinstance(v, typ) and not (isinstance(v, bool) and typ is not bool)
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            ok, v = True, float(v)
        if typ is dt.date and isinstance(v, dt.datetime):
            ok = False
        if not ok:
            raise ConfigError(f"{self.key(key)}: expected {_TYPE_NAMES[typ]}, got {v!r}")
        if choices is not None and v not in choices:
            raise ConfigError(f"{self.key(key)}: {v!r} is not allowed; allowed values: "
                              + ", ".join(map(str, choices)))
        return v

    def opt(self, key: str, typ: type, **kw) -> Any:
        return self.get(key, typ, None, **kw)

    def strings(self, key: str, default: Any = _MISSING) -> tuple[str, ...] | None:
        """A list of strings (a single string is accepted as a list of one)."""
        v = self.data.get(key)
        if isinstance(v, str):
            self.used.add(key)
            return (v,)
        v = self.get(key, list, default)
        if v is None or v is default:
            return v
        if not all(isinstance(x, str) for x in v):
            raise ConfigError(f"{self.key(key)}: expected a list of strings, got {v!r}")
        return tuple(v)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(f"{self.path or 'config'}: unknown key(s) {', '.join(unknown)}; "
                              f"allowed keys: {', '.join(sorted(self.used))}")


def _path(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _parse_regions(doc: _Table, base: Path) -> tuple[RegionConfig, ...]:
    raw = doc.get("regions", list)
    if not raw:
        raise ConfigError("regions: at least one [[regions]] entry is needed")
    out = []
    for i, item in enumerate(raw):
        t = _Table(item, f"regions[{i}]")
        r = RegionConfig(
            name=t.get("name", str), start=t.get("start_date", dt.date), end=t.get("end_date", dt.date),
            library=_path(base, t.opt("library", str)), geometry=_path(base, t.opt("geometry", str)),
        )
        t.done()
        if r.start > r.end:
            raise ConfigError(f"regions[{i}]: start_date {r.start} is after end_date {r.end}")
        if r.library and r.geometry:
            raise ConfigError(f"regions[{i}]: give 'library' or 'geometry', not both")
        out.append(r)
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"regions: duplicate region names in {names}")
    return tuple(out)


def _parse_source(doc: _Table, base: Path, regions: Sequence[RegionConfig]) -> SourceConfig:
    t = _Table(doc.get("source", dict, {"kind": "local"}), "source")
    kind = t.get("kind", str, "local", choices=SOURCES)
    kw: dict[str, Any] = {"kind": kind}
    if kind == "local":
        p = t.get("path", str)
        kw["path"] = str(_path(base, p))
    elif kind == "safe":
        kw["safes"] = tuple(str(_path(base, s)) for s in t.strings("safes"))
    elif kind == "stac":
        kw["catalog"] = t.get("catalog", str, "earth-search")
        kw["collection"] = t.opt("collection", str)
    elif kind == "gee":
        kw.update(project=t.opt("project", str), collection=t.opt("collection", str),
                  folder=t.opt("folder", str), drive_folder_id=t.opt("drive_folder_id", str),
                  client_secret=t.opt("client_secret", str), token=t.opt("token", str),
                  timeout=t.opt("timeout", float))
        for k in ("client_secret", "token"):
            kw[k] = None if kw[k] is None else str(_path(base, kw[k]))
    if kind in ("stac", "gee"):
        kw["max_cloud"] = t.opt("max_cloud", float)
        kw["crs"] = t.opt("crs", str)
    if kind in ("safe", "stac"):
        mask = t.opt("scl_mask", list)
        if mask is not None and not all(isinstance(x, int) for x in mask):
            raise ConfigError(f"source.scl_mask: expected a list of SCL class integers, got {mask!r}")
        kw["scl_mask"] = None if mask is None else tuple(mask)
    t.done()
    if kind != "local":
        for r in regions:
            if r.library is None and r.geometry is None:
                raise ConfigError(f"regions.{r.name}: source.kind = {kind!r} needs 'library' or 'geometry'")
    return SourceConfig(**kw)


def _parse_predict(doc: _Table) -> PredictConfig:
    from .model import MODELS, VARIABLES

    t = _Table(doc.get("predict", dict, {}), "predict")
    d = PredictConfig()
    model = t.get("model", str, d.model)
    if model not in MODELS and not Path(model).suffix and "/" not in model:
        raise ConfigError(f"predict.model: {model!r} is not a bundled model; allowed values: "
                          f"{', '.join(MODELS)}, or a coefficient file/folder path")
    variables = tuple(v.upper() for v in (t.strings("variables", None) or d.variables))
    for v in variables:
        if v not in VARIABLES:
            raise ConfigError(f"predict.variables: {v!r} is not allowed; allowed values: {', '.join(VARIABLES)}")
    cfg = PredictConfig(
        model=model, variables=tuple(dict.fromkeys(variables)),
        block_size=t.get("block_size", int, d.block_size), flags=t.get("flags", bool, d.flags),
        cog=t.get("cog", bool, d.cog), scale=t.opt("scale", float), offset=t.opt("offset", float),
        part_pixels=t.get("part_pixels", int, d.part_pixels),
    )
    t.done()
    if cfg.block_size < 64:
        raise ConfigError(f"predict.block_size: must be at least 64, not {cfg.block_size}")
    return cfg


def _parse_analyses(doc: _Table, base: Path, region_names: Sequence[str]) -> tuple[AnalysisConfig, ...]:
    from .analysis import ADJUSTMENTS, INTERPOLATIONS, MODES
    from .analysis.core import DATE_FORMATS, MAX_BAND_CHOICES, SMOOTHERS

    out = []
    for i, item in enumerate(doc.get("analyses", list, [])):
        t = _Table(item, f"analyses[{i}]")
        geometry = _path(base, t.get("geometry", str))
        a = AnalysisConfig(
            name=t.get("name", str, geometry.stem), geometry=geometry,
            mode=t.get("mode", str, "poly_iter", choices=tuple(MODES)),
            adjustment=t.get("adjustment", str, "none", choices=tuple(ADJUSTMENTS)),
            interpolation=t.get("interpolation", str, "akima", choices=tuple(INTERPOLATIONS)),
            smooth=t.get("smooth", str, "none", choices=tuple(SMOOTHERS)),
            smooth_window=t.get("smooth_window", int, 5),
            max_cloud_percent=t.opt("max_cloud_percent", float),
            min_valid_fraction=t.get("min_valid_fraction", float, 0.0),
            id_column=t.get("id_column", str, "FID"), all_touched=t.get("all_touched", bool, False),
            date_format=t.get("date_format", str, "iso", choices=tuple(DATE_FORMATS)),
            max_bands=t.get("max_bands", str, "both", choices=tuple(MAX_BAND_CHOICES)),
            variable=t.get("variable", str, "LAI"),
            regions=t.strings("regions", None), quicklook=t.get("quicklook", bool, True),
        )
        t.done()
        for r in a.regions or ():
            if r not in region_names:
                raise ConfigError(f"analyses[{i}].regions: {r!r} is not allowed; allowed values: "
                                  + ", ".join(region_names))
        out.append(a)
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"analyses: duplicate names {names}; give each a distinct 'name'")
    return tuple(out)


def _parse_dask(doc: _Table, base: Path) -> DaskSettings:
    t = _Table(doc.get("dask", dict, {}), "dask")
    d = DaskSettings()
    s = DaskSettings(
        cluster=t.get("cluster", str, d.cluster, choices=CLUSTERS),
        scheduler_address=t.opt("scheduler_address", str),
        scheduler_file=(lambda p: None if p is None else str(_path(base, p)))(t.opt("scheduler_file", str)),
        n_workers=t.opt("n_workers", int), threads_per_worker=t.get("threads_per_worker", int, 1),
        cores=t.opt("cores", int), processes=t.opt("processes", int), memory=t.opt("memory", str),
        walltime=t.opt("walltime", str), account=t.opt("account", str), queue=t.opt("queue", str),
        job_prologue=list(t.strings("job_prologue", None) or ()),
        job_extra=list(t.strings("job_extra", None) or ()),
        interface=t.opt("interface", str), local_directory=t.opt("local_directory", str),
        gdal_cache_mb=t.get("gdal_cache_mb", int, d.gdal_cache_mb), retries=t.get("retries", int, d.retries),
    )
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
    doc = _Table(data, "")
    output_root = _path(base, doc.get("output_root", str))
    resolution = doc.get("resolution", float, 20.0)
    if resolution <= 0:
        raise ConfigError(f"resolution: must be positive, not {resolution}")
    regions = _parse_regions(doc, base)
    source = _parse_source(doc, base, regions)
    predict = _parse_predict(doc)
    analyses = _parse_analyses(doc, base, [r.name for r in regions])
    ex = _Table(doc.get("executor", dict, {}), "executor")
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
    return RunConfig(output_root=output_root, resolution=resolution, regions=regions, source=source,
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


EXAMPLE_CONFIG = '''\
# vercye-lai run config (TOML). Relative paths are relative to this file.
# Run it with:  vercye-lai run this.toml   (--dry-run lists what would run)

output_root = "vercye-lai-run"   # stacks/, lai/, analysis/, run_summary.json, run.log
resolution = 20                  # metres: 10 or 20 (as in {region}_{res}m_{date})

# One entry per region: a name and its geometry (a region library folder holding
# {name}.geojson, or a vector file), and the inclusive date range.
[[regions]]
name = "strickhof"
geometry = "strickhof.geojson"   # or: library = "regions/"
start_date = 2022-03-01
end_date = 2022-07-31

# Where the stacks come from: kind = "local" | "safe" | "stac" | "gee".
#   local: a folder of existing stacks {region}_{res}m_{date}.{tif,vrt} ("{region}" allowed)
#   safe:  safes = ["downloads/*.SAFE"]; scl_mask = [0, 1, 3, 8, 9, 10, 11]
#   stac:  catalog = "earth-search" | "planetary-computer" | URL; max_cloud; crs; scl_mask
#   gee:   project, max_cloud, crs, folder, drive_folder_id, client_secret, token, timeout
[source]
kind = "local"
path = "stacks/{region}"

[predict]
model = "sl2p"              # sl2p (20 m), sl2p-10m, snap-3.0-s2a, snap-3.0-s2b, snap-2.1, or a file
variables = ["LAI"]         # LAI, FAPAR, FCOVER, CCC, CWC
block_size = 1024           # pixels a side of a processing block
flags = true                # write {..}_LAI_flags.tif quality bits
cog = true                  # cloud-optimised GeoTIFFs

# Any number of analyses, each over every region (or regions = ["name", ...]).
[[analyses]]
name = "fields"
geometry = "fields.geojson"  # vector file (poly_*) or crop-mask raster (raster)
mode = "poly_iter"           # raster | poly_agg | poly_iter
adjustment = "wheat"         # none | wheat | maize
interpolation = "akima"      # akima | makima | linear | none
id_column = "FID"
quicklook = true             # a PNG per zone

[executor]
kind = "threads"             # serial | threads (one machine) | dask (laptop to cluster)
# workers = 4                # default: CPU cores, at most 8
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
'''


# ==================================================================== results


@dataclass
class UnitResult:
    """One unit of work: a date's prediction, an analysis, a quicklook..."""

    step: str
    region: str
    item: str
    status: str  # done | skipped | failed | planned
    reason: str = ""
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)


@dataclass
class StepSummary:
    """All units of one step."""

    step: str
    units: list[UnitResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(u.status == status for u in self.units)

    @property
    def status(self) -> str:
        for s in ("failed", "planned", "done"):
            if self.count(s):
                return s
        return "skipped"

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "status": self.status,
                **{s: self.count(s) for s in ("done", "skipped", "failed", "planned")},
                "seconds": round(self.seconds, 3), "units": [dataclasses.asdict(u) for u in self.units]}


@dataclass
class RunSummary:
    """What a run did, step by step (``run_summary.json``)."""

    output_root: Path
    executor: str
    dry_run: bool = False
    steps: list[StepSummary] = field(default_factory=list)
    started: str = ""
    seconds: float = 0.0
    config: str | None = None

    @property
    def ok(self) -> bool:
        return not any(s.count("failed") for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "output_root": str(self.output_root), "executor": self.executor,
                "dry_run": self.dry_run, "started": self.started, "seconds": round(self.seconds, 3),
                "ok": self.ok, "steps": [s.to_dict() for s in self.steps]}

    def write(self, path: str | Path | None = None) -> Path:
        """Write the summary as JSON, atomically (default: ``run_summary.json`` in the root)."""
        return write_text_atomic(path or self.output_root / SUMMARY_NAME,
                                 json.dumps(self.to_dict(), indent=2) + "\n")


UnitFn = Callable[[UnitResult], None]


# ==================================================================== helpers


def _newest_mtime(paths: Iterable[Path]) -> float:
    return max((p.stat().st_mtime for p in paths), default=0.0)


def _up_to_date(outputs: Sequence[Path], inputs: Iterable[Path]) -> bool:
    """Every output exists and none is older than any input."""
    if not outputs or not all(p.exists() for p in outputs):
        return False
    return min(p.stat().st_mtime for p in outputs) >= _newest_mtime(inputs)


def _in_range(dates: Mapping[dt.date, Any], region: RegionConfig) -> dict[dt.date, Any]:
    return {d: v for d, v in dates.items() if region.start <= d <= region.end}


def _stacks(cfg: RunConfig, region: RegionConfig) -> dict[dt.date, Path]:
    """Input stacks of a region in its date range: VRT mosaics first, then single stacks."""
    found: dict[dt.date, Path] = {}
    for folder in dict.fromkeys((cfg.source_dir(region.name), cfg.stacks_dir(region.name))):
        try:
            for d, p in find_rasters(folder, region.name, cfg.resolution,
                                     start=region.start, end=region.end).items():
                if d not in found or (p.suffix == ".vrt" and found[d].suffix != ".vrt"):
                    found[d] = p
        except NoDataFoundError:
            continue
    if not found:
        raise NoDataFoundError(f"no stacks of region {region.name!r} at {cfg.resolution:g} m between "
                               f"{region.start} and {region.end}", path=cfg.source_dir(region.name))
    return dict(sorted(found.items()))


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - t0


class _Step:
    """Collects the units of one step and reports each as it is recorded."""

    def __init__(self, name: str, on_unit: UnitFn | None) -> None:
        self.summary = StepSummary(name)
        self.on_unit = on_unit
        self.t0 = time.perf_counter()

    def add(self, region: str, item: str, status: str, reason: str = "", seconds: float = 0.0,
            outputs: Sequence[Path | str] = ()) -> UnitResult:
        u = UnitResult(self.summary.step, region, item, status, reason, round(seconds, 3),
                       [str(p) for p in outputs])
        self.summary.units.append(u)
        if status == "failed":
            log.error("%s %s %s: %s", u.step, region, item, reason)
        else:
            log.info("%s %s %s: %s%s", u.step, region, item, status, f" ({reason})" if reason else "")
        if self.on_unit:
            self.on_unit(u)
        return u

    def finish(self) -> StepSummary:
        self.summary.seconds = time.perf_counter() - self.t0
        return self.summary


def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, LaiError) else f"{type(exc).__name__}: {exc}"


# ==================================================================== acquire & mosaic


def _acquire_region(cfg: RunConfig, region: RegionConfig) -> tuple[int, list[Path]]:
    """Acquire the stacks of one region; return (dates written or found, stack paths)."""
    src, out_dir = cfg.source, cfg.stacks_dir(region.name)
    if src.kind == "safe":
        import glob

        from .acquire.safe import stack_safe
        from .acquire.scl import DEFAULT_SCL_MASK

        safes = sorted({p for pat in src.safes for p in (glob.glob(pat) or [pat])})
        out = stack_safe(safes, region.shape(), region.name, cfg.resolution, out_dir,
                         scl_classes=src.scl_mask or DEFAULT_SCL_MASK)
        out = _in_range(out, region)
    elif src.kind == "stac":
        from .acquire.scl import DEFAULT_SCL_MASK
        from .acquire.stac import CATALOG_ALIASES, stack_stac

        kw = {"collection": src.collection} if src.collection else {}
        out = stack_stac(catalog=CATALOG_ALIASES.get(src.catalog, src.catalog), region=region.name,
                         geometry=region.shape(), start=region.start, end=region.end,
                         resolution=cfg.resolution, out_dir=out_dir, crs=src.crs, max_cloud=src.max_cloud,
                         scl_classes=src.scl_mask or DEFAULT_SCL_MASK, **kw)
    else:  # gee: submit the exports, wait for them, download them from Drive
        from .acquire import gdrive, gee

        state_file = cfg.output_root / "state" / f"gee_{region.name}.json"
        state_file.parent.mkdir(parents=True, exist_ok=True)
        kw = {"collection": src.collection} if src.collection else {}
        plan = gee.export_gee(region=region.name, geometry=region.shape(), start=region.start, end=region.end,
                              resolution=cfg.resolution, state_file=state_file, project=src.project,
                              max_cloud=src.max_cloud, folder=src.folder, crs=src.crs, **kw)
        if not src.drive_folder_id:
            log.warning("%s: exports submitted; set source.drive_folder_id to download them in the run",
                        region.name)
            return len(plan), []
        ee = gee.import_ee()
        gee.wait_for_tasks(ee, gee.ExportState(state_file), timeout=src.timeout)
        service = gdrive.build_service(gdrive.load_credentials(src.client_secret, src.token))
        gdrive.download_folder(service, src.drive_folder_id, out_dir,
                               pattern=f"{region.name}_{cfg.resolution:g}m_*.tif")
        return len(plan), []
    return len(out), list(out.values())


def step_acquire(cfg: RunConfig, ex: Executor, *, dry_run: bool = False, on_unit: UnitFn | None = None) -> StepSummary:
    """Acquire every region's stacks (one task per region; nothing to do for ``local``)."""
    st = _Step("acquire", on_unit)
    if cfg.source.kind == "local":
        for r in cfg.regions:
            folder = cfg.source_dir(r.name)
            if folder.is_dir():
                st.add(r.name, str(folder), "skipped", "local stacks: nothing to acquire")
            else:
                st.add(r.name, str(folder), "failed", f"{folder}: stacks folder does not exist")
        return st.finish()
    if dry_run:
        for r in cfg.regions:
            st.add(r.name, f"{r.start}..{r.end}", "planned",
                   f"{cfg.source.kind}: stacks that exist are skipped by the source itself")
        return st.finish()
    # gee needs this process (credentials, prompts); the others go to the executor
    futures = {}
    before = {p: _mtime_ns(p) for r in cfg.regions if cfg.stacks_dir(r.name).is_dir()
              for p in cfg.stacks_dir(r.name).iterdir()}
    for r in cfg.regions:
        if cfg.source.kind == "gee":
            try:
                (n, paths), secs = _timed(_acquire_region, cfg, r)
                st.add(r.name, f"{r.start}..{r.end}", "done", f"{n} date(s)", secs, paths)
            except Exception as exc:  # noqa: BLE001 - reported in the summary
                st.add(r.name, f"{r.start}..{r.end}", "failed", _error_text(exc))
        else:
            futures[ex.submit(_timed, _acquire_region, cfg, r, key=f"acquire-{r.name}-{_token()}")] = r
    for fut in ex.as_completed(futures):
        r = futures[fut]
        try:
            (n, paths), secs = fut.result()
        except Exception as exc:  # noqa: BLE001
            st.add(r.name, f"{r.start}..{r.end}", "failed", _error_text(exc))
            continue
        # the sources skip existing stacks themselves: tell a rerun from new work
        new = [p for p in paths if before.get(p) != _mtime_ns(p)]
        status = "done" if new or not paths else "skipped"
        st.add(r.name, f"{r.start}..{r.end}", status, f"{len(new)} of {n} date(s) written", secs, paths)
    return st.finish()


def _mtime_ns(p: Path) -> int | None:
    try:
        return p.stat().st_mtime_ns
    except OSError:
        return None


_PART_NAME = re.compile(r"_\d{4}-\d{2}-\d{2}-\d+-\d+$")  # …_{date}-{row}-{col}: one part of an export


def _multi_part_dates(cfg: RunConfig, region: RegionConfig) -> dict[dt.date, list[Path]]:
    """Dates whose stack is split into parts (``…_{date}-{n}-{m}.tif``): these need a VRT."""
    from .mosaic import find_parts

    parts = _in_range(find_parts(cfg.source_dir(region.name), region.name, cfg.resolution), region)
    return {d: p for d, p in parts.items() if len(p) > 1 or _PART_NAME.search(p[0].stem)}


def step_mosaic(cfg: RunConfig, ex: Executor, *, dry_run: bool = False, on_unit: UnitFn | None = None) -> StepSummary:
    """One VRT per date split into parts (in ``stacks/{region}``); single stacks need none."""
    from .mosaic import build_vrt
    from .naming import stack_name

    st = _Step("mosaic", on_unit)
    for r in cfg.regions:
        try:
            dates = _multi_part_dates(cfg, r)
        except NoDataFoundError as exc:
            st.add(r.name, "-", "planned" if dry_run else "failed", _error_text(exc))
            continue
        if not dates:
            st.add(r.name, "-", "skipped", "no date split into parts: no mosaic needed")
        for d, parts in dates.items():
            vrt = cfg.stacks_dir(r.name) / stack_name(r.name, cfg.resolution, d, ".vrt")
            if _up_to_date([vrt], parts):
                st.add(r.name, d.isoformat(), "skipped", "VRT up to date", outputs=[vrt])
            elif dry_run:
                st.add(r.name, d.isoformat(), "planned", f"VRT of {len(parts)} part(s)")
            else:
                try:  # a few lines of XML: no task needed
                    _, secs = _timed(build_vrt, parts, vrt, overwrite=True)
                    st.add(r.name, d.isoformat(), "done", f"{len(parts)} part(s)", secs, [vrt])
                except Exception as exc:  # noqa: BLE001
                    st.add(r.name, d.isoformat(), "failed", _error_text(exc))
    return st.finish()


# ==================================================================== predict


def predict_options(cfg: RunConfig, *, workers: int = 1) -> Any:
    """The :class:`~vercye_lai.predict.PredictOptions` of a run (``workers`` block threads)."""
    from .predict import PredictOptions

    p = cfg.predict
    return PredictOptions(block_size=p.block_size, workers=workers, scale=p.scale, offset=p.offset,
                          flags=p.flags, cog=p.cog, overwrite=False,
                          gdal_cache_mb=cfg.dask.gdal_cache_mb if cfg.executor == "dask"
                          else PredictOptions.gdal_cache_mb)


@dataclass
class _PredictUnit:
    region: str
    date: dt.date
    src: Path
    outputs: dict[str, Path]


def _plan_predict(cfg: RunConfig, region: RegionConfig) -> tuple[list[_PredictUnit], list[_PredictUnit]]:
    """(dates to predict, dates already complete) of one region."""
    from .model import load_network
    from .predict import is_complete, product_paths

    networks = [load_network(cfg.predict.model, v) for v in cfg.predict.variables]
    todo, done = [], []
    for d, src in _stacks(cfg, region).items():
        unit = _PredictUnit(region.name, d, src, product_paths(src, cfg.lai_dir(region.name), cfg.predict.variables))
        complete = all(is_complete(unit.outputs[n.variable], src, n) for n in networks)
        (done if complete else todo).append(unit)
    return todo, done


def _part_key(cfg: RunConfig, unit: _PredictUnit) -> str:
    """Identifies the input file and every option that changes a part's content."""
    s = unit.src.stat()
    p = cfg.predict
    text = repr((unit.src.name, s.st_size, s.st_mtime_ns, p.model, p.variables, p.block_size, p.flags,
                 p.scale, p.offset, p.part_pixels))
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _window_groups(windows: Sequence[Any], part_pixels: int) -> list[list[Any]]:
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


def _token() -> str:
    return f"{time.monotonic_ns():x}"


@dataclass
class _Task:
    """A function call to submit: ``fn(*args, **kwargs)``, named ``key`` on Dask."""

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    key: str = "task"

    def submit(self, ex: Executor) -> Any:
        return ex.submit(self.fn, *self.args, key=f"{self.key}-{_token()}", **self.kwargs)


@dataclass
class _PartsJob:
    """Part tasks that each write one hidden file, then one task that combines them.

    A part whose file exists was written (atomically) before an interruption and is not
    run again. ``done(result)`` and ``failed(reason)`` report the job's outcome.
    """

    parts: list[tuple[Path, _Task]]
    finish: _Task
    done: Callable[[Any], None]
    failed: Callable[[str], None]


def _run_parts_jobs(ex: Executor, jobs: Sequence[_PartsJob]) -> None:
    """Run the jobs' parts on ``ex`` and each job's finishing task once its parts are done.

    Dependencies are kept here, in the submitting process (a finishing task is submitted
    when its last part returns), so every executor needs only ``submit`` and Dask's
    scheduler places and retries the tasks. A failed part fails its job only.
    """
    pending: dict[Any, tuple[str, int]] = {}
    waiting: dict[int, set[Any]] = {}
    failed: set[int] = set()
    for i, job in enumerate(jobs):
        waiting[i] = set()
        for path, task in job.parts:
            if not path.exists():
                fut = task.submit(ex)
                pending[fut] = ("part", i)
                waiting[i].add(fut)
        if not waiting[i]:
            pending[job.finish.submit(ex)] = ("finish", i)
    while pending:
        for fut in ex.first_completed(list(pending)):
            what, i = pending.pop(fut)
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - reported, the other jobs go on
                if i not in failed:
                    failed.add(i)
                    jobs[i].failed(_error_text(exc))
                continue
            if what == "finish":
                jobs[i].done(res)
                continue
            waiting[i].discard(fut)
            if not waiting[i] and i not in failed:
                pending[jobs[i].finish.submit(ex)] = ("finish", i)


def step_predict(cfg: RunConfig, ex: Executor, *, dry_run: bool = False, on_unit: UnitFn | None = None) -> StepSummary:
    """Predict every date of every region.

    Serial and threads: one date at a time with :func:`~vercye_lai.predict.predict_file`,
    its blocks on the executor's threads. Dask: each date is split into part tasks of
    about ``predict.part_pixels`` tile-aligned blocks, each writing its own hidden part
    file beside the products (:func:`~vercye_lai.predict.predict_windows_to_part`); when
    a date's parts are all done one task assembles them into the products
    (:func:`~vercye_lai.predict.assemble_parts`), through the same writer as the serial
    path, so the files are identical. Parts written before an interruption are reused.
    """
    from .predict import assemble_parts, part_path, predict_file, predict_windows_to_part, stack_windows

    st = _Step("predict", on_unit)
    units: list[_PredictUnit] = []
    for r in cfg.regions:
        try:
            todo, done = _plan_predict(cfg, r)
        except LaiError as exc:
            st.add(r.name, "-", "planned" if dry_run and isinstance(exc, NoDataFoundError) else "failed",
                   _error_text(exc))
            continue
        for u in done:
            st.add(u.region, u.date.isoformat(), "skipped", "products complete and newer than the stack",
                   outputs=list(u.outputs.values()))
        units.extend(todo)
    if dry_run:
        for u in units:
            st.add(u.region, u.date.isoformat(), "planned", u.src.name)
        return st.finish()
    model = cfg.predict.model

    def report(u: _PredictUnit, res: Any) -> None:
        if res.status == "failed":
            st.add(u.region, u.date.isoformat(), "failed", res.error or "failed")
        else:
            st.add(u.region, u.date.isoformat(), res.status, f"{res.n_valid} valid px", res.seconds,
                   res.outputs)

    if ex.kind != "dask":
        # predict_file parallelises inside a date; dates one after another bound the memory
        options = predict_options(cfg, workers=ex.workers)
        for u in units:
            try:
                report(u, predict_file(u.src, u.outputs, model=model, options=options))
            except Exception as exc:  # noqa: BLE001 - one bad date does not stop the others
                st.add(u.region, u.date.isoformat(), "failed", _error_text(exc))
        return st.finish()

    options = predict_options(cfg, workers=1)  # one thread per task: Dask has the cores
    jobs = []
    for u in units:
        failed = partial(st.add, u.region, u.date.isoformat(), "failed")
        try:
            key = _part_key(cfg, u)
            groups = _window_groups(stack_windows(u.src, block_size=cfg.predict.block_size),
                                    cfg.predict.part_pixels)
        except Exception as exc:  # noqa: BLE001
            failed(_error_text(exc))
            continue
        paths = [part_path(u.outputs, key, j) for j in range(len(groups))]
        parts = [(p, _Task(predict_windows_to_part, (u.src, p, w), dict(
            model=model, variables=cfg.predict.variables, options=options), f"predict-{p.name.lstrip('.')}"))
            for p, w in zip(paths, groups)]
        finish = _Task(assemble_parts, (u.src, paths, u.outputs), dict(model=model, options=options),
                       f"assemble-{u.src.stem}")
        jobs.append(_PartsJob(parts, finish, partial(report, u), failed))
    _run_parts_jobs(ex, jobs)
    return st.finish()


# ==================================================================== analyze & quicklook


def _analysis_fingerprint(cfg: RunConfig, region: RegionConfig, a: AnalysisConfig) -> dict[str, Any]:
    """What an analysis depends on: its options, its geometry file, its LAI files (name, mtime)."""
    files = find_rasters(cfg.lai_dir(region.name), region.name, cfg.resolution, suffix=a.variable,
                         extensions=(".tif",), start=region.start, end=region.end)
    g = a.geometry.stat()
    options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in a.analyze_kwargs().items()}
    return {"options": options, "geometry": [str(a.geometry), g.st_mtime_ns, g.st_size],
            "start": region.start.isoformat(), "end": region.end.isoformat(),
            "inputs": [[p.name, p.stat().st_mtime_ns] for p in files.values()]}


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _manifest_outputs(outdir: Path, manifest: Mapping[str, Any]) -> list[Path]:
    return [outdir / f for z in manifest["zones"] for f in (z["csv"], z["max_tif"]) if f]


def _write_manifest(outdir: Path, fingerprint: Mapping[str, Any], res: Any) -> dict[str, Any]:
    """Write ``MANIFEST.json``: the analysis' fingerprint and outputs (what a rerun checks)."""
    zones = [{"name": z.name, "csv": z.csv.name, "max_tif": z.max_tif.name if z.max_tif else None}
             for z in res.zones]
    manifest = {"fingerprint": fingerprint, "zones": zones, "n_files": res.n_files}
    write_text_atomic(outdir / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _remove_analysis_leftovers(outdir: Path, keep: str | None = None) -> None:
    """Remove hidden temporary files and part files (but those named ``keep``) of killed runs;
    the folder is this analysis' own."""
    if not outdir.is_dir():
        return
    for old in [*outdir.glob(f".*{TMP_SUFFIX}"), *outdir.glob(f"{_ANALYSIS_PART}*")]:
        if keep is None or not old.name.startswith(keep):
            old.unlink(missing_ok=True)


_ANALYSIS_PART = ".analysis-part."  # hidden part files: {_ANALYSIS_PART}{key}.{n:04d}.npz


def _analysis_part_task(plan: Any, zones: tuple[int, ...], days: tuple[int, ...], path: Path) -> Path:
    from .analysis.core import analyze_part

    return analyze_part(plan, zones, days).save(path)


def _analysis_finish_task(plan: Any, paths: Sequence[Path], fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    from .analysis.core import SeasonPart, finish_analysis

    res = finish_analysis(plan, [SeasonPart.load(p) for p in paths])
    manifest = _write_manifest(plan.outdir, fingerprint, res)
    _remove_analysis_leftovers(plan.outdir)
    return manifest


def _analysis_job(cfg: RunConfig, ex: Executor, r: RegionConfig, a: AnalysisConfig,
                  fingerprint: Mapping[str, Any], st: _Step) -> _PartsJob:
    """One analysis as part tasks over (chunk of zones, chunk of dates) and a finishing task.

    Zones are chunked in a space-filling-curve order (``executor.zones_per_task``), so a
    part reads a small window; dates so that there are about two parts per worker
    (``executor.dates_per_task``). Each part writes its statistics and running max map to
    a hidden ``.npz`` in the analysis folder; the finishing task combines them and writes
    the outputs (:func:`~vercye_lai.analysis.core.finish_analysis`: the same files as one
    ``analyze`` call). Parts of the same inputs and options survive an interruption.
    """
    from .analysis.core import plan_analysis

    outdir = cfg.analysis_dir(r.name, a)
    plan = plan_analysis(cfg.lai_dir(r.name), outdir, r.name, a.geometry, resolution=cfg.resolution,
                         start=r.start, end=r.end, **a.analyze_kwargs())
    zone_chunks = plan.zone_chunks(cfg.zones_per_task)
    n_days = len(plan.file_days)
    per_part = cfg.dates_per_task or -(-n_days * len(zone_chunks) // (2 * ex.workers))
    day_chunks = plan.day_chunks(max(1, min(per_part, n_days)))
    text = json.dumps([fingerprint, zone_chunks, day_chunks], sort_keys=True, default=str)
    key = hashlib.sha1(text.encode()).hexdigest()[:10]
    _remove_analysis_leftovers(outdir, keep=f"{_ANALYSIS_PART}{key}.")
    outdir.mkdir(parents=True, exist_ok=True)
    parts = []
    for z in zone_chunks:
        for d in day_chunks:
            path = outdir / f"{_ANALYSIS_PART}{key}.{len(parts):04d}.npz"
            parts.append((path, _Task(_analysis_part_task, (plan, z, d, path), key=f"analyze-{r.name}-{a.name}")))
    finish = _Task(_analysis_finish_task, (plan, [p for p, _ in parts], fingerprint),
                   key=f"analyze-finish-{r.name}-{a.name}")
    t0 = time.perf_counter()

    def done(manifest: dict[str, Any]) -> None:
        st.add(r.name, a.name, "done", f"{len(manifest['zones'])} zone(s), {manifest['n_files']} file(s), "
               f"{len(parts)} part(s)", time.perf_counter() - t0, _manifest_outputs(outdir, manifest))

    return _PartsJob(parts, finish, done, partial(st.add, r.name, a.name, "failed"))


def step_analyze(cfg: RunConfig, ex: Executor, *, dry_run: bool = False, on_unit: UnitFn | None = None) -> StepSummary:
    """Every analysis of every region, each split into parts over chunks of zones and dates
    (:func:`_analysis_job`; the outputs do not depend on the split).

    Skipped when its ``MANIFEST.json`` records the same options, geometry and LAI files
    (names and modification times) and every output it lists exists.
    """
    st = _Step("analyze", on_unit)
    jobs = []
    for r in cfg.regions:
        for a in cfg.analyses:
            if a.regions is not None and r.name not in a.regions:
                continue
            outdir = cfg.analysis_dir(r.name, a)
            try:
                fp = _analysis_fingerprint(cfg, r, a)
            except (LaiError, OSError) as exc:
                waiting = dry_run and isinstance(exc, NoDataFoundError)
                st.add(r.name, a.name, "planned" if waiting else "failed", _error_text(exc))
                continue
            old = _read_manifest(outdir / MANIFEST_NAME)
            if old and old.get("fingerprint") == fp and all(p.exists() for p in _manifest_outputs(outdir, old)):
                st.add(r.name, a.name, "skipped", "outputs up to date", outputs=_manifest_outputs(outdir, old))
            elif dry_run:
                st.add(r.name, a.name, "planned", f"{len(fp['inputs'])} LAI file(s)")
            else:
                try:
                    jobs.append(_analysis_job(cfg, ex, r, a, fp, st))
                except Exception as exc:  # noqa: BLE001 - e.g. a geometry that meets no raster
                    st.add(r.name, a.name, "failed", _error_text(exc))
    _run_parts_jobs(ex, jobs)
    return st.finish()


_PYPLOT_LOCK = threading.Lock()  # pyplot keeps global state: one figure at a time per process


def _quicklook_task(csv: Path, max_tif: Path, geometry: Path | None) -> Path:
    from .quicklook import quicklook

    with _PYPLOT_LOCK:
        return quicklook(csv, max_tif, geometry_path=geometry)


def step_quicklook(cfg: RunConfig, ex: Executor, *, dry_run: bool = False,
                   on_unit: UnitFn | None = None) -> StepSummary:
    """A PNG per analysed zone with a max-LAI map; skipped when newer than its CSV and map."""
    from .quicklook import quicklook_path

    st = _Step("quicklook", on_unit)
    futures = {}
    for r in cfg.regions:
        for a in cfg.analyses:
            if not a.quicklook or (a.regions is not None and r.name not in a.regions):
                continue
            outdir = cfg.analysis_dir(r.name, a)
            manifest = _read_manifest(outdir / MANIFEST_NAME)
            if manifest is None:
                st.add(r.name, a.name, "planned" if dry_run else "failed", "no analysis output yet")
                continue
            geometry = a.geometry if a.mode != "raster" else None
            for z in manifest["zones"]:
                item = f"{a.name}/{z['name']}"
                if not z["max_tif"]:
                    st.add(r.name, item, "skipped", "no max-LAI map")
                    continue
                csv, tif = outdir / z["csv"], outdir / z["max_tif"]
                png = quicklook_path(csv)
                if _up_to_date([png], [csv, tif]):
                    st.add(r.name, item, "skipped", "PNG up to date", outputs=[png])
                elif dry_run:
                    st.add(r.name, item, "planned", png.name)
                else:
                    futures[ex.submit(_timed, _quicklook_task, csv, tif, geometry,
                                      key=f"quicklook-{png.stem}-{_token()}")] = (r, item)
    for fut in ex.as_completed(futures):
        r, item = futures[fut]
        try:
            png, secs = fut.result()
            st.add(r.name, item, "done", "", secs, [png])
        except Exception as exc:  # noqa: BLE001
            st.add(r.name, item, "failed", _error_text(exc))
    return st.finish()


def _mark_downstream(earlier: Sequence[StepSummary], step: StepSummary) -> None:
    """Dry run: a unit up to date now is due anyway when an earlier step will redo its region."""
    due = {u.region: s.step for s in earlier for u in s.units if u.status == "planned"}
    for u in step.units:
        if u.status == "skipped" and u.region in due and step.step in ("analyze", "quicklook"):
            u.status, u.reason = "planned", f"after {due[u.region]}: its inputs will change"


_STEP_FUNCS: dict[str, Callable[..., StepSummary]] = {
    "acquire": step_acquire, "mosaic": step_mosaic, "predict": step_predict,
    "analyze": step_analyze, "quicklook": step_quicklook,
}


# ==================================================================== the run


def run_pipeline(
    cfg: RunConfig,
    *,
    only: Iterable[str] | None = None,
    dry_run: bool = False,
    executor: Executor | None = None,
    on_step: Callable[[str], None] | None = None,
    on_unit: UnitFn | None = None,
    write_summary: bool = True,
) -> RunSummary:
    """Run the steps of ``cfg`` in order; return (and write) the summary.

    Parameters
    ----------
    cfg
        A config from :func:`load_config`.
    only
        Steps to run (default: all of :data:`STEPS`, in that order).
    dry_run
        Plan only: list every unit that would run (``planned``) or be skipped.
    executor
        Use this executor (it is not closed); default: one made from the config.
    on_step, on_unit
        Called when a step starts and after every unit (progress display).
    write_summary
        Write ``run_summary.json`` in the output root (not on a dry run).

    A unit that fails is recorded with its reason and the others go on; a step never
    stops the run. ``summary.ok`` is false when anything failed.
    """
    steps = list(only) if only else list(STEPS)
    for s in steps:
        if s not in STEPS:
            raise ConfigError(f"--only: {s!r} is not allowed; allowed values: {', '.join(STEPS)}")
    steps = [s for s in STEPS if s in steps]
    summary = RunSummary(cfg.output_root, executor.kind if executor else cfg.executor, dry_run,
                         started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                         config=str(cfg.path) if cfg.path else None)
    t0 = time.perf_counter()
    own = executor is None and not dry_run
    # a dry run submits nothing: no threads or cluster to start
    ex = executor or (make_executor(cfg.executor, workers=cfg.workers, dask=cfg.dask) if own else SerialExecutor())
    try:
        for name in steps:
            if on_step:
                on_step(name)
            log.info("step %s", name)
            step = _STEP_FUNCS[name](cfg, ex, dry_run=dry_run, on_unit=on_unit)
            if dry_run:
                _mark_downstream(summary.steps, step)
            summary.steps.append(step)
    finally:
        if own:
            ex.close()
        summary.seconds = time.perf_counter() - t0
        if write_summary and not dry_run:
            cfg.output_root.mkdir(parents=True, exist_ok=True)
            summary.write()
    return summary
