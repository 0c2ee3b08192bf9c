"""Angle grids of MTD_TL.xml, their interpolation, cosines and the solar position."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rasterio
from conftest import DATA
from rasterio.warp import transform as warp_transform

from vercye_lai.acquire.angles import (
    angle_cosines,
    cosines,
    interpolate_angles,
    mean_angles,
    parse_tile_angles,
    solar_position,
)
from vercye_lai.acquire.scl import DEFAULT_SCL_MASK, scl_invalid
from vercye_lai.errors import DataIOError, InputError

SAFE_NAME = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
TL_REL = "GRANULE/L2A_T29UNU_A038058_20221005T115407/MTD_TL.xml"


def real_tile_xml():
    return DATA / "safe_T29UNU" / SAFE_NAME / TL_REL  # bundled (the real product's metadata)


def _values(grid) -> str:
    return "".join(
        "<VALUES>" + " ".join("NaN" if np.isnan(v) else repr(float(v)) for v in row) + "</VALUES>"
        for row in np.asarray(grid, float)
    )


def _pair(tag_attrs: str, zen, az, step=5000) -> str:
    s = f"<COL_STEP unit='m'>{step}</COL_STEP><ROW_STEP unit='m'>{step}</ROW_STEP>"
    return (
        f"<{tag_attrs}><Zenith>{s}<Values_List>{_values(zen)}</Values_List></Zenith>"
        f"<Azimuth>{s}<Values_List>{_values(az)}</Values_List></Azimuth></{tag_attrs.split()[0]}>"
    )


def _mean_view(band: int, zen: float, az: float) -> str:
    return (
        f'<Mean_Viewing_Incidence_Angle bandId="{band}"><ZENITH_ANGLE>{zen}</ZENITH_ANGLE>'
        f"<AZIMUTH_ANGLE>{az}</AZIMUTH_ANGLE></Mean_Viewing_Incidence_Angle>"
    )


def make_tile_xml(
    sun_z, sun_a, views: dict[tuple[int, int], tuple], *, ulx=500000, uly=6000000
) -> str:
    """A minimal MTD_TL.xml: ``views`` maps (bandId, detectorId) → (zenith, azimuth) grids."""
    view_xml = "".join(
        _pair(f'Viewing_Incidence_Angles_Grids bandId="{b}" detectorId="{d}"', z, a)
        for (b, d), (z, a) in views.items()
    )
    return (
        '<n1:Level-2A_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/x.xsd">'
        "<n1:Geometric_Info><Tile_Geocoding><HORIZONTAL_CS_CODE>EPSG:32632</HORIZONTAL_CS_CODE>"
        f"<Geoposition resolution='10'><ULX>{ulx}</ULX><ULY>{uly}</ULY></Geoposition>"
        "</Tile_Geocoding>"
        f"<Tile_Angles>{_pair('Sun_Angles_Grid', sun_z, sun_a)}"
        "<Mean_Sun_Angle><ZENITH_ANGLE>40</ZENITH_ANGLE>"
        "<AZIMUTH_ANGLE>150</AZIMUTH_ANGLE></Mean_Sun_Angle>"
        f"{view_xml}"
        "<Mean_Viewing_Incidence_Angle_List>"
        f"{_mean_view(2, 4, 350)}{_mean_view(3, 6, 10)}"
        "</Mean_Viewing_Incidence_Angle_List>"
        "</Tile_Angles></n1:Geometric_Info></n1:Level-2A_Tile_ID>"
    )


NAN = np.nan
SUN_Z = np.array([[30.0, 31, 32], [33, 34, 35], [36, 37, 38]])
SUN_A = np.full((3, 3), 150.0)


def test_parse_combines_detectors_and_bands_with_nanmean():
    d1 = np.array([[2.0, 4, NAN], [2, 4, NAN], [2, 4, NAN]])
    d2 = np.array([[NAN, 6, 8], [NAN, 6, 8], [NAN, 6, 8]])
    az1 = np.array([[350.0, 350, NAN]] * 3)
    az2 = np.array([[NAN, 10, 10]] * 3)
    views = {
        (2, 1): (d1, az1),
        (2, 2): (d2, az2),
        (3, 1): (d1 + 2, az1),
        (3, 2): (d2 + 2, az2),
        (0, 1): (d1 + 50, az1),
    }  # B1 is not a stack band: ignored
    a = parse_tile_angles(make_tile_xml(SUN_Z, SUN_A, views))
    assert a.crs == rasterio.crs.CRS.from_epsg(32632)
    # pixel centres on grid points: (0, 0) centre is the tile corner
    assert rasterio.transform.xy(a.transform, 0, 0) == (500000, 6000000)
    np.testing.assert_allclose(a.sun_zenith, SUN_Z)
    # detector overlap (column 1) is the mean of both detectors, then mean of B3/B4
    np.testing.assert_allclose(a.view_zenith[0], [3.0, 6.0, 9.0])
    # 350° and 10° average to 0°, not 180°
    np.testing.assert_allclose((a.view_azimuth[0] + 180) % 360 - 180, [-10, 0, 10], atol=1e-9)


def test_parse_accepts_path_bytes_and_text(tmp_path):
    xml = make_tile_xml(SUN_Z, SUN_A, {(2, 1): (SUN_Z / 10, SUN_A)})
    p = tmp_path / "MTD_TL.xml"
    p.write_text(xml)
    for src in (p, str(p), xml.encode(), xml):
        np.testing.assert_allclose(parse_tile_angles(src).sun_zenith, SUN_Z)


def test_parse_errors(tmp_path):
    with pytest.raises(DataIOError, match="does not exist"):
        parse_tile_angles(tmp_path / "missing.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<a><b></a>")
    with pytest.raises(DataIOError, match="not valid XML") as e:
        parse_tile_angles(bad)
    assert str(bad) in str(e.value)
    with pytest.raises(InputError, match="Tile_Geocoding"):
        parse_tile_angles("<root/>")
    with pytest.raises(InputError, match="Viewing_Incidence"):
        parse_tile_angles(make_tile_xml(SUN_Z, SUN_A, {(0, 1): (SUN_Z, SUN_A)}))


def test_mean_angles_reads_the_xml_means():
    m = mean_angles(make_tile_xml(SUN_Z, SUN_A, {(2, 1): (SUN_Z, SUN_A)}))
    assert (m["sun_zenith"], m["sun_azimuth"]) == (40, 150)
    assert m["view_zenith"] == pytest.approx(5)
    assert (m["view_azimuth"] + 180) % 360 - 180 == pytest.approx(0, abs=1e-9)
    assert m["view_by_band"]["B3"] == (4, 350)


def test_interpolation_is_exact_at_grid_points_and_bilinear_between():
    a = parse_tile_angles(make_tile_xml(SUN_Z, SUN_A, {(2, 1): (SUN_Z / 10, SUN_A + 100)}))
    # output pixels of 2500 m centred on grid points and midpoints
    tr = rasterio.Affine(2500, 0, 500000 - 1250, 0, -2500, 6000000 + 1250)
    out = interpolate_angles(a, transform=tr, crs="EPSG:32632", shape=(5, 5))
    np.testing.assert_allclose(out["sun_zenith"][::2, ::2], SUN_Z, atol=1e-4)
    assert out["sun_zenith"][1, 1] == pytest.approx((30 + 31 + 33 + 34) / 4, abs=1e-4)
    np.testing.assert_allclose(out["sun_azimuth"], 150, atol=1e-4)
    np.testing.assert_allclose(out["view_azimuth"], 250, atol=1e-4)
    # beyond the grid: nearest value (constant extrapolation)
    far = interpolate_angles(
        a, transform=rasterio.Affine(10, 0, 400000, 0, -10, 6100000), crs="EPSG:32632", shape=(1, 1)
    )
    assert far["sun_zenith"][0, 0] == pytest.approx(30, abs=1e-4)


def test_nan_grid_points_take_the_nearest_value():
    vz = np.array([[NAN, 5, 6], [NAN, 5, 6], [NAN, 5, 6]])
    a = parse_tile_angles(make_tile_xml(SUN_Z, SUN_A, {(2, 1): (vz, SUN_A)}))
    tr = rasterio.Affine(5000, 0, 500000 - 2500, 0, -5000, 6000000 + 2500)
    out = interpolate_angles(a, transform=tr, crs="EPSG:32632", shape=(3, 3))
    np.testing.assert_allclose(out["view_zenith"][:, 0], 5, atol=1e-5)


def test_general_path_matches_separable_path():
    """Output in another CRS goes through RegularGridInterpolator: same values."""
    a = parse_tile_angles(make_tile_xml(SUN_Z, SUN_A, {(2, 1): (SUN_Z / 10, SUN_A)}))
    tr = rasterio.Affine(1000, 0, 501000, 0, -1000, 5999000)
    utm = interpolate_angles(a, transform=tr, crs="EPSG:32632", shape=(7, 7))
    # the same pixel centres written as a 1-pixel-wide strip in EPSG:3857 per pixel
    xs, ys = rasterio.transform.xy(tr, np.full(7, 3), np.arange(7))
    mx, my = warp_transform("EPSG:32632", "EPSG:3857", xs, ys)
    for x, y, want in zip(mx, my, utm["sun_zenith"][3], strict=True):
        o = interpolate_angles(
            a,
            transform=rasterio.Affine(1, 0, x - 0.5, 0, -1, y + 0.5),
            crs="EPSG:3857",
            shape=(1, 1),
        )
        assert o["sun_zenith"][0, 0] == pytest.approx(want, abs=1e-3)


def test_cosines():
    c = cosines(60.0, 170.0, 0.0, 110.0)
    assert c["cosSZA"] == pytest.approx(0.5, abs=1e-6)
    assert c["cosVZA"] == pytest.approx(1.0)
    assert c["cosRAA"] == pytest.approx(0.5, abs=1e-6)


def test_angle_cosines_on_real_tile_match_xml_means():
    xml = real_tile_xml()
    a = parse_tile_angles(xml)
    m = mean_angles(xml)
    tr = rasterio.Affine(600, 0, 499980, 0, -600, 5900040)
    out = interpolate_angles(a, transform=tr, crs="EPSG:32629", shape=(183, 183))
    # sun: grid is complete, the tile mean matches within a hundredth of a degree
    assert out["sun_zenith"].mean() == pytest.approx(m["sun_zenith"], abs=0.01)
    assert out["sun_azimuth"].mean() == pytest.approx(m["sun_azimuth"], abs=0.01)
    # view: compare where the swath has data (grid points not NaN): within 0.1°
    valid = np.isfinite(a.view_zenith)
    assert np.nanmean(a.view_zenith) == pytest.approx(m["view_zenith"], abs=0.1)
    c = angle_cosines(a, transform=tr, crs="EPSG:32629", shape=(183, 183))
    assert set(c) == {"cosVZA", "cosSZA", "cosRAA"} and c["cosSZA"].dtype == np.float32
    assert valid.sum() > 200


def test_solar_position_matches_sentinel2_sun_grid():
    """NOAA equations vs the 529 sun-grid points of the real tile at its sensing time."""
    xml = real_tile_xml()
    a = parse_tile_angles(xml)
    rows, cols = np.indices(a.sun_zenith.shape)
    x, y = rasterio.transform.xy(a.transform, rows.ravel(), cols.ravel())
    lon, lat = warp_transform(a.crs, "EPSG:4326", x, y)
    when = dt.datetime(2022, 10, 5, 11, 56, 49, 581767, tzinfo=dt.UTC)
    zen, az = solar_position(when, np.array(lon), np.array(lat))
    dz = np.abs(zen - a.sun_zenith.ravel())
    da = np.abs(az - a.sun_azimuth.ravel())
    assert dz.max() < 0.05 and da.max() < 0.1, (dz.max(), da.max())


def test_solar_position_textbook_values():
    # Spring equinox at local solar noon on the equator: sun near the zenith
    z, _ = solar_position(dt.datetime(2024, 3, 20, 12, 7, tzinfo=dt.UTC), 0.0, 0.0)
    assert z < 0.5
    # June solstice noon at 47.5°N, 8.7°E: zenith ≈ 47.5 − 23.44 = 24.1°, azimuth ≈ 180°
    z, az = solar_position(dt.datetime(2022, 6, 21, 11, 27, tzinfo=dt.UTC), 8.7, 47.5)
    assert z == pytest.approx(24.06, abs=0.1) and az == pytest.approx(180, abs=2)
    # morning sun is in the east, afternoon sun in the west
    _, am = solar_position(dt.datetime(2022, 6, 21, 6, 0, tzinfo=dt.UTC), 8.7, 47.5)
    _, pm = solar_position(dt.datetime(2022, 6, 21, 16, 0, tzinfo=dt.UTC), 8.7, 47.5)
    assert 45 < am < 135 and 225 < pm < 315
    with pytest.raises(InputError, match="time zone"):
        solar_position(dt.datetime(2022, 6, 21), 0, 0)


def test_scl_invalid():
    scl = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert DEFAULT_SCL_MASK == (0, 1, 3, 8, 9, 10, 11)
    np.testing.assert_array_equal(np.flatnonzero(scl_invalid(scl)), [0, 1, 3, 8, 9, 10, 11])
    assert scl_invalid(np.array([3.2, 4.0, np.nan, 1e20, 12])).tolist() == [
        True,
        False,
        True,
        True,
        True,
    ]
    assert scl_invalid(np.array([255, 4], np.uint8)).tolist() == [True, False]
    assert not scl_invalid(scl, classes=()).any()
    # --scl-mask: comma-separated classes 0-11 ('' masks none), checked by the source options
    import click

    from vercye_lai.acquire.safe import Options as SafeOptions
    from vercye_lai.cli.options import SeparatedType

    classes = SeparatedType(int, ",")
    assert classes.convert("0, 3,9", None, None) == (0, 3, 9) and classes.convert("", None, None) == ()
    with pytest.raises(click.BadParameter):
        classes.convert("3,x", None, None)
    with pytest.raises(InputError):
        SafeOptions(safes=(), scl_mask=(12,))
