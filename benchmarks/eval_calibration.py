"""How far to trust the numbers, on 177 in-situ green-LAI points — by vercye-lai's own commands.

The table: ``tests/data/insitu_ch/insitu_177.csv`` (Graf et al. 2023, 4 Swiss winter-wheat
sites, 2019 and 2022; each in-situ LAI with the Sentinel-2 L2A reflectances of its pixel).
Sun angles come from the scene time in ``scene_id`` and the site's position, the view is
assumed nadir, as the published anchors were computed.

1. ``predict-table`` with every bundled model that the table's bands allow (``--haze off``:
   every row, as published), and ``sl2p`` with the haze test (the default): n, RMSE, bias, r.
2. LEAF's per-pixel uncertainty u (``sl2p``) against the actual error: corr(u, |error|), the
   share within ±u and ±2u.
3. ``calibrate`` by two protocols — leave one site out (``--group location``) and leave one
   year out (``--group year``) — for every method: RMSE, bias, r of the held-out predictions,
   the coverage of the calibrated σ (each group's errors against the error model fitted on the
   other groups': nominal 68 % within ±σ, 95 % within ±2σ) and the worst held-out group.
4. A field's mean: the points of one parcel and scene (34 parcel-dates with ≥ 2 points) —
   the intraclass correlation of the pixel errors (the share a field's pixels have in common)
   and the coverage of a field mean's σ computed as if pixel errors were independent (σ/√n)
   and with the shared part (:data:`vercye_lai.analysis.stats.FIELD_ERROR_SHARE`).

    python benchmarks/eval_calibration.py [--docs]   # --docs: also the two figures of the docs
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from vercye_lai.analysis.stats import FIELD_ERROR_SHARE
from vercye_lai.cli.main import cli
from vercye_lai.insitu.calibrate import error_model
from vercye_lai.model.calibration import error_sigma

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "tests" / "data" / "insitu_ch" / "insitu_177.csv"
METHODS = ("auto", "none", "poly1", "poly2", "refit", "refit-doy", "refit-vi-doy")


def vercye(*args) -> None:
    r = CliRunner().invoke(cli, ["-q", *map(str, args)])
    if r.exit_code:
        raise SystemExit(f"vercye-lai {' '.join(map(str, args))} failed:\n{r.output}")


def figures(est, truth) -> str:
    ok = np.isfinite(est) & np.isfinite(truth)
    est, truth = np.asarray(est)[ok], np.asarray(truth)[ok]
    d = est - truth
    return f"{len(d)} | {np.sqrt(np.mean(d**2)):.3f} | {d.mean():+.3f} | {np.corrcoef(est, truth)[0, 1]:.3f}"


def share(value) -> str:
    """A coverage (``None``: not checkable, e.g. a group offset from one group)."""
    return "n/a" if value is None else f"{value:.1%}"


def icc(err: np.ndarray, groups: np.ndarray) -> float:
    """The intraclass correlation of ``err`` over ``groups`` (one-way ANOVA, groups of ≥ 2)."""
    parts = [err[groups == g] for g in dict.fromkeys(groups.tolist())]
    parts = [p for p in parts if len(p) >= 2]
    n = np.array([len(p) for p in parts])
    total, a = n.sum(), len(parts)
    grand = np.concatenate(parts).mean()
    msb = sum(len(p) * (p.mean() - grand) ** 2 for p in parts) / (a - 1)
    msw = sum(((p - p.mean()) ** 2).sum() for p in parts) / (total - a)
    n0 = (total - (n**2).sum() / total) / (a - 1)
    between = max((msb - msw) / n0, 0.0)
    return between / (between + msw)


def held_out_sigma(value: np.ndarray, residual: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each row's calibrated σ from the error model fitted on the other groups' rows."""
    out = np.full(len(value), np.nan)
    for g in dict.fromkeys(groups.tolist()):
        held = groups == g
        out[held] = error_sigma(error_model(value[~held], residual[~held], groups[~held]), value[held])
    return out


def reliability(ax, sigma: np.ndarray, err: np.ndarray, label: str, marker: str) -> None:
    """Observed RMS error against the stated σ, in quintiles of σ."""
    edges = np.quantile(sigma, np.linspace(0, 1, 6))
    bins = np.clip(np.searchsorted(edges, sigma, side="right") - 1, 0, 4)
    s = [sigma[bins == b].mean() for b in range(5)]
    e = [np.sqrt(np.mean(err[bins == b] ** 2)) for b in range(5)]
    ax.plot(s, e, marker=marker, label=label)


