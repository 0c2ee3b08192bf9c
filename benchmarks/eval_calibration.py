"""How far to trust the numbers, on 177 in-situ green-LAI points — by vercye-lai's own commands.

The table: ``tests/data/insitu_ch/insitu_177.csv`` (Graf et al. 2023, 4 Swiss winter-wheat
sites, 2019 and 2022; each in-situ LAI with the Sentinel-2 L2A reflectances of its pixel).
Sun angles come from the scene time in ``scene_id`` and the site's position, the view is
assumed nadir (``--view-zenith 0 --view-azimuth 0``), as the anchors were computed.

1. ``predict-table`` with every bundled model that the table's bands allow: n, RMSE,
   bias, r against the in-situ LAI (``sl2p-10m`` needs B08, which the table lacks). For
   SNAP 3.0, also with the view azimuth equal to the sun's (cos RAA = 1): the networks
   are sensitive to the relative azimuth even at nadir, where it has no physical meaning.
2. ``predict-table --uncertainty`` (LEAF's error network): how informative the per-pixel
   uncertainty u is — correlation of u with |error|, share of points within ±u and ±2u.
3. ``calibrate --group location``: leave-one-site-out RMSE and bias of every method.

    python benchmarks/eval_calibration.py [--docs]   # --docs: also docs/insitu_177_calibration.png
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from vercye_lai.cli.main import cli

TABLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "insitu_ch" / "insitu_177.csv"


def vercye(*args) -> None:
    r = CliRunner().invoke(cli, ["-q", *map(str, args)])
    if r.exit_code:
        raise SystemExit(f"vercye-lai {' '.join(map(str, args))} failed:\n{r.output}")


def figures(est, truth) -> str:
    d = est - truth
    return f"{len(d)} | {np.sqrt(np.mean(d**2)):.3f} | {d.mean():+.3f} | {np.corrcoef(est, truth)[0, 1]:.3f}"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        print("1. predict-table on the 177 points (sun from the scene time, nadir view)")
        print("| model | view azimuth | n | RMSE | bias | r |\n| --- | --- | --- | --- | --- | --- |")
        for model in ("sl2p", "snap-3.0-s2a", "snap-3.0-s2b", "snap-2.1"):
            out = t / f"{model}.csv"
            vercye("predict-table", TABLE, out, "--model", model)
            df = pd.read_csv(out)
            print(f"| {model} | 0° | {figures(df['LAI'], df['lai'])} |")
            if model.startswith("snap-3.0"):
                sun = df.assign(cosRAA=1.0)  # view azimuth = sun azimuth
                sun.drop(columns=["LAI", "LAI flags"]).to_csv(t / "sun.csv", index=False)
                vercye("predict-table", t / "sun.csv", t / "sun_out.csv", "--model", model)
                s = pd.read_csv(t / "sun_out.csv")
                print(f"| {model} | = sun azimuth | {figures(s['LAI'], s['lai'])} |")

        print("\n2. LEAF's per-pixel uncertainty u (sl2p) against the actual error")
        vercye("predict-table", TABLE, t / "u.csv", "--uncertainty")
        df = pd.read_csv(t / "u.csv")
        err = (df["LAI"] - df["lai"]).abs()
        u = df["LAI uncertainty"]
        print(f"corr(u, |error|) = {np.corrcoef(u, err)[0, 1]:.3f}; within ±u: {(err <= u).mean():.1%}; "
              f"within ±2u: {(err <= 2 * u).mean():.1%}; median u {u.median():.2f}, "
              f"median |error| {err.median():.2f}")

        print("\n3. calibrate --group location (leave one site out)")
        vercye("calibrate", t / "sl2p.csv", "--group", "location", "--insitu-column", "lai",
               "-o", t / "cal.json")
        cv = pd.read_csv(t / "cal_cv.csv")
        print("| method | RMSE | bias | r | per held-out site: RMSE (bias) |\n| --- | --- | --- | --- | --- |")
        for method, g in cv.groupby("method", sort=False):
            a = g[g.held_out == "all"].iloc[0]
            sites = "; ".join(f"{r.held_out} {r.rmse:.2f} ({r.bias:+.2f})" for r in g.itertuples()
                              if r.held_out != "all")
            print(f"| {method} | {a.rmse:.3f} | {a.bias:+.3f} | {a.r:.3f} | {sites} |")
        a = cv[(cv.method == "auto") & (cv.held_out == "all")].iloc[0]
        print(f"uncalibrated sl2p: RMSE {a.rmse_uncalibrated:.3f}, bias {a.bias_uncalibrated:+.3f}")

        print("\n4. the calibrated sigma, one site out: the share of a site's errors within the interval fitted "
              "on the other sites' held-out errors (nominal 68 % / 95 %)")
        print("| method | sigma = s0 + s1 * value | k95 | within ±sigma | within ±k95·sigma | worst site RMSE |\n"
              "| --- | --- | --- | --- | --- | --- |")
        for method in ("auto", "none", "poly1", "refit-doy", "refit-vi-doy"):
            out = t / f"cal_{method}.json"
            vercye("calibrate", t / "sl2p.csv", "--group", "location", "--insitu-column", "lai", "--method", method,
                    "-o", out)
            doc = json.loads(out.read_text())
            s0, s1, k95 = doc["sigma"]
            worst = max(doc["cv"]["folds"], key=lambda f: f["calibrated"]["rmse"])
            print(f"| {method} | {s0:.2f} + {s1:.3f} v | {k95:.2f} | {doc['cv']['sigma']['coverage_1sigma']:.1%} | "
                  f"{doc['cv']['sigma']['coverage_95']:.1%} | {worst['group']} {worst['calibrated']['rmse']:.2f} |")
        if "--docs" in sys.argv:  # the README's figure
            from vercye_lai.insitu.agreement import plot_agreement

            pred = pd.read_csv(t / "cal_cv_predictions.csv").rename(
                columns={"estimate": "LAI", "auto": "LAI calibrated"})
            docs = Path(__file__).resolve().parents[1] / "docs" / "insitu_177_calibration.png"
            plot_agreement(pred, docs, title="177 in-situ points, 4 sites: sl2p, and calibrated by a fit on the other 3 sites "
                           "(auto)", columns=("LAI", "LAI calibrated"),
                           truth="insitu", group="group")
            print(f"figure: {docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
