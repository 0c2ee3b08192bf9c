"""Make insitu_177.csv from ../shared/data (see NOTICE.md): the 177 rows of Graf et al.'s
in-situ table that hold an in-situ green LAI, with the columns predict-table and calibrate
read, and each site's position (the mean of its 2022 in-situ points)."""

from pathlib import Path

import geopandas as gpd
import pandas as pd

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[2].parent / "shared" / "data" / "s2_l2a_timeseries_strickhof_CH_2022" / "insitu"

df = pd.read_csv(SRC / "inv_res_joined_with_insitu_lai.csv")
df = df[df["lai"].notna()]
points = gpd.read_file(SRC / "in-situ_glai_2022.gpkg").to_crs(4326)
lon = points.groupby("location").geometry.apply(lambda g: g.x.mean())
lat = points.groupby("location").geometry.apply(lambda g: g.y.mean())
out = df[["scene_id", "location", "parcel", "date_insitu", "lai", "gdd_cumsum", "SCL",
          "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12"]].copy()
out.insert(2, "lon", out["location"].map(lon).round(5))
out.insert(3, "lat", out["location"].map(lat).round(5))
out.to_csv(HERE / "insitu_177.csv", index=False, float_format="%.6g")
print(len(out), "rows")
