"""File-name conventions shared by every step.

Stacks (acquisition/mosaic output, predict input): ``{region}_{res}m_{date}.{tif,vrt}``.
Products (predict output): ``{region}_{res}m_{date}_{VARIABLE}.tif``, e.g. ``_LAI.tif``.
Dates are ISO ``YYYY-MM-DD``. Region names may themselves contain underscores.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, NoDataFoundError

STACK_EXTENSIONS = (".vrt", ".tif")  # order = preference when both exist for a date

_NAME_RE = re.compile(
    r"^(?P<region>.+)_(?P<res>\d+(?:\.\d+)?)m_(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:_(?P<suffix>[A-Za-z][A-Za-z0-9_]*))?(?P<ext>\.[A-Za-z]+)$"
)


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
    """

    region: str
    resolution: float
    date: dt.date
    suffix: str | None = None
    ext: str = ".tif"

    @property
    def name(self) -> str:
        tail = f"_{self.suffix}" if self.suffix else ""
        return f"{self.region}_{_res_str(self.resolution)}m_{self.date.isoformat()}{tail}{self.ext}"

    def product(self, variable: str) -> RasterName:
        """The product name of this stack for ``variable`` (always ``.tif``)."""
        return RasterName(self.region, self.resolution, self.date, variable, ".tif")

    @classmethod
    def parse(cls, name: str | Path) -> RasterName:
        """Parse a file name; raise :class:`InputError` when it does not follow the convention."""
        base = Path(name).name
        m = _NAME_RE.match(base)
        if not m:
            raise InputError(
                "file name does not follow '{region}_{res}m_{YYYY-MM-DD}[_{VARIABLE}].{tif,vrt}'",
                path=name,
            )
        try:
            date = dt.date.fromisoformat(m["date"])
        except ValueError as exc:
            raise InputError(f"invalid date {m['date']!r} in file name", path=name) from exc
        return cls(m["region"], float(m["res"]), date, m["suffix"], m["ext"].lower())


def flags_path(product: Path) -> Path:
    """The quality-flag raster beside a product: ``…_LAI_flags.tif``."""
    return product.with_name(product.stem + "_flags.tif")


def uncertainty_path(product: Path) -> Path:
    """The uncertainty raster beside a product: ``…_LAI_uncertainty.tif``."""
    return product.with_name(product.stem + "_uncertainty.tif")


def stack_name(region: str, resolution: float, date: dt.date, ext: str = ".tif") -> str:
    """``{region}_{res}m_{date}{ext}``."""
    return RasterName(region, resolution, date, None, ext).name


def product_name(region: str, resolution: float, date: dt.date, variable: str = "LAI") -> str:
    """``{region}_{res}m_{date}_{variable}.tif``."""
    return RasterName(region, resolution, date, variable, ".tif").name


def find_rasters(
    directory: str | Path | Sequence[str | Path],
    region: str,
    resolution: float,
    *,
    suffix: str | None = None,
    extensions: tuple[str, ...] = STACK_EXTENSIONS,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> dict[dt.date, Path]:
    """Find the conventional rasters of one region and resolution in ``directory``.

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
    for folder in existing:
        here: dict[tuple[dt.date, str], Path] = {}
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):  # our temporary files are hidden
                continue
            try:
                rn = RasterName.parse(path.name)
            except InputError:
                continue
            # the resolution is compared as a number: "20m" and "20.0m" are one resolution
            if rn.region != region or rn.resolution != float(resolution) or rn.suffix != suffix:
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
            f"no '{region}_{_res_str(resolution)}m_<date>{what}.{{{exts}}}' files{span}",
            path=existing[0],
        )
    return dict(sorted(found.items()))


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
