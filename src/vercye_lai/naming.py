"""File-name conventions shared by every step.

Stacks (acquisition/mosaic output, predict input): ``{region}_{res}m_{date}[_{SENSOR}].{tif,vrt}``.
Products (predict output): ``{region}_{res}m_{date}[_{SENSOR}]_{VARIABLE}.tif``, e.g. ``_LAI.tif``.
Dates are ISO ``YYYY-MM-DD``. Region names may themselves contain underscores.

The sensor token names the source of a stack other than Sentinel-2: ``L8``, ``L9`` (Landsat
Collection 2 Level-2), ``L30``, ``S30`` (HLS). Sentinel-2 names carry none, so every
existing folder keeps its meaning; a token (not a folder per sensor) keeps one folder per
region, sorted by date, that every step lists once, and lets two sensors' products of one
date sit side by side.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from vercye_lai.errors import InputError, NoDataFoundError

log = logging.getLogger(__name__)

STACK_EXTENSIONS = (".vrt", ".tif")  # order = preference when both exist for a date

#: sensor tokens of the file names; Sentinel-2 (``S2``) has none
SENSORS = ("S2", "S30", "L30", "L8", "L9")
#: the sensors whose stacks the Landsat network reads (Landsat OLI band numbering)
LANDSAT_SENSORS = ("L30", "L8", "L9")

_NAME_RE = re.compile(
    r"^(?P<region>.+)_(?P<res>\d+(?:\.\d+)?)m_(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:_(?P<sensor>S30|L30|L8|L9)(?=[_.]))?"
    r"(?:_(?P<suffix>[A-Za-z][A-Za-z0-9_]*))?(?P<ext>\.[A-Za-z]+)$"
)


def sensor_token(sensor: str | None) -> str | None:
    """The token of ``sensor`` in file names (``None`` for Sentinel-2).

    Raises
    ------
    InputError
        For an unknown sensor.
    """
    s = (sensor or "S2").upper()
    if s not in SENSORS:
        raise InputError(f"unknown sensor {sensor!r}; known: {', '.join(x.lower() for x in SENSORS)}")
    return None if s == "S2" else s


def _res_str(res: float) -> str:
    return str(int(res)) if float(res).is_integer() else str(res)


@dataclass(frozen=True, order=True)
class RasterName:
    """The parts of a conventional raster file name.

    Attributes
    ----------
    region
        Region name as used in the library (may contain underscores).
    resolution
        Pixel size in metres.
    date
        Acquisition date (UTC).
    suffix
        ``None`` for a stack, the variable (``"LAI"``) for a product.
    ext
        ``".tif"`` or ``".vrt"``.
    sensor
        ``None`` for Sentinel-2, else the token (``"L30"``, see :data:`SENSORS`).
    """

    region: str
    resolution: float
    date: dt.date
    suffix: str | None = None
    ext: str = ".tif"
    sensor: str | None = None

    def __post_init__(self) -> None:
        check_region_name(self.region)
        if why := resolution_problem(self.resolution):
            raise InputError(f"resolution: {why}")

    @property
    def name(self) -> str:
        tail = f"_{self.suffix}" if self.suffix else ""
        token = f"_{self.sensor}" if self.sensor else ""
        return f"{self.region}_{_res_str(self.resolution)}m_{self.date.isoformat()}{token}{tail}{self.ext}"

    @property
    def sensor_name(self) -> str:
        """``"S2"`` or the token."""
        return self.sensor or "S2"

    def product(self, variable: str) -> RasterName:
        """The product name of this stack for ``variable`` (always ``.tif``)."""
        return RasterName(self.region, self.resolution, self.date, variable, ".tif", self.sensor)

    @classmethod
    def parse(cls, name: str | Path) -> RasterName:
        """Parse a file name; raise :class:`InputError` when it does not follow the convention."""
        base = Path(name).name
        m = _NAME_RE.match(base)
        if not m:
            raise InputError(
                "file name does not follow '{region}_{res}m_{YYYY-MM-DD}[_{SENSOR}][_{VARIABLE}].{tif,vrt}'",
                path=name,
            )
        try:
            date = dt.date.fromisoformat(m["date"])
        except ValueError as exc:
            raise InputError(f"invalid date {m['date']!r} in file name", path=name) from exc
        return cls(m["region"], float(m["res"]), date, m["suffix"], m["ext"].lower(), m["sensor"])


def flags_path(product: Path) -> Path:
    """The quality-flag raster beside a product: ``…_LAI_flags.tif``."""
    return product.with_name(product.stem + "_flags.tif")


def uncertainty_path(product: Path) -> Path:
    """The uncertainty raster beside a product: ``…_LAI_uncertainty.tif``."""
    return product.with_name(product.stem + "_uncertainty.tif")


def resolution_problem(value: float) -> str | None:
    """Why ``value`` cannot be a resolution of the file names (a positive, finite number of
    metres: 0 divided by zero, -20 wrote a 1x1 stack), or ``None`` when it can."""
    return None if math.isfinite(value) and value > 0 else f"must be a positive number of metres, not {value}"


def check_region_name(name: str, what: str = "region") -> str:
    """``name`` if it can name files (``{region}_{res}m_…``) and folders: not empty, no path
    separator, not ``.`` or ``..`` ("../x" wrote stacks outside the output folder).

    Raises
    ------
    InputError
        Saying what is wrong with it.
    """
    if not name or name in (".", "..") or any(c in name for c in "/\\") or not name.isprintable():
        raise InputError(f"{what} name {name!r}: it names files and folders: no '/', '\\', control "
                         "characters, '.' or '..', not empty (e.g. 'poltava' or 'field_12')")
    return name


def stack_name(region: str, resolution: float, date: dt.date, ext: str = ".tif", *,
               sensor: str | None = None) -> str:
    """``{region}_{res}m_{date}[_{SENSOR}]{ext}``."""
    return RasterName(region, resolution, date, None, ext, sensor_token(sensor)).name


def product_name(region: str, resolution: float, date: dt.date, variable: str = "LAI") -> str:
    """``{region}_{res}m_{date}_{variable}.tif``."""
    return RasterName(region, resolution, date, variable, ".tif").name


def _there(folders: Sequence[Path], suffix: str | None, extensions: tuple[str, ...], region: str,
           resolution: float | None = None) -> str:
    """``; found …: use --resolution M`` — what a folder holds instead of what was asked for
    (at the resolution asked for: the dates they run, the range being what held none)."""
    found = survey(folders, suffix=suffix, extensions=extensions)
    if not found:
        return ""
    mine = {k: n for k, n in found.items() if k[0] == region and k[1] == "S2"}
    hint = ""
    if len(mine) == 1 and resolution is not None and next(iter(mine))[2] == float(resolution):
        dates = sorted(rn.date for f in dict.fromkeys(folders) if f.is_dir() for _, rn in named_files(f.iterdir())
                       if (rn.region, rn.sensor_name, rn.resolution, rn.suffix) == (region, "S2", float(resolution),
                                                                                  suffix) and rn.ext in extensions)
        hint = f": none in the date range (they run {dates[0]} to {dates[-1]})"
    elif len(mine) == 1:
        hint = f": use --resolution {_res_str(next(iter(mine))[2])}"
    elif not any(k[0] == region for k in found):
        hint = ": use --region " + "/".join(sorted({k[0] for k in found}))
    return f"; found {_found_text(found, suffix)}{hint}"


def find_rasters(
    directory: str | Path | Sequence[str | Path],
    region: str,
    resolution: float,
    *,
    suffix: str | None = None,
    extensions: tuple[str, ...] = STACK_EXTENSIONS,
    start: dt.date | None = None,
    end: dt.date | None = None,
    sensor: str | None = None,
) -> dict[dt.date, Path]:
    """Find the conventional rasters of one region, resolution and sensor in ``directory``.

    Parameters
    ----------
    directory
        Folder to search (not recursive), or several: a date found in more than one takes
        the preferred extension, then the first folder.
    region, resolution
        Region name and pixel size (m) that must match exactly.
    suffix
        ``None`` for stacks, a variable name (``"LAI"``) for products.
    extensions
        Accepted extensions, in order of preference when a date has several files
        (a ``.vrt`` mosaic wins over a single ``.tif`` part).
    start, end
        Optional inclusive date range.
    sensor
        ``None`` or ``"S2"``: Sentinel-2 names (no token); else the sensor token
        (``"L30"``); see :func:`find_observations` for several sensors.

    Returns
    -------
    dict
        Date → path, sorted by date.

    Raises
    ------
    NoDataFoundError
        When no folder exists or none holds a matching file.
    InputError
        When a folder holds two files of one date with the same extension (e.g.
        ``R_20m_2022-04-01.tif`` and ``R_20.0m_2022-04-01.tif``).
    """
    folders = [Path(directory)] if isinstance(directory, (str, Path)) else list(map(Path, directory))
    existing = [f for f in dict.fromkeys(folders) if f.is_dir()]
    if not existing:
        raise NoDataFoundError("folder does not exist", path=folders[0])
    found: dict[dt.date, Path] = {}
    rank = {e: i for i, e in enumerate(extensions)}
    token = sensor_token(sensor)
    for folder in existing:
        here: dict[tuple[dt.date, str], Path] = {}
        for path, rn in named_files(sorted(folder.iterdir())):  # our temporary files are hidden: passed over
            # the resolution is compared as a number: "20m" and "20.0m" are one resolution
            if rn.region != region or rn.resolution != float(resolution) or rn.suffix != suffix:
                continue
            if rn.sensor != token:
                continue
            if rn.ext not in rank:
                continue
            if (start and rn.date < start) or (end and rn.date > end):
                continue
            twin = here.setdefault((rn.date, rn.ext), path)
            if twin != path:  # which one is meant? never pick by directory order
                raise InputError(
                    f"two files for {region} on {rn.date}: {twin.name} and {path.name}; "
                    "remove or rename one", path=folder)
            old = found.get(rn.date)
            if old is None or rank[rn.ext] < rank[old.suffix.lower()]:
                found[rn.date] = path
    if not found:
        what = f"_{suffix}" if suffix else ""
        exts = "|".join(e.lstrip(".") for e in extensions)
        span = ""
        if start or end:
            span = f" between {start or '…'} and {end or '…'}"
        raise NoDataFoundError(
            f"no '{region}_{_res_str(resolution)}m_<date>{'_' + token if token else ''}{what}.{{{exts}}}' "
            f"files{span}{_there(existing, suffix, extensions, region, resolution)}", path=existing[0],
        )
    return dict(sorted(found.items()))


def find_observations(
    directory: str | Path | Sequence[str | Path],
    region: str,
    resolution: float,
    *,
    sensors: Sequence[str] = ("S2",),
    suffix: str | None = None,
    extensions: tuple[str, ...] = STACK_EXTENSIONS,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> dict[tuple[dt.date, str], Path]:
    """The rasters of several sensors: ``(date, sensor) → path``, sorted by date, then by
    the order of ``sensors``.

    Sentinel-2 files must have ``resolution``; another sensor's may have any (HLS and
    Landsat are 30 m) — but one only: two resolutions of one sensor are an error.

    Raises
    ------
    NoDataFoundError
        No file of any of the sensors.
    InputError
        Two files of one date and sensor (see :func:`find_rasters`), or two resolutions of
        one sensor.
    """
    order = [(sensor_token(s) or "S2") for s in sensors]
    folders = [Path(directory)] if isinstance(directory, (str, Path)) else list(map(Path, directory))
    if not any(f.is_dir() for f in folders):
        raise NoDataFoundError("folder does not exist", path=folders[0])
    resolutions: dict[str, set[float]] = {s: set() for s in order}
    for (r, sensor, res) in survey(folders, suffix=suffix, extensions=extensions):
        if r == region and sensor in resolutions:
            resolutions[sensor].add(res)
    found: dict[tuple[dt.date, str], Path] = {}
    for s in order:
        res = {float(resolution)} if s == "S2" else resolutions[s]
        if len(res) > 1:
            raise InputError(f"{s} files of {region} at several resolutions ({', '.join(map(_res_str, sorted(res)))} m): "
                             "keep one", path=folders[0])
        for r in res:
            try:
                got = find_rasters(folders, region, r, suffix=suffix, extensions=extensions, start=start,
                                   end=end, sensor=s)
            except NoDataFoundError:
                continue
            found.update({(d, s): p for d, p in got.items()})
    if not found:
        what = f"_{suffix}" if suffix else ""
        exts = "|".join(e.lstrip(".") for e in extensions)
        span = f" between {start or '…'} and {end or '…'}" if start or end else ""
        s2 = f"'{region}_{_res_str(resolution)}m_<date>{what}.{{{exts}}}' files" if "S2" in order else ""
        others = [s for s in order if s != "S2"]
        tail = f" (nor {'/'.join(others)} ones at any resolution)" if others and s2 else \
            (f"{'/'.join(others)} files of {region}" if others else "")
        raise NoDataFoundError(f"no {s2}{tail}{span}{_there(folders, suffix, extensions, region, resolution)}",
                               path=folders[0])
    rank = {s: i for i, s in enumerate(order)}
    return dict(sorted(found.items(), key=lambda kv: (kv[0][0], rank[kv[0][1]])))


#: the resolution of Sentinel-2 stacks when neither the files nor the user say it
DEFAULT_RESOLUTION = 20.0


def named_files(paths: Iterable[Path]) -> Iterator[tuple[Path, RasterName]]:
    """The conventionally named files among ``paths``, with their parsed names (hidden files,
    our temporaries, and other names are passed over)."""
    for path in paths:
        if path.name.startswith("."):
            continue
        try:
            yield path, RasterName.parse(path.name)
        except InputError:
            continue


def survey(directory: str | Path | Sequence[str | Path], *, suffix: str | None = None,
           extensions: tuple[str, ...] = STACK_EXTENSIONS) -> dict[tuple[str, str, float], int]:
    """What a folder holds: the number of conventional files per ``(region, sensor,
    resolution)`` (stacks with ``suffix=None``, a variable's products otherwise)."""
    folders = [Path(directory)] if isinstance(directory, (str, Path)) else list(map(Path, directory))
    counts: dict[tuple[str, str, float], set[dt.date]] = {}
    for folder in (f for f in dict.fromkeys(folders) if f.is_dir()):
        for _, rn in named_files(folder.iterdir()):
            if rn.suffix == suffix and rn.ext in extensions:
                counts.setdefault((rn.region, rn.sensor_name, rn.resolution), set()).add(rn.date)
    return {k: len(v) for k, v in sorted(counts.items())}


def _found_text(found: dict[tuple[str, str, float], int], suffix: str | None) -> str:
    tail = f"_{suffix}" if suffix else ""
    return ", ".join(f"{r}_{_res_str(res)}m_*{'' if s == 'S2' else '_' + s}{tail} ({n} date{'s' * (n != 1)})"
                     for (r, s, res), n in found.items())


def infer_region_resolution(
    directory: str | Path | Sequence[str | Path],
    region: str | None = None,
    resolution: float | None = None,
    *,
    suffix: str | None = None,
    extensions: tuple[str, ...] = STACK_EXTENSIONS,
) -> tuple[str, float]:
    """The region and Sentinel-2 resolution of the files in ``directory`` where not given:
    the only region there, the only resolution of that region's Sentinel-2 files (Landsat
    and HLS files keep theirs; with none of Sentinel-2, :data:`DEFAULT_RESOLUTION`). What
    is inferred is logged.

    Raises
    ------
    NoDataFoundError
        No conventional file in the folder (to infer the region from).
    InputError
        Several regions (or resolutions) to choose from: the message lists them.
    """
    first = Path(directory) if isinstance(directory, (str, Path)) else Path(list(directory)[0])
    if region is not None and resolution is not None:
        return region, float(resolution)
    found = survey(directory, suffix=suffix, extensions=extensions)
    what = f"_{suffix}" if suffix else ""
    if region is None:
        regions = sorted({r for r, _, _ in found})
        if not regions:
            raise NoDataFoundError(f"no '{{region}}_{{res}}m_<date>{what}' files to take the region from", path=first)
        if len(regions) > 1:
            raise InputError(f"holds several regions ({_found_text(found, suffix)}): give the region "
                             "(--region NAME)", path=first)
        region = regions[0]
        log.info("%s: region %s (the only one there)", first, region)
    if resolution is None:
        s2 = sorted({res for (r, s, res) in found if r == region and s == "S2"})
        if len(s2) > 1:
            mine = {k: n for k, n in found.items() if k[0] == region and k[1] == "S2"}
            raise InputError(f"holds {region} at several resolutions ({_found_text(mine, suffix)}): give the "
                             "resolution (--resolution M)", path=first)
        resolution = s2[0] if s2 else DEFAULT_RESOLUTION
        if s2:
            log.info("%s: resolution %s m (the only one of %s there)", first, _res_str(resolution), region)
    return region, float(resolution)


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end``, both inclusive.

    Raises
    ------
    InputError
        When ``end`` is before ``start``.
    """
    if end < start:
        raise InputError(f"end date {end} is before start date {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
