"""File names: the sensor token beside the Sentinel-2 names that keep working."""

from __future__ import annotations

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
