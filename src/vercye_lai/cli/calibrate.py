"""``vercye-lai calibrate``: fit a correction of SL2P to in-situ values, cross-validated."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import click

from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import stdout
from vercye_lai.insitu.calibrate import (
    CHOICES,
    calibration_data,
    cross_validate,
    fit_calibration,
    grouping_figures,
    write_cv_tables,
)
from vercye_lai.model import load_network
from vercye_lai.predict import PredictOptions
from vercye_lai.predict.table import TableOptions, read_table

log = logging.getLogger(__name__)


@click.command("calibrate")
@click.argument("matched", metavar="MATCHED", type=click.Path(dir_okay=False, path_type=Path))
@opts.option("--group", "group_columns", required=True, multiple=True,
        help="Column of the groups held out one at a time (a site, a field, a year); repeat to also "
             "cross-validate by another grouping (the first chooses the method; each reports its worst group).")
@opts.output_option(required=True,
                    help="Calibration file to write (.json); the CV tables go beside it (_cv.csv, _cv.md).")
@opts.option("--insitu-column", default="insitu", show_default=True, help="Column of the in-situ values.")
@opts.option("--insitu-error-column", default=None,
             help="Column of each in-situ value's standard error (its measurement error): taken out of the "
                  "calibrated sigma, which then states the estimate's error alone.")
@opts.option("--method", type=click.Choice(CHOICES), default="auto", show_default=True,
        help="poly1/poly2: a function of the estimate; refit: the network's output layer; "
             "refit-doy, refit-vi-doy: plus day of year (and vegetation indices); none: no correction; "
             "auto: chosen by an inner cross-validation, and none unless its gain over no correction "
             "holds across the held-out groups (mean gain less one standard error above zero).")
@opts.click_options(PredictOptions, exclude=("flags", "cog", "block_size", "uncertainty", "out_of_range", "calibration", "haze",
                                            "landsat_model", "dtype"),
                    helps={"variables": "The variable to calibrate: its estimate is the table's column of that name "
                                        "(LAI); the first one given counts."})
@opts.click_options(TableOptions)
def command(matched, group_columns, output, insitu_column, insitu_error_column, method, **params):
    """Fit a calibration of the estimates in MATCHED to its in-situ values and evaluate it
    by leave-one-group-out cross-validation (each group predicted by a fit on the others,
    the penalty and method chosen inside those folds).

    \b
    MATCHED: the table of `validate` or the output of `predict-table` (the estimate
    column is the variable's name, e.g. LAI; band columns as predict-table reads them).
    Writes OUT (JSON: method, coefficients, CV figures, n, groups, model), OUT_cv.csv and
    OUT_cv.md (every method, per held-out group, beside the uncalibrated figures) and
    OUT_cv_predictions.csv (each row's held-out prediction by every method).
    Apply it with --calibration (predict-table, predict) or analyze --adjustment OUT.

    \b
    Example:
      vercye-lai calibrate matched.csv --group site --insitu-column lai -o cal.json
    """
    if output is None:
        raise click.UsageError("give -o/--output FILE.json")
    out = output

    predict = opts.from_cli(PredictOptions, params, workers=1)
    options = opts.from_cli(TableOptions, params)
    df = read_table(matched, layer=options.layer)
    group_column = group_columns[0]
    data = calibration_data(df, matched, group_column=group_column, insitu_column=insitu_column,
                            predict=predict, options=options, method=method, insitu_error_column=insitu_error_column)
    cal, results = fit_calibration(data, method, model=str(predict.model), variable=predict.variables[0])
    groupings = {}
    for other in group_columns[1:]:  # the same rows, held out by another grouping
        regrouped = dataclasses.replace(data, groups=calibration_data(
            df, matched, group_column=other, insitu_column=insitu_column, predict=predict, options=options,
            method=method).groups)
        network = load_network(predict.model, predict.variables[0]) if data.x is not None else None
        groupings[other] = grouping_figures(cross_validate(regrouped, method, network))
    if groupings:
        cal.cv["groupings"] = groupings
    cal.write(out)
    csv, md, text = write_cv_tables(results, out, data)
    stdout.print(text, markup=False)
    c = cal.cv["calibrated"]
    u = cal.cv["uncalibrated"]
    # with auto, the figures are the procedure's (each fold chose its own method), not the method it
    # chose on every row: said as such (they read as that method's own)
    judged = f"auto (chose {cal.method} on all rows)" if method == "auto" else cal.method
    stdout.print(f"calibrate: {judged} (alpha {cal.alpha:g}) on {cal.n} rows of {len(cal.groups)} groups; "
                 f"leave-one-{group_column}-out RMSE {c['rmse']:.3f} bias {c['bias']:+.3f} "
                 f"(uncalibrated {u['rmse']:.3f} {u['bias']:+.3f}) -> {out}, {csv.name}, {md.name}",
                 markup=False)
    for h in cal.cv["harm"]:  # the method that fold chose, fitted on the other groups
        log.warning("%s made held-out %s %s worse than no correction beyond an offset: r %.2f -> %.2f, "
                    "error without its offset %.2f -> %.2f (fitted on the other groups)", h.get("method", cal.method),
                    group_column, h["group"], h["r_uncalibrated"], h["r"], h["centred_rmse_uncalibrated"],
                    h["centred_rmse"])
    for name, g in {group_column: {"worst": cal.cv["worst"], **c}, **groupings}.items():
        w = g["worst"]
        stdout.print(f"  leave-one-{name}-out: RMSE {g['rmse']:.3f}; worst {name} {w['group']} (n {w['n']}): "
                     f"{w['rmse']:.3f} (uncalibrated {w['uncalibrated_rmse']:.3f})", markup=False)

