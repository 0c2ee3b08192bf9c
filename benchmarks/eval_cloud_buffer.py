"""What ``--cloud-buffer`` does to a real season, measured rather than assumed.

The bundled Strickhof 2022 demo (3 winter-wheat fields, 34 Sentinel-2 dates of EOdal
surface reflectance with an SCL band, SL2P at 10 m, each field alone with the wheat
adjustment) is run once per buffer (0, 1, 2, 3 pixels of the 10 m grid around SCL classes
3, 8, 9 and 10). Per buffer:

- field-level agreement of the daily field means with the destructive in-situ green LAI
  (n, RMSE, bias, r; the demo's pairing);
- the outlier-rejection rate: observations (field-dates with clear pixels) that the
  analysis's outlier test (``--outliers dips``, the cloud-dip test) rejects: the dips
  that cloud edges left;
- the valid share: clear field pixels over all field pixels of the dates with an image;
- field-dates with an observation at all.

    python benchmarks/eval_cloud_buffer.py              # buffers 0 1 2 3
    python benchmarks/eval_cloud_buffer.py 0 2 5
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from vercye_lai.analysis.manifest import zone_csvs
from vercye_lai.insitu.agreement import Agreement
from vercye_lai.insitu.validate import ValidateOptions, match_series, read_insitu
from vercye_lai.run import run_pipeline
from vercye_lai.run.demo import demo_config, demo_insitu


def season(out: Path, buffer: int) -> dict[str, float]:
    """Run the demo with ``buffer`` and measure it."""
    cfg = demo_config(out, workers=2)
    source = cfg.sources[0]
    fields = cfg.analyses[0]
    cfg = dataclasses.replace(
        cfg, sources=(dataclasses.replace(source, options=dataclasses.replace(source.options, cloud_buffer=buffer)),),
        analyses=(dataclasses.replace(fields, options=dataclasses.replace(fields.options, outliers="dips")),))
    if not run_pipeline(cfg, write_summary=False).ok:
        raise SystemExit(f"the demo failed with --cloud-buffer {buffer}")
    frames = [pd.read_csv(csv) for csv in zone_csvs(out / "analysis").values()]
    dates = pd.concat([f[f["Cloud or Snow Percentage"].notna()] for f in frames])  # the dates with an image
    # observed: pixels aggregated, or an observation the outlier test rejected (its n_pixels is 0)
    observed = dates[(dates["n_pixels"] > 0) | (dates["outlier"] == 1)]
    vo = ValidateOptions(zone_column="parcel")
    # the demo's pairing: field means of the days measured
    pairs = match_series(read_insitu(demo_insitu(), vo, points=False), out / "analysis", options=vo)
    a = Agreement.of(pairs["LAI Mean"].to_numpy(), pairs["insitu"].to_numpy())
    return {"n": a.n, "rmse": a.rmse, "bias": a.bias, "r": a.r,
            "rejected": float((observed["outlier"] == 1).mean()),
            "valid": float(np.mean(1 - dates["Cloud or Snow Percentage"] / 100)),
            "observed": len(observed), "dates": len(dates)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("buffers", nargs="*", type=int, default=[0, 1, 2, 3])
    args = parser.parse_args(argv)
    print("Strickhof 2022 (SL2P, 10 m, 3 wheat fields): field means against in-situ green LAI")
    print("| --cloud-buffer | n | RMSE | bias | r | outliers rejected | valid share | field-dates observed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for px in args.buffers:
            m = season(Path(tmp) / f"buffer{px}", px)
            print(f"| {px} px ({10 * px} m) | {m['n']} | {m['rmse']:.3f} | {m['bias']:+.3f} | {m['r']:.3f} | "
                  f"{100 * m['rejected']:.1f}% | {100 * m['valid']:.1f}% | {m['observed']}/{m['dates']} |")


if __name__ == "__main__":
    main()
