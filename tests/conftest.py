"""Shared test helpers: tiny GeoTIFFs with known values written into tmp_path."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds, transform_geom
from shapely.geometry import box, shape

from vercye_lai.acquire import stac
from vercye_lai.cli.main import cli

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHARED = REPO.parent / "shared" / "data"  # present in CI (shared/ beside the clone)


def shared_data(*parts: str, pattern: str | None = None) -> Path:
    """A file or folder under ``../shared/data`` (the first match of ``pattern`` inside it, if
    given). Missing: the test is skipped on a developer's machine, and fails under ``CI=true``,
    where the data folder is always laid beside the clone."""
    path = SHARED.joinpath(*parts)
    found = sorted(path.glob(pattern)) if pattern and path.is_dir() else []
    if path.exists() and (pattern is None or found):
        return found[0] if pattern else path
    what = f"{path / pattern if pattern else path} is missing (../shared/data beside the clone)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}: CI must have it", pytrace=False)
    pytest.skip(what)


@pytest.fixture
def shared_safe() -> Path:
    """The real Sentinel-2 L2A product of ../shared/data (Ireland, T29UNU, 2022-10-05)."""
    return shared_data("s2_l2a_safe_ireland_T29UNU_20221005", pattern="*.SAFE")


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
    from vercye_lai.run import run_pipeline
    from vercye_lai.run.demo import demo_config

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
    from vercye_lai.run.demo import demo_fields

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


# ------------------------------------------------------------------ the CLI and the Qvidja stacks


def run_cli(*args):
    """``vercye-lai ARGS`` in-process (exceptions raised, not caught)."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def copy_qvidja(dst: Path, res=20) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in QVIDJA.glob(f"qvidja_{res}m_*.tif"):
        shutil.copy(f, dst / f.name)
    return dst


QVIDJA = DATA / "qvidja"
AOI = QVIDJA / "qvidja_ec_field_aoi.geojson"

QVIDJA_RUN = """
output_root = "out"
resolution = 20
[[regions]]
name = "qvidja"
start_date = 2023-06-09
end_date = 2023-06-14
[source]
kind = "local"
path = "{stacks}"
[[analyses]]
name = "field"
geometry = "{aoi}"
mode = "poly_agg"
quicklook = QUICKLOOK
[executor]
kind = "serial"
"""


def qvidja_config(tmp_path: Path, *, quicklook: bool = False, extra: str = "") -> Path:
    stacks = tmp_path / "stacks"
    if not stacks.exists():
        stacks.mkdir(parents=True)
        for f in QVIDJA.glob("qvidja_20m_*.tif"):
            shutil.copy2(f, stacks / f.name)
    text = QVIDJA_RUN.replace("{stacks}", str(stacks)).replace("{aoi}", str(AOI))
    text = text.replace("QUICKLOOK", "true" if quicklook else "false") + extra
    return write_run_config(tmp_path / "run.toml", text)


# ------------------------------------------------------------------ a static STAC catalogue of the
# real L2A product in ../shared/data (its 60 m bands, SCL and MTD_TL.xml as the assets)

UTM = "EPSG:32629"
# 12 km x 12 km in the tile (EPSG:32629), on the 60 m grid of the tile
REGION_UTM = box(502020, 5886000, 514020, 5898000)  # mostly clear on this cloudy day
SENSING = dt.datetime(2022, 10, 5, 11, 54, 11, tzinfo=dt.UTC)
# file-name band codes of the SAFE are the Planetary Computer asset keys
FILES = {b: k for b, k in stac.ASSET_KEYS["planetary-computer"].items() if b != "granule"}


def granule() -> Path:
    return next((shared_data("s2_l2a_safe_ireland_T29UNU_20221005", pattern="*.SAFE") / "GRANULE").iterdir())


def jp2(band: str) -> Path:
    return next((granule() / "IMG_DATA" / "R60m").glob(f"*_{FILES[band]}_60m.jp2"))


def region_4326():
    return shape(transform_geom(UTM, "EPSG:4326", REGION_UTM.__geo_interface__))


def make_item(
    item_id,
    *,
    flavour="earth-search",
    with_granule=True,
    when=SENSING,
    props=None,
    raster_bands=None,
    hrefs=None,
):
    with rasterio.open(jp2("B3")) as ds:
        bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    item = pystac.Item(
        id=item_id,
        geometry=box(*bounds).__geo_interface__,
        bbox=list(bounds),
        datetime=when,
        properties={"eo:cloud_cover": 20.0, "s2:processing_baseline": "04.00", **(props or {})},
    )
    keys = stac.ASSET_KEYS[flavour]
    for band in FILES:
        extra = {"raster:bands": [raster_bands]} if raster_bands and band != "SCL" else {}
        href = (hrefs or {}).get(band, str(jp2(band)))
        item.add_asset(
            keys[band], pystac.Asset(href=href, media_type="image/jp2", extra_fields=extra)
        )
    if with_granule:
        item.add_asset(
            keys["granule"],
            pystac.Asset(href=str(granule() / "MTD_TL.xml"), media_type="application/xml"),
        )
    return item


def make_catalog(root: Path, items) -> Path:
    cat = pystac.Catalog(id="test", description="static catalogue built from ../shared/data")
    extent = pystac.Extent(
        pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[SENSING, None]])
    )
    coll = pystac.Collection(id="sentinel-2-l2a", description="S2 L2A", extent=extent)
    other = pystac.Collection(id="landsat-c2-l2", description="other", extent=extent)
    cat.add_child(coll)
    cat.add_child(other)
    for it in items:
        coll.add_item(it)
    other.add_item(make_item("not-sentinel"))
    cat.normalize_hrefs(str(root))
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


