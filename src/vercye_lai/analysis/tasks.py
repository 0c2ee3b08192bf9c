"""How an analysis runs: whole, in this process (:func:`analyze`), or as resumable parts
that run anywhere (:func:`split`, :func:`run_part`, :func:`finish`: how ``vercye-lai run``
spreads it over threads or Dask workers, with the same outputs).

The parts of an analysis are chunks of zones × chunks of dates; each writes a hidden
``.npz`` in the analysis folder and the finishing task combines them into the outputs and
writes the manifest (:mod:`.manifest`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vercye_lai.analysis.finish import AnalysisResult, finish_analysis
from vercye_lai.analysis.manifest import MANIFEST_NAME, PART_PREFIX, fingerprint, remove_leftovers, write_manifest
from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.analysis.plan import AnalysisPlan, plan_analysis
from vercye_lai.analysis.season import SeasonPart, analyze_part

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One part of an analysis: these zones on these days, saved to ``path``."""

    path: Path
    zones: tuple[int, ...]
    days: tuple[int, ...]


def split(plan: AnalysisPlan, fp: Mapping[str, Any], *, zones_per_task: int, dates_per_task: int | None,
          workers: int) -> list[Part]:
    """The parts of ``plan`` , named after ``fp`` and the split.

    Zones are chunked in a space-filling-curve order (``zones_per_task``), so a part reads
    a small window; dates so that there are about two parts per worker (``dates_per_task``
    overrides). Part files of another fingerprint or split are removed; those of this one
    are kept, so a rerun after an interruption reuses them.
    """
    zone_chunks = plan.zone_chunks(zones_per_task)
    n_days = len(plan.file_days)
    per_part = dates_per_task or -(-n_days * len(zone_chunks) // (2 * workers))
    day_chunks = plan.day_chunks(max(1, min(per_part, n_days)))
    text = json.dumps([fp, zone_chunks, day_chunks], sort_keys=True, default=str)
    key = hashlib.sha1(text.encode()).hexdigest()[:10]
    remove_leftovers(plan.outdir, keep=f"{PART_PREFIX}{key}.")
    plan.outdir.mkdir(parents=True, exist_ok=True)
    parts = []
    for z in zone_chunks:
        for d in day_chunks:
            parts.append(Part(plan.outdir / f"{PART_PREFIX}{key}.{len(parts):04d}.npz", z, d))
    return parts


def run_part(plan: AnalysisPlan, part: Part) -> Path:
    """Compute one part and save it (a task: runs anywhere, e.g. on a Dask worker)."""
    return analyze_part(plan, part.zones, part.days).save(part.path)


def finish(plan: AnalysisPlan, parts: Sequence[Path], fp: Mapping[str, Any]) -> dict[str, Any]:
    """Combine the saved parts into the outputs, write the manifest, remove the parts. The old
    manifest goes first: outputs are replaced zone by zone, and one that failed half-way left
    a folder of old and new files that the old manifest vouched for."""
    loaded = [SeasonPart.load(p) for p in parts]
    (plan.outdir / MANIFEST_NAME).unlink(missing_ok=True)
    res = finish_analysis(plan, loaded)
    manifest = write_manifest(plan.outdir, fp, res)
    remove_leftovers(plan.outdir)
    return manifest


def analyze(
    lai_dir: str | Path,
    outdir: str | Path,
    region: str,
    geometry_path: str | Path,
    *,
    resolution: float = 20,
    start: dt.date | None = None,
    end: dt.date | None = None,
    options: AnalysisOptions = AnalysisOptions(),
    progress: Callable[[int, int], None] | None = None,
) -> AnalysisResult:
    """Daily LAI statistics and the max-LAI map of fields or a crop mask.

    Parameters
    ----------
    lai_dir, outdir, region, geometry_path, resolution, start, end, options
        As :func:`plan_analysis`: the LAI folder, the output folder, the region name,
        the fields or crop mask, the pixel size (m) in the file names, the inclusive date
        range and the :class:`.options.AnalysisOptions`.
    progress
        Called as ``progress(done, total)`` after each date.

    Raises
    ------
    NoDataFoundError
        No LAI file in the range.
    InputError
        Start after end, an empty geometry file or all-zero mask, or a geometry that meets
        no LAI raster (or covers no pixel).
    DataIOError
        A geometry or LAI file that cannot be read.

    Notes
    -----
    A CSV row per day. On a gap day (no file, no valid pixel, rejected by
    ``max_cloud_percent``/``min_valid_fraction``, or an outlier) the means and medians are
    interpolated (``interpolated = 1``) when the day lies between two observations, the
    standard deviations stay empty, ``n_pixels`` is 0 (nothing aggregated that day) and the
    cloud share says why (empty: no file that day). Pixels of the geometry outside a date's raster count as
    cloud/no data. The max map holds, per pixel, the maximum over the observation days of
    its zone, on the grid of the first LAI raster that meets the geometry.

    This runs the analysis as one part in this process; :func:`plan_analysis`,
    :func:`analyze_part` and :func:`finish_analysis` split it into parts over chunks of
    zones and dates (how ``vercye-lai run`` spreads it over threads or Dask workers),
    with the same outputs.
    """
    plan = plan_analysis(lai_dir, outdir, region, geometry_path, resolution=resolution,
                         start=start, end=end, options=options)
    log.info("%s: %d zone(s), %d LAI file(s) over %d days", plan.geometry_path.name,
             len(plan.names), len(plan.files), len(plan.days))
    result = finish_analysis(plan, [analyze_part(plan, progress=progress)])
    # the same record a run writes: validate --series, export-apsim and report read it
    fp = fingerprint(dict(enumerate(plan.all_files)), plan.geometry_path, start=plan.start, end=plan.end,
                     options=plan.options)
    write_manifest(plan.outdir, fp, result)
    return result
