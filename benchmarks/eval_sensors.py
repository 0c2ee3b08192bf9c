"""Cross-sensor agreement of LAI on real pixels, by ``predict-table``.

``tests/data/kansas_hls/``: Earth Engine extractions of 7 neighbouring 30 m pixels at NEON UKFS,
Kansas, 2018–2023 — HLS L30 v2.0, Landsat 8 C2 L2 and Sentinel-2 L2A (2 of the pixels). The
files' ``cosRAA`` is wrong in the HLS and Landsat rows, so it is computed from ``SAA``/``VAA``
(the Landsat rows take the angles of the HLS row of the same pixel and day: HLS L30 is made
from the same Landsat 8 scene).

1. HLS L30 with ``sl2p-l8`` against Sentinel-2 with ``sl2p`` (20 m): each Sentinel-2 pixel
   with the nearest HLS pixel (~21 m apart), calendar dates within ±2 days, clear in both
   (HLS Fmask cloud, adjacent, shadow, snow bits 0; SCL 4 or 5).
2. Landsat 8 C2 L2 with ``sl2p-l8`` against HLS L30 with ``sl2p-l8``: the nearest pixel (HLS
   is resampled from the Landsat WRS grid to the MGRS grid, so no pixel is the same) on the
   same day, clear in both (``QA_PIXEL`` bit 6 set).

    python benchmarks/eval_sensors.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from vercye_lai.cli.main import cli

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "kansas_hls"


def vercye(*args) -> None:
    r = CliRunner().invoke(cli, ["-q", *map(str, args)])
    if r.exit_code:
        raise SystemExit(f"vercye-lai {' '.join(map(str, args))} failed:\n{r.output}")


def read(name: str) -> pd.DataFrame:
    df = pd.read_csv(DATA / f"Surface_refelctance_{name}.csv", index_col=0)
    df["day"] = pd.to_datetime(df["date"], unit="ms", utc=True).dt.normalize()
    return df


def nearest(df: pd.DataFrame, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest of ``pixels`` (lon, lat) for each row, and its distance (m)."""
    kx = np.cos(np.radians(39.04)) * 111320.0
    d = np.hypot((df["longitude"].to_numpy()[:, None] - pixels[None, :, 0]) * kx,
                 (df["latitude"].to_numpy()[:, None] - pixels[None, :, 1]) * 110950.0)
    return d.argmin(axis=1), d.min(axis=1)


def agreement(a: pd.Series, b: pd.Series) -> str:
    d = a - b
    return f"n {len(d)}, RMSE {np.sqrt(np.mean(d**2)):.3f}, bias {d.mean():+.3f}, r {np.corrcoef(a, b)[0, 1]:.3f}"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        hls = read("HLSL30_v002").drop(columns=["cosRAA"])  # from SAA/VAA instead
        hls.drop(columns=["day"]).to_csv(t / "hls.csv")
        vercye("predict-table", t / "hls.csv", t / "hls_lai.csv", "--model", "sl2p-l8")
        hls = hls.assign(LAI=pd.read_csv(t / "hls_lai.csv")["LAI"].to_numpy())
        pixels = hls[["longitude", "latitude"]].drop_duplicates().to_numpy()
        hls["pixel"] = nearest(hls, pixels)[0]

        s2 = read("S2_L2A")
        s2.drop(columns=["day"]).to_csv(t / "s2.csv")
        vercye("predict-table", t / "s2.csv", t / "s2_lai.csv", "--model", "sl2p")
        s2 = s2.assign(LAI=pd.read_csv(t / "s2_lai.csv")["LAI"].to_numpy())
        s2["pixel"], dist = nearest(s2, pixels)
        m = s2.merge(hls, on="pixel", suffixes=("_s2", "_hls"))
        m = m[((m["day_s2"] - m["day_hls"]).dt.days.abs() <= 2) & m["SCL"].isin([4, 5])
              & ((m["Fmask"].astype(int) & 0b11110) == 0)]
        print(f"1. HLS L30 (sl2p-l8) vs Sentinel-2 (sl2p), pixels {dist.max():.0f} m apart, ±2 days: "
              f"{agreement(m['LAI_hls'], m['LAI_s2'])}")

        l8 = read("LC08_T1_L2").drop(columns=["cosRAA", "cosVZA", "cosSZA"])
        l8["pixel"], dist = nearest(l8, pixels)
        l8 = l8.merge(hls[["pixel", "day", "SZA", "SAA", "VZA", "VAA", "Fmask", "LAI"]],
                      on=["pixel", "day"], suffixes=("", "_hls"))
        qa = l8["QA_PIXEL"].to_numpy(int)
        l8 = l8[(np.right_shift(qa, 6) & 1 == 1) & ((l8["Fmask"].to_numpy(int) & 0b11110) == 0)]
        l8.drop(columns=["day", "LAI", "Fmask", "SR_B1", "SR_B2"]).to_csv(t / "l8.csv")
        vercye("predict-table", t / "l8.csv", t / "l8_lai.csv", "--model", "sl2p-l8")
        lai = pd.read_csv(t / "l8_lai.csv")["LAI"].to_numpy()
        print(f"2. Landsat 8 C2 L2 (sl2p-l8) vs HLS L30 (sl2p-l8), nearest pixel ({dist.max():.0f} m: HLS "
              "is resampled to the MGRS grid), same day: "
              f"{agreement(pd.Series(lai), l8['LAI'].reset_index(drop=True))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
