"""How well the outlier test (``analyze --outliers``) does, measured rather than assumed.

Two measurements, in one run:

1. **Real season, against in-situ LAI.** The bundled Strickhof 2022 demo (3 winter-wheat
   fields, SL2P on 34 Sentinel-2 dates) is run once; its LAI rasters are then analysed
   with every ``--outliers`` choice and the daily field means are paired with the
   destructive in-situ green LAI, as the demo does (n, RMSE, bias, r). The observations
   each choice rejects are listed.
2. **Synthetic seasons with known dips.** Double-logistic seasons (peak LAI 2–6, a 5-day
   revisit with 40 % of overpasses lost to cloud, noise σ 0.15, half of them harvested:
   a step to bare soil after the peak) get cloud dips injected (one or two consecutive
   observations × 0.2–0.7) in 40 % of the series. Counted: dips caught (every observation
   of the run rejected) — all of them, and those at least 0.5 LAI below both neighbours
   (a shallower dip at low LAI is within the noise, and changes little) — and clean
   observations wrongly rejected, for the shipped test and nearby thresholds.

    python benchmarks/eval_outliers.py            # 4000 synthetic seasons
    python benchmarks/eval_outliers.py --quick    # 500
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def real_season(out: Path) -> None:
    import pandas as pd

    from vercye_lai.analysis import analyze
    from vercye_lai.analysis.options import AnalysisOptions
    from vercye_lai.analysis.timeseries import OUTLIERS
    from vercye_lai.insitu.agreement import Agreement
    from vercye_lai.insitu.validate import ValidateOptions, match_series, read_insitu
    from vercye_lai.run.demo import DEMO_REGION, DEMO_RESOLUTION, demo_fields, demo_insitu, run_demo

    demo = run_demo(out / "demo")
    lai = demo.out_dir / "lai"
    print("1. Strickhof 2022 (SL2P, 10 m, 3 fields) against destructive in-situ green LAI")
    print("| --outliers | column | n | RMSE | bias | r | rejected observations |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind in OUTLIERS:
        res = analyze(lai, out / kind, DEMO_REGION, demo_fields(), resolution=DEMO_RESOLUTION,
                      options=AnalysisOptions(mode="poly_iter", adjustment="wheat", id_column="name",
                                              outliers=kind))
        csvs = {z.name: z.csv for z in res.zones}
        vo = ValidateOptions(zone_column="parcel")
        pairs = match_series(read_insitu(demo_insitu(), vo, points=False), out / kind, options=vo)
        rejected = []
        for name, csv in csvs.items():
            df = pd.read_csv(csv)
            rejected += [f"{name} {d} ({v:.2f})" for d, v in
                         zip(df.loc[df.outlier == 1, "Date"], df.loc[df.outlier == 1, "LAI Mean Rejected"])]
        for col in ("LAI Mean", "LAI Mean Adjusted"):
            a = Agreement.of(pairs[col].to_numpy(), pairs["insitu"].to_numpy())
            print(f"| {kind} | {col} | {a.n} | {a.rmse:.3f} | {a.bias:+.3f} | {a.r:.3f} | "
                  f"{'; '.join(rejected) if col == 'LAI Mean' else ''} |")


def synthetic_season(rng: np.random.Generator, days: int = 150):
    """A daily series of observations (NaN between), its injected dip days, and whether harvested."""
    t = np.arange(days)
    peak = rng.uniform(2, 6)
    green, senesce = rng.uniform(30, 60), rng.uniform(100, 130)
    curve = peak * (1 / (1 + np.exp(-(t - green) / 6)) - 1 / (1 + np.exp(-(t - senesce) / 8)))
    curve = np.maximum(curve, 0) + 0.2
    harvested = rng.random() < 0.5
    if harvested:  # a step to bare soil some time after the peak
        cut = int(rng.uniform(senesce - 20, senesce + 10))
        curve[cut:] = 0.25
    y = np.full(days, np.nan)
    overpass = np.arange(int(rng.integers(0, 5)), days, 5)
    seen = overpass[rng.random(len(overpass)) > 0.4]
    y[seen] = np.maximum(curve[seen] + rng.normal(0, 0.15, len(seen)), 0)
    dips: list[int] = []
    if rng.random() < 0.4 and len(seen) > 4:
        run = int(rng.integers(1, 3))
        i = int(rng.integers(1, len(seen) - run))
        dips = seen[i:i + run].tolist()
        y[dips] *= rng.uniform(0.2, 0.7)
    return y, dips, harvested


def synthetic(n: int) -> None:
    from vercye_lai.analysis.timeseries import find_outliers

    rng = np.random.default_rng(42)
    seasons = [synthetic_season(rng) for _ in range(n)]
    variants = [("dips (shipped: 0.5 LAI, 20 %)", {}),
                ("min_drop 0.3", {"min_drop": 0.3}), ("min_drop 0.8", {"min_drop": 0.8}),
                ("rel_drop 0.1", {"rel_drop": 0.1}), ("rel_drop 0.35", {"rel_drop": 0.35})]
    deep = [_depth(y, d) >= 0.5 for y, d, _ in seasons]  # below both neighbours by >= 0.5 LAI
    n_dips = sum(bool(d) for _, d, _ in seasons)
    n_deep = sum(bool(d) and k for (_, d, _), k in zip(seasons, deep))
    n_clean = sum(int((~np.isnan(y)).sum()) - len(d) for y, d, _ in seasons)
    print(f"\n2. {n} synthetic seasons, {n_dips} with an injected dip ({n_deep} of them at least 0.5 LAI "
          f"below both neighbours, which are at most 30 days apart), {n_clean} clean observations")
    print("| test | dips caught, all | deep dips caught | clean observations rejected | of them in harvested seasons |")
    print("| --- | --- | --- | --- | --- |")
    for label, kw in variants:
        caught = caught_deep = wrong = wrong_harvest = 0
        for (y, dips, harvested), is_deep in zip(seasons, deep):
            out = find_outliers(y, **kw)
            if dips and out[dips].all():
                caught += 1
                caught_deep += is_deep
            bad = int(out.sum()) - int(out[dips].sum()) if dips else int(out.sum())
            wrong += bad
            wrong_harvest += bad if harvested else 0
        print(f"| {label} | {caught} / {n_dips} ({100 * caught / n_dips:.1f} %) | {caught_deep} / {n_deep} "
              f"({100 * caught_deep / n_deep:.1f} %) | {wrong} ({100 * wrong / n_clean:.2f} %) | {wrong_harvest} |")


def _depth(y: np.ndarray, dips: list[int], max_span: int = 30) -> float:
    """How far an injected run lies below the lower of its two neighbours (0 if they are far apart)."""
    if not dips:
        return 0.0
    x = np.flatnonzero(~np.isnan(y)).tolist()
    i = x.index(dips[0])
    a, b = x[i - 1], x[i + len(dips)]
    return 0.0 if b - a > max_span else float(min(y[a], y[b]) - max(y[dips]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="500 synthetic seasons instead of 4000")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        real_season(Path(tmp))
    synthetic(500 if args.quick else 4000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
