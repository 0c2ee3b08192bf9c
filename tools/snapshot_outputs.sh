#!/usr/bin/env bash
# Write the outputs of the demo, `run` (threads and Dask), `predict` and `analyze` (all three
# modes) into OUT, then a sorted list of their checksums into OUT/SHA256SUMS. Used to prove a
# refactoring changes no output: run it before and after, then `diff before/SHA256SUMS after/SHA256SUMS`.
# run_summary.json and run.log are left out (timings differ by nature); MANIFEST.json is hashed
# with its modification times and the snapshot folder replaced by placeholders (they differ between
# any two runs), so that its options, inputs and outputs are still compared.
set -euo pipefail
OUT=$(realpath -m "${1:?usage: tools/snapshot_outputs.sh OUT}")
rm -rf "$OUT"; mkdir -p "$OUT"
cd "$OUT"
vercye-lai -q demo --out demo
FIELDS=$(python -c "from vercye_lai.run.demo import demo_fields; print(demo_fields())")
# predict, LAI + FAPAR with flags, plain GeoTIFF and COG
vercye-lai -q predict demo/stacks predict_cog --region strickhof --resolution 10 --variable LAI --variable FAPAR
vercye-lai -q predict demo/stacks predict_plain --region strickhof --resolution 10 --no-cog --model snap-3.0-s2a
# analyze, three modes
vercye-lai -q analyze demo/lai an_iter strickhof "$FIELDS" --resolution 10 --adjustment wheat --id-column name
vercye-lai -q analyze demo/lai an_agg strickhof "$FIELDS" --resolution 10 --mode poly_agg --smooth savgol \
    --interpolation linear --date-format dmy --max-cloud-percent 80
python - "$FIELDS" <<'PY'
import sys, numpy as np, rasterio, geopandas as gpd
from rasterio.features import rasterize
src = sorted(__import__("glob").glob("demo/lai/*_LAI.tif"))[0]
with rasterio.open(src) as ds:
    g = gpd.read_file(sys.argv[1]).to_crs(ds.crs)
    m = rasterize(((geom, 1) for geom in g.geometry), out_shape=ds.shape, transform=ds.transform, dtype="uint8")
    p = ds.profile | dict(driver="GTiff", dtype="uint8", count=1, nodata=0, compress="deflate")
    with rasterio.open("cropmask.tif", "w", **p) as dst:
        dst.write(m, 1)
PY
vercye-lai -q analyze demo/lai an_raster strickhof cropmask.tif --resolution 10 --mode raster --adjustment maize
for ex in threads dask; do
cat > run_$ex.toml <<TOML
output_root = "run_$ex"
resolution = 10
[[regions]]
name = "strickhof"
geometry = "$FIELDS"
start_date = 2022-03-01
end_date = 2022-07-31
[source]
kind = "local"
path = "demo/stacks"
[predict]
variables = ["LAI", "FCOVER"]
[[analyses]]
name = "fields"
geometry = "$FIELDS"
mode = "poly_iter"
adjustment = "wheat"
id_column = "name"
[[analyses]]
name = "mask"
geometry = "cropmask.tif"
mode = "raster"
[executor]
kind = "$ex"
workers = 2
[dask]
n_workers = 2
TOML
vercye-lai -q run run_$ex.toml
done
for m in $(find . -name MANIFEST.json); do
    sed -E "s/[0-9]{15,}/MTIME/g; s#$OUT#ROOT#g" "$m" > "$m.normalised" && rm "$m"
done
find . -type f ! -name 'run_summary.json' ! -name 'run.log' ! -name '*.toml' ! -name SHA256SUMS -print0 | sort -z \
    | xargs -0 sha256sum > SHA256SUMS
wc -l SHA256SUMS
