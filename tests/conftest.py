"""Shared test helpers: tiny GeoTIFFs with known values written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHARED = REPO.parent / "shared" / "data"  # present in CI (shared/ beside the clone)


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: str | None = "EPSG:32632",
    transform=None,
    nodata=None,
    descriptions: list[str] | None = None,
    scales=None,
    offsets=None,
    tiled: bool = False,
    blocksize: int = 256,
    **profile,
) -> Path:
    """Write ``data`` (bands, rows, cols) or (rows, cols) to a GeoTIFF and return its path.

    Default grid: 10 m pixels, upper-left corner at (475780, 5255000) in UTM 32N.
    """
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    count, height, width = data.shape
    if transform is None:
        transform = from_origin(475780.0, 5255000.0, 10.0, 10.0)
    kw = dict(
        driver="GTiff", width=width, height=height, count=count, dtype=data.dtype,
        crs=crs, transform=transform, nodata=nodata,
    )
    if tiled:
        kw.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    kw.update(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **kw) as ds:
        ds.write(data)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                ds.set_band_description(i, d)
        if scales is not None:
            ds.scales = scales
        if offsets is not None:
            ds.offsets = offsets
    return path


@pytest.fixture
def raster_writer(tmp_path):
    """``raster_writer(name, data, **kw)`` writes ``tmp_path / name``."""

    def _write(name: str, data, **kw) -> Path:
        return write_raster(tmp_path / name, data, **kw)

    return _write


# --- analysis helpers (tests/test_analysis*.py, test_quicklook.py, test_reproject_mask.py)
ORIGIN = (475780.0, 5255000.0)  # write_raster's default upper-left corner, 10 m pixels


def pixel_box(c0: float, r0: float, c1: float, r1: float, *, res: float = 10.0):
    """A shapely box covering columns c0..c1-1 and rows r0..r1-1 of write_raster's grid."""
    from shapely.geometry import box

    x0, y0 = ORIGIN
    return box(x0 + res * c0, y0 - res * r1, x0 + res * c1, y0 - res * r0)


@pytest.fixture
def lai_writer(tmp_path):
    """``lai_writer(date, data, region="R", res=10, **kw)`` writes tmp_path/lai/{R}_{res}m_{date}_LAI.tif."""

    def _write(date: str, data, *, region: str = "R", res: int = 10, **kw) -> Path:
        kw.setdefault("nodata", np.nan)
        return write_raster(tmp_path / "lai" / f"{region}_{res}m_{date}_LAI.tif",
                            np.asarray(data, dtype=kw.pop("dtype", np.float32)), **kw)

    return _write


@pytest.fixture
def polygon_writer(tmp_path):
    """``polygon_writer(name, geoms, crs="EPSG:32632", **columns)`` writes a GeoJSON in tmp_path."""

    def _write(name: str, geoms, *, crs: str = "EPSG:32632", to_crs: str | None = None,
               **columns) -> Path:
        import geopandas as gpd

        gdf = gpd.GeoDataFrame(columns, geometry=list(geoms), crs=crs)
        if to_crs:
            gdf = gdf.to_crs(to_crs)
        path = tmp_path / name
        gdf.to_file(path, driver="GeoJSON")
        return path

    return _write


# --- acquisition helpers (test_regions/mosaic/safe/stack_bands.py)
def cli_error_line(result, *, exit_code: int = 1) -> str:
    """Assert a CliRunner result failed with exactly one non-empty output line; return it."""
    assert result.exit_code == exit_code, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


# --- run / executor / interrupt helpers (tests/test_run.py, test_executor.py, test_interrupt.py)
@pytest.fixture(scope="session")
def strickhof_stacks(tmp_path_factory) -> Path:
    """The demo's 34 Strickhof 10 m stacks (90 x 90 px), built once per session."""
    from vercye_lai.demo import demo_config
    from vercye_lai.run import run_pipeline

    out = tmp_path_factory.mktemp("strickhof_stacks")
    assert run_pipeline(demo_config(out, workers=1), only=["acquire"], write_summary=False).ok
    return out / "stacks"


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/{pid}/stat`` after the name (state, ppid, pgrp, ...); None: no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (dead, waiting for its parent)."""
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def write_run_config(path: Path, text: str) -> Path:
    """Write a run config (TOML) whose ``{tmp}`` placeholders name ``path``'s folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.replace("{tmp}", str(path.parent)), encoding="utf-8")
    return path


def assert_same_outputs(a: Path, b: Path, *, csv_tol: float = 0.0) -> int:
    """Compare every raster (pixels, NaN-aware) and CSV (numbers to ``csv_tol``) under two roots.

    Returns the number of files compared; the two roots must hold the same such files.
    """
    import pandas as pd

    def files(root: Path) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                      if p.suffix in (".tif", ".csv") and not p.name.startswith("."))

    names = files(a)
    assert names == files(b)
    for name in names:
        if name.endswith(".tif"):
            with rasterio.open(a / name) as x, rasterio.open(b / name) as y:
                px, py = dict(x.profile), dict(y.profile)
                assert np.array_equal([px.pop("nodata")], [py.pop("nodata")], equal_nan=True), name
                assert px == py, name
                assert np.array_equal(x.read(), y.read(), equal_nan=True), name
        elif csv_tol == 0.0:
            assert (a / name).read_text() == (b / name).read_text(), name
        else:
            pd.testing.assert_frame_equal(pd.read_csv(a / name), pd.read_csv(b / name),
                                          check_exact=False, rtol=0, atol=csv_tol)
    return len(names)


STRICKHOF_RUN = """
output_root = "{root}"
resolution = 10
[[regions]]
name = "strickhof"
start_date = {start}
end_date = {end}
[source]
kind = "local"
path = "{stacks}"
[predict]
block_size = 64          # two windows per 90 x 90 stack
variables = {variables}
part_pixels = 4000       # Dask: one window per part task
[[analyses]]
name = "fields"
geometry = "{fields}"
mode = "poly_iter"
adjustment = "wheat"
quicklook = false
[executor]
kind = "{kind}"
workers = {workers}
{extra}
"""


def strickhof_run_config(folder: Path, stacks: Path, root: str, *, start: str = "2022-03-01",
                         end: str = "2022-07-31", variables: str = '["LAI"]', kind: str = "serial",
                         workers: int = 1, extra: str = "", fields: Path | None = None) -> Path:
    """``{folder}/{root}.toml``: the demo stacks → predict → analyze ``fields`` (default: the
    demo's 3 fields) into ``{folder}/{root}``."""
    from vercye_lai.demo import demo_fields

    fields = fields or demo_fields()
    text = STRICKHOF_RUN.format(root=folder / root, stacks=stacks, fields=fields, start=start,
                                end=end, variables=variables, kind=kind, workers=workers, extra=extra)
    return write_run_config(folder / f"{root}.toml", text)


def opts(**kw) -> dict:
    """Keywords of ``analyze``/``plan_analysis`` from one flat dict: ``resolution``,
    ``start``, ``end`` and ``progress`` as they are, the rest as one ``AnalysisOptions``."""
    from vercye_lai.analysis.options import AnalysisOptions

    direct = {k: kw.pop(k) for k in ("resolution", "start", "end", "progress") if k in kw}
    return direct | {"options": AnalysisOptions(**kw)}
