"""File names: the sensor token beside the Sentinel-2 names that keep working."""

from __future__ import annotations

import datetime as dt

import pytest

from vercye_lai.errors import InputError


def test_sensor_tokens_in_names(tmp_path):
    import datetime as dt

    from vercye_lai.naming import RasterName, find_observations, find_rasters, stack_name

    assert stack_name("R", 30, dt.date(2022, 6, 1), sensor="l30") == "R_30m_2022-06-01_L30.tif"
    assert stack_name("R", 20, dt.date(2022, 6, 1), sensor="s2") == "R_20m_2022-06-01.tif"
    p = RasterName.parse("R_30m_2022-06-01_L30_LAI_flags.tif")
    assert (p.sensor, p.suffix) == ("L30", "LAI_flags")
    assert RasterName.parse("R_30m_2022-06-01_L30.tif").product("LAI").name == "R_30m_2022-06-01_L30_LAI.tif"
    assert RasterName.parse("my_L8_site_20m_2022-06-01_LAI.tif").region == "my_L8_site"
    for name in ("R_20m_2022-06-01_LAI.tif", "R_30m_2022-06-01_L30_LAI.tif", "R_30m_2022-06-03_L8_LAI.tif",
                 "R_20m_2022-06-03_LAI.tif"):
        (tmp_path / name).touch()
    # Sentinel-2 names only, as before: the Landsat products are not S2 dates
    assert list(find_rasters(tmp_path, "R", 20, suffix="LAI")) == [dt.date(2022, 6, 1), dt.date(2022, 6, 3)]
    obs = find_observations(tmp_path, "R", 20, suffix="LAI", sensors=("s2", "l30", "l8"))
    assert [(d.day, s) for d, s in obs] == [(1, "S2"), (1, "L30"), (3, "S2"), (3, "L8")]
    (tmp_path / "R_10m_2022-06-05_L30_LAI.tif").touch()
    with pytest.raises(InputError, match="several resolutions"):
        find_observations(tmp_path, "R", 20, suffix="LAI", sensors=("l30",))


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")
    return folder


def test_region_and_resolution_are_inferred_from_the_files(tmp_path, caplog):
    import logging

    from vercye_lai.naming import infer_region_resolution

    lai = _touch(tmp_path / "lai", "strickhof_10m_2022-03-05_LAI.tif", "strickhof_10m_2022-03-08_LAI.tif",
                 "strickhof_30m_2022-03-06_L30_LAI.tif", "strickhof_10m_2022-03-05.tif", ".hidden_20m_2022-01-01_LAI.tif")
    with caplog.at_level(logging.INFO, logger="vercye_lai.naming"):
        assert infer_region_resolution(lai, suffix="LAI", extensions=(".tif",)) == ("strickhof", 10.0)
    assert "region strickhof (the only one there)" in caplog.text and "resolution 10 m" in caplog.text
    assert infer_region_resolution(lai, "strickhof", 20, suffix="LAI") == ("strickhof", 20.0)  # given: kept
    only_landsat = _touch(tmp_path / "l8", "r_30m_2022-03-06_L8.tif")
    assert infer_region_resolution(only_landsat) == ("r", 20.0)  # Landsat keeps its 30 m; S2 default


def test_a_choice_the_files_cannot_make_lists_the_candidates(tmp_path):
    from vercye_lai.errors import NoDataFoundError
    from vercye_lai.naming import infer_region_resolution

    two = _touch(tmp_path / "two", "a_20m_2022-03-05.tif", "b_20m_2022-03-05.tif", "b_20m_2022-03-06.vrt")
    with pytest.raises(InputError, match=r"several regions \(a_20m_\* \(1 date\), b_20m_\* \(2 dates\)\).*--region"):
        infer_region_resolution(two)
    res = _touch(tmp_path / "res", "a_20m_2022-03-05.tif", "a_10m_2022-03-05.tif")
    with pytest.raises(InputError, match=r"several resolutions .*--resolution"):
        infer_region_resolution(res)
    assert infer_region_resolution(res, resolution=10) == ("a", 10.0)
    with pytest.raises(NoDataFoundError, match="no '{region}_{res}m_<date>' files"):
        infer_region_resolution(_touch(tmp_path / "empty"))


def test_not_found_says_what_is_there(tmp_path):
    from vercye_lai.errors import NoDataFoundError
    from vercye_lai.naming import find_observations, find_rasters

    lai = _touch(tmp_path / "lai", *(f"strickhof_10m_2022-03-0{d}_LAI.tif" for d in range(1, 5)))
    with pytest.raises(NoDataFoundError, match=r"found strickhof_10m_\*_LAI \(4 dates\): use --resolution 10$"):
        find_rasters(lai, "strickhof", 20, suffix="LAI", extensions=(".tif",))
    with pytest.raises(NoDataFoundError, match=r"found strickhof_10m_\*_LAI \(4 dates\): use --region strickhof$"):
        find_observations(lai, "poltava", 10, suffix="LAI", extensions=(".tif",))
    # at the resolution asked for, the dates are what held none (it said: use --resolution 10)
    with pytest.raises(NoDataFoundError, match=r"between 2021-01-01 and 2021-02-01; found strickhof_10m_\*_LAI "
                       r"\(4 dates\): none in the date range \(they run 2022-03-01 to 2022-03-04\)$"):
        find_observations(lai, "strickhof", 10, suffix="LAI", extensions=(".tif",), start=dt.date(2021, 1, 1),
                          end=dt.date(2021, 2, 1))
