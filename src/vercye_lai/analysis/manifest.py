"""The record of an analysis, ``MANIFEST.json``: its fingerprint (its options, geometry file
and LAI files with their modification times) and its outputs. An analysis whose manifest
records the same fingerprint and whose outputs all exist is up to date; ``validate
--series``, ``export-apsim`` and the report read its zones from it (:func:`zone_csvs`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.io import is_whole, open_raster, remove_stale, write_text_atomic
from vercye_lai.naming import find_observations, uncertainty_path

MANIFEST_NAME = "MANIFEST.json"
PART_PREFIX = ".analysis-part."  # hidden part files: {PART_PREFIX}{key}.{n:04d}.npz


def lai_files(lai_dir: Path, region: str, *, resolution: float, start: dt.date, end: dt.date,
              options: AnalysisOptions) -> dict[tuple[dt.date, str], Path]:
    """The LAI files an analysis reads, ``(date, sensor) → path`` (listed once, for its
    fingerprint and its plan).

    Raises
    ------
    NoDataFoundError
        No LAI file of the region in the range (yet).
    """
    return find_observations(lai_dir, region, resolution, sensors=options.sensors, suffix=options.variable,
                             extensions=(".tif",), start=start, end=end)


def fingerprint(files: Mapping, geometry: Path, *, start: dt.date, end: dt.date,
                options: AnalysisOptions) -> dict[str, Any]:
    """What an analysis depends on: its options, its geometry file, its LAI files (name, mtime)
    and the uncertainty rasters beside them (added later, they add a column)."""
    g = geometry.stat()
    unc = [u for u in map(uncertainty_path, files.values()) if u.exists()]
    extra = {}
    if options.adjustment_file is not None:  # a calibration file: its version counts
        a = options.adjustment_file.stat()
        extra["adjustment_file"] = [a.st_mtime_ns, a.st_size]
    if unc:  # which σ the LAI Uncertainty column is made of (the network's, a calibration's)
        extra["uncertainty"] = sorted({uncertainty_kind(u) for u in unc})
    return extra | {"options": options.to_dict(), "geometry": [str(geometry), g.st_mtime_ns, g.st_size],
            "start": start.isoformat(), "end": end.isoformat(),
            "inputs": [[p.name, p.stat().st_mtime_ns] for p in [*files.values(), *unc]]}


def uncertainty_kind(path: Path) -> str:
    """What σ an uncertainty raster holds, from its ``VERCYE_UNCERTAINTY`` tag."""
    with open_raster(path) as ds:
        return ds.tags().get("VERCYE_UNCERTAINTY", "unknown (no VERCYE_UNCERTAINTY tag)")


def read_manifest(outdir: Path) -> dict[str, Any] | None:
    """The manifest of the analysis in ``outdir`` (``None``: none, or unreadable)."""
    try:
        return json.loads((outdir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def zone_csvs(outdir: Path, manifest: Mapping[str, Any] | None = None) -> dict[str, Path] | None:
    """Zone name → ``_STATS.csv`` of the analysis in ``outdir`` (``manifest``: already read);
    ``None`` when the folder has no readable manifest."""
    manifest = manifest if manifest is not None else read_manifest(outdir)
    if manifest is None:
        return None
    return {str(z["name"]): Path(outdir) / z["csv"] for z in manifest["zones"]}


def manifest_outputs(outdir: Path, manifest: Mapping[str, Any]) -> list[Path]:
    """The CSVs and max maps a manifest lists."""
    return [outdir / f for z in manifest["zones"] for f in (z["csv"], z["max_tif"]) if f]


def up_to_date(outdir: Path, fp: Mapping[str, Any]) -> list[Path] | None:
    """The outputs of the analysis in ``outdir`` if it was made with fingerprint ``fp`` and
    every output exists as it was written (its size and time, where the manifest records them:
    a CSV cut at a line's end, or another zone's copied over it, was trusted), else ``None``."""
    old = read_manifest(outdir)
    if old and old.get("fingerprint") == fp:
        outputs = manifest_outputs(outdir, old)
        stamps = old.get("stamps") or {}
        if all(is_whole(p) for p in outputs) and all(
                _stamp(p) == stamps[p.name] for p in outputs if p.name in stamps):
            return outputs
    return None


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def write_manifest(outdir: Path, fp: Mapping[str, Any], result: Any) -> dict[str, Any]:
    """Write ``MANIFEST.json``: the fingerprint, the outputs of ``result`` and each one's size
    and modification time (a file changed outside the tool is not the analysis' any more)."""
    zones = [{"name": z.name, "csv": z.csv.name, "max_tif": z.max_tif.name if z.max_tif else None}
             for z in result.zones]
    stamps = {p.name: _stamp(p) for z in result.zones for p in (z.csv, z.max_tif) if p is not None}
    manifest = {"fingerprint": fp, "zones": zones, "n_files": result.n_files, "skipped": result.skipped,
                "stamps": stamps}
    write_text_atomic(outdir / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    return manifest


def remove_leftovers(outdir: Path, keep: str | None = None) -> None:
    """Remove temporary files whose writer is gone and part files (but those starting with
    ``keep``) of killed runs; the folder is this analysis' own."""
    if not outdir.is_dir():
        return
    remove_stale(outdir)
    for old in outdir.glob(f"{PART_PREFIX}*"):
        if (keep is None or not old.name.startswith(keep)) and not old.name.endswith(".part"):
            old.unlink(missing_ok=True)
