"""An analysis split into parts (chunks of zones × chunks of dates, as ``vercye-lai run``
spreads it over threads or Dask workers) writes exactly the files of one ``analyze`` call."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import rasterio
from conftest import DATA, ORIGIN, assert_same_outputs, opts, pixel_box
from rasterio.transform import from_origin

from vercye_lai.analysis import analyze
from vercye_lai.analysis.finish import finish_analysis
from vercye_lai.analysis.plan import plan_analysis
from vercye_lai.analysis.season import SeasonPart, analyze_part
from vercye_lai.errors import DataIOError

LAI = DATA / "strickhof" / "lai"
FIELDS = DATA / "strickhof" / "fields.geojson"
STRICKHOF = dict(resolution=10, mode="poly_iter", adjustment="wheat", id_column="name",
                 max_cloud_percent=60)


def split_run(tmp_path, lai_dir, region, geometry, *, zones_per_part, days_per_part, **kw):
    """The analysis as parts saved to .npz files and loaded back, like a run's part tasks,
    from the plan as a Dask worker receives it (pickled: the geometry is read again)."""
    plan = plan_analysis(lai_dir, tmp_path / "split", region, geometry, **opts(**kw))
    assert plan.built is not None
    plan = pickle.loads(pickle.dumps(plan))
    assert plan.built is None
    paths = []
    for i, zones in enumerate(plan.zone_chunks(zones_per_part)):
        for j, days in enumerate(plan.day_chunks(days_per_part)):
            part = analyze_part(plan, zones, days)
            paths.append(part.save(tmp_path / "parts" / f"p{i}_{j}.npz"))
    return plan, finish_analysis(plan, [SeasonPart.load(p) for p in paths])


@pytest.mark.parametrize("zones_per_part, days_per_part", [  # the quick loop keeps one split
    pytest.param(1, 5, marks=pytest.mark.slow), (2, 12), pytest.param(None, 1, marks=pytest.mark.slow)])
def test_parts_equal_one_analysis_on_real_fields(tmp_path, zones_per_part, days_per_part):
    whole = analyze(LAI, tmp_path / "whole", "strickhof", FIELDS, **opts(**STRICKHOF))
    plan, split = split_run(tmp_path, LAI, "strickhof", FIELDS, zones_per_part=zones_per_part,
                            days_per_part=days_per_part, **STRICKHOF)
    assert len(plan.zone_chunks(zones_per_part)) == (3 if zones_per_part == 1 else
                                                     2 if zones_per_part == 2 else 1)
    assert [z.name for z in split.zones] == [z.name for z in whole.zones]
    assert (split.n_files, split.n_overlapping) == (whole.n_files, whole.n_overlapping) == (34, 34)
    assert assert_same_outputs(tmp_path / "whole", tmp_path / "split") == 6


def test_parts_equal_one_analysis_on_shifted_lattices(tmp_path, lai_writer, polygon_writer):
    """Dates on a lattice shifted by half a pixel are resampled onto the reference grid for
    the max map; chunks of fields give the same maps as all fields at once."""
    rng = np.random.default_rng(3)
    for d in ("2022-06-01", "2022-06-04", "2022-06-09"):
        lai_writer(d, rng.uniform(0, 6, (40, 50)))
    x0, y0 = ORIGIN
    for d in ("2022-06-02", "2022-06-06"):
        lai_writer(d, rng.uniform(0, 6, (41, 51)), transform=from_origin(x0 - 5, y0 + 5, 10, 10))
    fields = [pixel_box(c, r, c + 4, r + 3) for c, r in ((2, 2), (10, 5), (30, 20), (44, 33))]
    g = polygon_writer("f.geojson", fields, FID=[1, 2, 3, 4])
    kw = dict(resolution=10, mode="poly_iter", adjustment="maize")
    analyze(tmp_path / "lai", tmp_path / "whole", "R", g, **opts(**kw))
    split_run(tmp_path, tmp_path / "lai", "R", g, zones_per_part=1, days_per_part=2, **kw)
    assert assert_same_outputs(tmp_path / "whole", tmp_path / "split") == 8


def test_crop_mask_split_by_dates(tmp_path, lai_writer, raster_writer):
    rng = np.random.default_rng(4)
    for d in ("2022-05-01", "2022-05-03", "2022-05-08", "2022-05-09"):
        data = rng.uniform(-0.5, 5, (30, 30)).astype(np.float32)
        data[rng.random((30, 30)) < 0.2] = np.nan
        lai_writer(d, data)
    mask = raster_writer("mask.tif", (rng.random((60, 60)) < 0.5).astype(np.uint8),
                         transform=from_origin(ORIGIN[0], ORIGIN[1], 5, 5))
    kw = dict(resolution=10, mode="raster", interpolation="makima")
    analyze(tmp_path / "lai", tmp_path / "whole", "R", mask, **opts(**kw))
    split_run(tmp_path, tmp_path / "lai", "R", mask, zones_per_part=None, days_per_part=1, **kw)
    assert assert_same_outputs(tmp_path / "whole", tmp_path / "split") == 2


def test_missing_part_writes_nothing(tmp_path):
    plan = plan_analysis(LAI, tmp_path / "out", "strickhof", FIELDS, **opts(**STRICKHOF))
    days = plan.day_chunks(10)
    parts = [analyze_part(plan, z, d) for z in plan.zone_chunks(1) for d in days[:-1]]
    with pytest.raises(DataIOError, match="miss 4 date"):
        finish_analysis(plan, parts)
    with pytest.raises(DataIOError, match="do not cover each"):
        finish_analysis(plan, [analyze_part(plan, (0, 1))])
    assert not (tmp_path / "out").exists()


def test_zone_chunks_are_spatially_compact(tmp_path, polygon_writer, lai_writer):
    """Chunks follow a space-filling curve: 64 fields on an 8 × 8 lattice in 4 chunks of 16
    give 4 quadrant-sized windows, not 4 windows spanning the whole region."""
    lai_writer("2022-06-01", np.ones((80, 80), np.float32))
    order = np.random.default_rng(5).permutation(64)  # feature order unrelated to position
    fields = [pixel_box(10 * (k % 8) + 1, 10 * (k // 8) + 1, 10 * (k % 8) + 8, 10 * (k // 8) + 8)
              for k in order]
    g = polygon_writer("grid.geojson", fields, FID=list(range(64)))
    plan = plan_analysis(tmp_path / "lai", tmp_path / "out", "R", g, resolution=10)
    with rasterio.open(plan.reference) as ds:
        from vercye_lai.analysis.plan import plan_zones

        sizes = [plan_zones(plan, c).on(ds).window for c in plan.zone_chunks(16)]
    assert sorted((w.width, w.height) for w in sizes) == [(37, 37)] * 4