def main() -> int:
    docs = "--docs" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        print("1. predict-table on the 177 points (sun from the scene time, nadir view)")
        print("| model | view azimuth | n | RMSE | bias | r |\n| --- | --- | --- | --- | --- | --- |")
        for model in ("sl2p", "snap-3.0-s2a", "snap-3.0-s2b", "snap-2.1"):
            out = t / f"{model}.csv"
            vercye("predict-table", TABLE, out, "--model", model, "--haze", "off")
            df = pd.read_csv(out)
            print(f"| {model} | 0° | {figures(df['LAI'], df['lai'])} |")
            if model.startswith("snap-3.0"):
                sun = df.assign(cosRAA=1.0)  # view azimuth = sun azimuth
                sun.drop(columns=["LAI", "LAI flags"]).to_csv(t / "sun.csv", index=False)
                vercye("predict-table", t / "sun.csv", t / "sun_out.csv", "--model", model, "--haze", "off")
                s = pd.read_csv(t / "sun_out.csv")
                print(f"| {model} | = sun azimuth | {figures(s['LAI'], s['lai'])} |")
        vercye("predict-table", TABLE, t / "haze.csv", "--uncertainty")
        df = pd.read_csv(t / "haze.csv").assign(year=lambda d: d["scene_id"].str[11:15])
        df.to_csv(t / "haze.csv", index=False)
        print(f"| sl2p, haze test (default) | 0° | {figures(df['LAI'], df['lai'])} |")

        print("\n2. LEAF's per-pixel uncertainty u (sl2p, haze test) against the actual error")
        ok = df["LAI"].notna()
        err = (df["LAI"] - df["lai"])[ok].to_numpy()
        u = df["LAI uncertainty"][ok].to_numpy()
        print(f"corr(u, |error|) = {np.corrcoef(u, np.abs(err))[0, 1]:.3f}; within ±u: {(np.abs(err) <= u).mean():.1%}; "
              f"within ±2u: {(np.abs(err) <= 2 * u).mean():.1%}; median u {np.median(u):.2f}, "
              f"median |error| {np.median(np.abs(err)):.2f}")

        print("\n3. calibrate, every method, two protocols (figures on held-out groups only; "
              "sigma coverage nominal 68 % / 95 %)")
        print("| protocol | method | chosen on all rows | RMSE | bias | r | within ±σ | within ±2σ | "
              "worst group: RMSE (uncalibrated) | σ = √(tau² + (s0 + s1 v)²) |\n" + "| --- " * 10 + "|")
        for protocol, column in (("leave one site out", "location"), ("leave one year out", "year")):
            for method in METHODS:
                out = t / f"cal_{column}_{method}.json"
                vercye("calibrate", t / "haze.csv", "--group", column, "--insitu-column", "lai", "--method",
                       method, "-o", out)
                doc = json.loads(out.read_text())
                cv, sig = doc["cv"], doc["sigma"]
                w = cv["worst"]
                print(f"| {protocol} | {method} | {doc['method']} | {cv['calibrated']['rmse']:.3f} | "
                      f"{cv['calibrated']['bias']:+.3f} | {cv['calibrated']['r']:.3f} | "
                      f"{share(cv['sigma']['coverage_1sigma'])} | {share(cv['sigma']['coverage_2sigma'])} | "
                      f"{w['group']} {w['rmse']:.2f} ({w['uncalibrated_rmse']:.2f}) | "
                      f"tau {sig['tau']:.2f}, {sig['s0']:.2f} + {sig['s1']:.3f} v |")
        print(f"uncalibrated sl2p: {figures(df['LAI'], df['lai'])} (n | RMSE | bias | r)")

        print("\n4. a field's mean: points of one parcel and scene")
        d = df[ok].copy()
        d["err"] = d["LAI"] - d["lai"]
        d["field"] = d["location"] + "/" + d["parcel"].astype(str) + "/" + d["scene_id"]
        rho = icc(d["err"].to_numpy(), d["field"].to_numpy())
        print(f"intraclass correlation of the pixel errors within a parcel-date: {rho:.2f} "
              f"(used: FIELD_ERROR_SHARE = {FIELD_ERROR_SHARE})")
        # the σ a user would have: the network's u, or a calibration's σ fitted on the other sites
        d["cal_sigma"] = held_out_sigma(d["LAI"].to_numpy(), -d["err"].to_numpy(), d["location"].to_numpy())
        g = d.groupby("field")
        f = pd.DataFrame({"n": g.size(), "err": g["err"].mean()})
        f = f[f.n >= 2]
        print("| pixel σ | field σ | n fields | within ±σ | within ±2σ |\n| --- | --- | --- | --- | --- |")
        for name, col in (("network u", "LAI uncertainty"), ("calibrated σ (site held out)", "cal_sigma")):
            mean_s = g[col].mean()[f.index]
            mean_s2 = g[col].apply(lambda s: np.mean(s**2))[f.index]
            for how, sig in (("independent: √(mean σ²/n)", np.sqrt(mean_s2 / f.n)),
                             (f"shared part ρ {FIELD_ERROR_SHARE}",
                              np.sqrt(FIELD_ERROR_SHARE * mean_s**2 + (1 - FIELD_ERROR_SHARE) * mean_s2 / f.n))):
                e = f["err"].abs()
                print(f"| {name} | {how} | {len(f)} | {(e <= sig).mean():.1%} | {(e <= 2 * sig).mean():.1%} |")

        if docs:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            from vercye_lai.insitu.agreement import plot_agreement

            vercye("calibrate", t / "haze.csv", "--group", "location", "--insitu-column", "lai", "-o", t / "fig.json")
            pred = pd.read_csv(t / "fig_cv_predictions.csv").rename(
                columns={"estimate": "LAI", "refit-doy": "LAI calibrated"})
            plot_agreement(pred, ROOT / "docs" / "insitu_177_calibration.png",
                           title="165 in-situ points, 4 sites: sl2p, and refit-doy fitted on the other 3 sites",
                           columns=("LAI", "LAI calibrated"), truth="insitu", group="group")
            fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=110)
            top = float(max(d["cal_sigma"].max(), u.max())) * 1.05
            ax.plot([0, top], [0, top], color="0.6", lw=1, label="stated = observed")
            reliability(ax, u, err, "LEAF error network u", "o")
            reliability(ax, d["cal_sigma"].to_numpy(), d["err"].to_numpy(),
                        "calibrated σ (fitted on the other sites)", "s")
            ax.set_xlabel("stated σ, mean per quintile (LAI)")
            ax.set_ylabel("observed RMS error (LAI)")
            ax.set_title("Reliability on 165 in-situ points (4 Swiss sites)", fontsize=10)
            ax.legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(ROOT / "docs" / "uncertainty_reliability.png")
            print("figures: docs/insitu_177_calibration.png, docs/uncertainty_reliability.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
