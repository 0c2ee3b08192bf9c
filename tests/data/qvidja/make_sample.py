"""Regenerate the Qvidja test stacks from ../shared/data/s2_l2a_field_qvidja_FI_2023.

Real Sentinel-2 L2A reflectances (Google Earth Engine source, ``test_gee_*.nc``) with the
per-date sun and view angles stored beside them, written in the input-stack contract
(``vercye_lai.stack.write_stack``): 20 m 11-band stacks for the default network and
10 m 7-band stacks for ``sl2p-10m``. Run: ``python tests/data/qvidja/make_sample.py``.
"""

from pathlib import Path

import numpy as np
from rasterio.transform import from_origin
from scipy.io import netcdf_file

from vercye_lai.stack import S2_BANDS_10M, S2_BANDS_20M, write_stack

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[2].parent / "shared" / "data" / "s2_l2a_field_qvidja_FI_2023"


def convert(nc_name: str, res: int, bands: tuple[str, ...]) -> None:
    with netcdf_file(SRC / nc_name, "r", mmap=False) as nc:
        v = nc.variables
        names = [b.decode() if isinstance(b, bytes) else str(b) for b in _strings(v["band"])]
        data = np.asarray(v["band_data"][:], dtype=np.float64)  # time, band, y, x
        x, y = np.asarray(v["x"][:]), np.asarray(v["y"][:])
        sza, saa = np.asarray(v["sun_zenith"][:]), np.asarray(v["sun_azimuth"][:])
        vza, vaa = np.asarray(v["view_zenith"][:]), np.asarray(v["view_azimuth"][:])
        days = np.asarray(v["time"][:])
        units = v["time"].units.decode()
    base = np.datetime64(units.split("since ")[1].strip().replace(" ", "T")[:19])
    step = {"nanoseconds": "ns", "seconds": "s", "days": "D", "hours": "h"}[units.split()[0]]
    dates = [str((base + np.timedelta64(int(t), step)).astype("datetime64[D]")) for t in days]
    transform = from_origin(x[0] - res / 2, y[0] + res / 2, res, res)
    for t, date in enumerate(dates):
        cos = {
            "cosVZA": np.cos(np.radians(vza[t])),
            "cosSZA": np.cos(np.radians(sza[t])),
            "cosRAA": np.cos(np.radians(saa[t] - vaa[t])),
        }
        layers = {b: data[t, names.index(b)] if b in names else None for b in bands if b not in cos}
        shape = data.shape[2:]
        stack = {b: np.full(shape, cos[b]) if b in cos else layers[b] for b in bands}
        write_stack(HERE / f"qvidja_{res}m_{date}.tif", stack, transform=transform, crs="EPSG:32634",
                    bands=bands, tags={"SOURCE": f"{nc_name} ({SRC.name})"})


def _strings(var) -> list:
    arr = var[:]
    if arr.dtype.kind == "S" and arr.ndim == 2:  # char array
        return [b"".join(row).strip() for row in arr]
    return list(arr)


if __name__ == "__main__":
    convert("test_gee_20m.nc", 20, S2_BANDS_20M)
    convert("test_gee_10m.nc", 10, S2_BANDS_10M)
