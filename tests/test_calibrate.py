"""calibrate: fitted on some groups, judged on the others, never on what it saw."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import DATA, cli_error_line

from vercye_lai.cli.main import cli
from vercye_lai.errors import InputError
from vercye_lai.insitu import calibrate as cal
from vercye_lai.model import load_network
from vercye_lai.model.calibration import load_calibration
from vercye_lai.predict.table import day_of_year, predict_table, table_inputs

INSITU = DATA / "insitu_ch" / "insitu_177.csv"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def insitu_data():
    df = predict_table(pd.read_csv(INSITU))
    df = df[df["LAI"].notna()]  # the 12 rows of the 06-20 scene (0.1 bright: offset missing) are masked
    assert len(df) == 165
    net = load_network("sl2p")
    x = table_inputs(df, net.inputs).x.astype(float)
    return cal.CalibrationData(df["LAI"].to_numpy(float), df["lai"].to_numpy(float),
                               df["location"].to_numpy(str), x, day_of_year(df), tuple(net.inputs)), net


def synthetic(n_groups=4, n=30, seed=0):
    rng = np.random.default_rng(seed)
    est = rng.uniform(0, 6, n_groups * n)
    groups = np.repeat([f"g{i}" for i in range(n_groups)], n)
    target = 0.7 * est + 0.3 + rng.normal(0, 0.05, est.size)
    return cal.CalibrationData(est, target, groups)


def test_the_cross_validation_never_sees_the_held_out_group(insitu_data):
    data, net = insitu_data
    seen: list[tuple[str, np.ndarray]] = []
    for method in ("auto", "poly2", "refit-doy"):
        seen.clear()
        cal.cross_validate(data, method, net, trace=lambda g, rows: seen.append((g, rows)))
        assert {g for g, _ in seen} == set(data.groups)
        for held_out, rows in seen:
            assert held_out not in set(data.groups[rows]), (method, held_out)
        # and every fit of a fold used rows of the other groups only, some of them
        assert all(len(rows) > 0 for _, rows in seen)


def test_held_out_predictions_do_not_move_with_the_held_out_targets(insitu_data):
    """Changing the in-situ values of one group changes nothing of that group's CV predictions."""
    data, net = insitu_data
    a = cal.cross_validate(data, "auto", net).predictions
    t = data.target.copy()
    t[data.groups == "Strickhof"] += 3.0
    moved = cal.CalibrationData(data.estimate, t, data.groups, data.x, data.doy, data.inputs)
    b = cal.cross_validate(moved, "auto", net).predictions
    held = data.groups == "Strickhof"
    np.testing.assert_array_equal(a[held], b[held])
    assert not np.allclose(a[~held], b[~held])  # the other groups' fits did see it


def test_poly1_recovers_a_linear_correction_and_round_trips(tmp_path):
    data = synthetic()
    c, results = cal.fit_calibration(data, "poly1", model="sl2p")
    assert c.method == "poly1"
    assert c.coefficients[0] == pytest.approx(0.7, abs=0.02) and c.coefficients[1] == pytest.approx(0.3, abs=0.05)
    assert results["poly1"].calibrated.rmse < 0.1 < results["poly1"].uncalibrated.rmse
    c.write(tmp_path / "c.json")
    back = load_calibration(tmp_path / "c.json")
    np.testing.assert_allclose(back.apply(np.array([1.0, 5.0, np.nan])), c.apply(np.array([1.0, 5.0, np.nan])))
    assert np.isnan(back.apply(np.array([np.nan]))[0])
    (tmp_path / "bad.json").write_text(json.dumps({"method": "poly1"}))
    with pytest.raises(InputError, match="not a calibration file"):
        load_calibration(tmp_path / "bad.json")
    # a hand-edited file with a coefficient too few was applied as no change, silently
    short = json.loads((tmp_path / "c.json").read_text())
    short["coefficients"] = short["coefficients"][:1]
    (tmp_path / "short.json").write_text(json.dumps(short))
    with pytest.raises(InputError, match="method poly1 has 2 coefficients, the file gives 1"):
        load_calibration(tmp_path / "short.json")
    with pytest.raises(InputError, match="band values"):
        cal.fit_calibration(data, "refit", model="sl2p")


def test_calibrate_on_the_177_points(tmp_path):
    t = tmp_path / "pred.csv"
    assert run("-q", "predict-table", INSITU, t).exit_code == 0
    r = run("calibrate", t, "--group", "location", "--insitu-column", "lai", "-o", tmp_path / "cal.json")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "cal.json").read_text())
    # the 12 rows of the 06-20 scene (0.1 bright) are masked by the haze test
    assert doc["n"] == 165 and doc["groups"] == ["Arenenberg", "Strickhof", "SwissFutureFarm", "Witzwil"]
    assert doc["cv"]["uncalibrated"]["rmse"] == pytest.approx(1.346, abs=0.005)
    table = pd.read_csv(tmp_path / "cal_cv.csv")
    overall = table[table.held_out == "all"].set_index("method")
    assert set(overall.index) == {"auto", "poly1", "poly2", "refit", "refit-doy", "refit-vi-doy"}
    assert overall.loc["auto", "rmse"] == pytest.approx(doc["cv"]["calibrated"]["rmse"], abs=1e-4)
    assert overall.loc["auto", "rmse"] < 1.1 < overall.loc["auto", "rmse_uncalibrated"]
    assert "| auto | all | 165 |" in (tmp_path / "cal_cv.md").read_text()
    # on all four sites, auto keeps no correction: refit-vi-doy's gain does not hold at Witzwil
    assert doc["method"] == "none"
    # the figures are the auto procedure's, and a harmed fold names the method that fold chose (they
    # read as "none ... RMSE 1.054", "none made held-out Witzwil worse")
    said = " ".join(r.output.split())
    assert "calibrate: auto (chose none on all rows)" in said
    assert all(h["method"] != "none" for h in doc["cv"]["harm"])
    assert "none made held-out" not in said
    assert run("-q", "predict-table", INSITU, tmp_path / "c.csv", "--calibration", tmp_path / "cal.json").exit_code == 0
    out = pd.read_csv(tmp_path / "c.csv")
    np.testing.assert_allclose(out["LAI Calibrated"], out["LAI"].clip(lower=0))
    # a method asked for by name is fitted and applied by predict-table
    r = run("-q", "calibrate", t, "--group", "location", "--insitu-column", "lai", "--method", "refit-doy",
            "-o", tmp_path / "doy.json")
    assert r.exit_code == 0, r.output
    assert run("-q", "predict-table", INSITU, tmp_path / "d.csv", "--calibration", tmp_path / "doy.json").exit_code == 0
    out = pd.read_csv(tmp_path / "d.csv")
    assert np.sqrt(np.mean((out["LAI Calibrated"] - out["lai"]) ** 2)) < 0.9  # its training fit


def test_calibrate_errors_name_the_column(tmp_path):
    t = tmp_path / "pred.csv"
    assert run("-q", "predict-table", INSITU, t).exit_code == 0
    line = cli_error_line(run("-q", "calibrate", t, "--group", "site", "-o", tmp_path / "c.json"))
    assert "has no column 'site' (--group)" in line and "location" in line
    assert not (tmp_path / "c.json").exists()


def test_in_situ_values_in_percent_are_refused(tmp_path):
    """A calibration fitted to LAI × 12.5 (or to percent) maps every product to nonsense."""
    t = tmp_path / "pred.csv"
    assert run("-q", "predict-table", INSITU, t).exit_code == 0
    df = pd.read_csv(t)
    df.assign(lai=df["lai"] * 12.5).to_csv(t, index=False)
    line = cli_error_line(run("-q", "calibrate", t, "--group", "location", "--insitu-column", "lai", "-o",
                              tmp_path / "c.json"))
    assert f"{t}: column 'lai':" in line and "LAI value(s) outside -0.5 to 15" in line
    assert not (tmp_path / "c.json").exists()


def test_one_group_cannot_be_cross_validated(tmp_path):
    t = tmp_path / "pred.csv"
    assert run("-q", "predict-table", INSITU, t).exit_code == 0
    df = pd.read_csv(t)
    df.assign(site="one").to_csv(t, index=False)
    line = cli_error_line(run("-q", "calibrate", t, "--group", "site", "--insitu-column", "lai", "-o",
                              tmp_path / "c.json"))
    assert "at least 2 groups" in line and not (tmp_path / "c.json").exists()


def test_a_refit_on_rows_of_two_sensors_is_refused(tmp_path):
    t = tmp_path / "pred.csv"
    assert run("-q", "predict-table", INSITU, t).exit_code == 0
    df = pd.read_csv(t)
    df.assign(sensor=np.where(df.index % 2, "s2", "l30")).to_csv(t, index=False)
    line = cli_error_line(run("-q", "calibrate", t, "--group", "location", "--insitu-column", "lai",
                              "--method", "refit", "-o", tmp_path / "c.json"))
    assert "mixes sensors" in line
    r = run("-q", "calibrate", t, "--group", "location", "--insitu-column", "lai", "-o", tmp_path / "c.json")
    # auto without a re-fit: a poly* or, when no gain holds across the sites, no correction
    assert r.exit_code == 0 and json.loads((tmp_path / "c.json").read_text())["method"] in ("none", "poly1", "poly2")


def test_a_constant_in_situ_column_writes_strict_json(tmp_path):
    """r of a constant column is undefined: the file says null (strict JSON), not NaN."""
    base = synthetic()
    flat = cal.CalibrationData(base.estimate, np.full(base.target.size, 2.0), base.groups)
    c, _ = cal.fit_calibration(flat, "poly1", model="sl2p")
    text = c.write(tmp_path / "c.json").read_text()
    assert "NaN" not in text and "null" in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the file"))
    assert load_calibration(tmp_path / "c.json").coefficients == c.coefficients


def test_a_calibration_does_no_harm_outside_its_training_domain(tmp_path, insitu_data, caplog):
    """Fitted on days 64–171 of Swiss cereals: a November row keeps its uncalibrated estimate
    (flagged, said once), the day-of-year term is never evaluated beyond the fitted season,
    and no calibrated value leaves the network's valid range."""
    import logging

    from vercye_lai.model.calibration import Calibration, valid_range
    from vercye_lai.model.sl2p import FLAG_CALIBRATION_OUTSIDE

    data, net = insitu_data
    fitted, _ = cal.fit_calibration(data, "refit-doy", model="sl2p")
    lo, hi = fitted.domain["doy"]
    assert 60 <= lo < hi <= 180 and fitted.domain["estimate"][1] < 8
    path = fitted.write(tmp_path / "cal.json")
    c = load_calibration(path)
    assert c.domain == fitted.domain  # recorded in the file
    rows = slice(0, 20)
    est, x = data.estimate[rows], data.x[:, rows]
    november = np.full(est.size, 330.0)
    with caplog.at_level(logging.WARNING, logger="vercye_lai.model.calibration"):
        out = c.apply(est, x, november)
        c.apply(est, x, november)
    np.testing.assert_array_equal(out, est)  # outside: the raw estimate
    assert caplog.text.count("outside the calibration's training domain") == 1
    bounded = c.apply(est, x, november, fallback=False)  # the date term at the season's end, not day 330
    np.testing.assert_allclose(bounded, c.apply(est, x, np.full(est.size, hi), fallback=False))
    assert (bounded <= valid_range("sl2p", "LAI")[1]).all()
    after_harvest = np.full(est.size, 230.0)  # mid-August: stubble, after the fitted season
    np.testing.assert_array_equal(c.apply(est, x, after_harvest), est)
    # another crop: a canopy brighter in the near infrared than any fitted row (a broadleaf crop)
    nir = c.inputs.index("B8A")
    other = x.copy()
    other[nir] = c.domain["inputs"]["B8A"][1] + 0.1
    assert c.outside(est, np.full(est.size, 120.0), other).all()
    assert not c.outside(est, np.full(est.size, 120.0), x).any()
    np.testing.assert_array_equal(c.apply(est, other, np.full(est.size, 120.0)), est)
    steep = Calibration("poly1", 0.0, (5.0, 1.0), "sl2p", domain={"estimate": [0.0, 8.0]})
    assert steep.apply(np.array([3.0, 6.0])).max() <= valid_range("sl2p", "LAI")[1]
    # predict-table: the November rows keep their LAI and carry the flag bit
    df = pd.read_csv(INSITU).head(10).assign(date_insitu="2022-11-26 10:30:00")
    late = tmp_path / "late.csv"
    df.to_csv(late, index=False)
    assert run("-q", "predict-table", late, tmp_path / "o.csv", "--calibration", path,
               "--time-column", "date_insitu").exit_code == 0
    o = pd.read_csv(tmp_path / "o.csv")
    np.testing.assert_allclose(o["LAI Calibrated"], o["LAI"])
    assert ((o["LAI flags"] & FLAG_CALIBRATION_OUTSIDE) != 0).all()


def test_auto_returns_no_correction_when_no_method_helps_across_groups():
    """Targets whose relation to the estimate flips from group to group: every correction
    fitted on some groups hurts another, and auto says so by choosing none."""
    rng = np.random.default_rng(3)
    est = rng.uniform(0.5, 6, 120)
    groups = np.repeat(["a", "b", "c", "d"], 30)
    sign = np.repeat([1.0, -1.0, 1.0, -1.0], 30)
    target = est + sign * 0.8 * (est - 3) + rng.normal(0, 0.1, est.size)
    c, results = cal.fit_calibration(cal.CalibrationData(est, target, groups), "auto", model="sl2p")
    assert c.method == "none" and c.apply(np.array([1.0, 4.0])).tolist() == [1.0, 4.0]
    helps = cal.fit_calibration(synthetic(), "auto", model="sl2p")[0]  # a real, shared bias: corrected
    assert helps.method.startswith("poly")


def test_the_calibrated_sigma_means_what_it_says_on_groups_it_never_saw(tmp_path):
    """Errors that grow with LAI, and an offset of each group's own (a site's protocol): the
    error model fitted on the held-out residuals finds both, covers 68 % / 95 % of another
    group's errors at ±σ / ±2σ (checked one group out at a time), travels in the file, and
    predict-table writes it beside the calibrated value."""
    rng = np.random.default_rng(11)
    est = rng.uniform(0.3, 6, 1000)
    groups = np.repeat([f"g{i}" for i in range(10)], 100)
    offset = np.repeat(rng.normal(0, 0.3, 10), 100)
    target = 0.8 * est + 0.2 + offset + rng.normal(0, 0.1 + 0.1 * est)
    c, _ = cal.fit_calibration(cal.CalibrationData(est, target, groups), "poly1", model="sl2p")
    s0, s1, tau = c.sigma
    assert 0.05 < s0 < 0.25 and 0.05 < s1 < 0.15 and 0.15 < tau < 0.5
    assert 0.6 <= c.cv["sigma"]["coverage_1sigma"] <= 0.76 and 0.9 <= c.cv["sigma"]["coverage_2sigma"] <= 0.98
    alike = cal.fit_calibration(cal.CalibrationData(est, target - offset, groups), "poly1", model="sl2p")[0]
    assert alike.sigma[2] < 0.05  # no group offsets: none found
    path = c.write(tmp_path / "c.json")
    assert load_calibration(path).sigma == c.sigma
    t = tmp_path / "pred.csv"
    assert run("-q", "predict-table", INSITU, t).exit_code == 0
    r = run("-q", "calibrate", t, "--group", "location", "--insitu-column", "lai", "--method", "poly1",
            "-o", tmp_path / "p.json")
    assert r.exit_code == 0, r.output
    assert run("-q", "predict-table", INSITU, tmp_path / "o.csv", "--calibration", tmp_path / "p.json").exit_code == 0
    o = pd.read_csv(tmp_path / "o.csv")
    sigma = load_calibration(tmp_path / "p.json").uncertainty(o["LAI Calibrated"])
    np.testing.assert_allclose(o["LAI Calibrated uncertainty"], sigma)


def test_every_grouping_is_cross_validated_and_its_worst_group_reported(tmp_path):
    t = tmp_path / "pred.csv"
    assert run("-q", "predict-table", INSITU, t).exit_code == 0
    r = run("calibrate", t, "--group", "location", "--group", "parcel", "--insitu-column", "lai",
            "--method", "poly1", "-o", tmp_path / "c.json")
    assert r.exit_code == 0, r.output
    cv = json.loads((tmp_path / "c.json").read_text())["cv"]
    folds = {f["group"]: f["calibrated"]["rmse"] for f in cv["folds"]}
    assert cv["worst"]["group"] == max(folds, key=folds.get)  # the worst held-out site
    parcel = cv["groupings"]["parcel"]
    assert parcel["worst"]["rmse"] >= parcel["rmse"] and parcel["worst"]["group"] in set(pd.read_csv(t)["parcel"])
    assert "leave-one-parcel-out" in r.output and "worst parcel" in r.output


def test_a_correction_that_harms_a_held_out_group_is_named_and_auto_needs_three_groups(tmp_path):
    """Leave one year out on the 177 points (2019: 29 points of one site, 2022: the rest): a
    poly1 fitted on one season makes the other's error beyond an offset grow by half, and
    calibrate says so by name; auto, given two groups, cannot judge transfer and corrects
    nothing."""
    t = tmp_path / "pred.csv"
    assert run("-q", "predict-table", INSITU, t).exit_code == 0
    pd.read_csv(t).assign(year=lambda d: d["scene_id"].str[11:15]).to_csv(t, index=False)
    r = run("calibrate", t, "--group", "year", "--insitu-column", "lai", "--method", "poly1", "-o", tmp_path / "p.json")
    assert r.exit_code == 0, r.output
    assert "poly1 made held-out year 2022 worse than no correction beyond an offset" in " ".join(r.output.split())
    harm = json.loads((tmp_path / "p.json").read_text())["cv"]["harm"]
    assert [h["group"] for h in harm] == ["2022"] and harm[0]["centred_rmse"] > 1.3 * harm[0]["centred_rmse_uncalibrated"]
    assert run("-q", "calibrate", t, "--group", "year", "--insitu-column", "lai", "-o", tmp_path / "a.json").exit_code == 0
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["method"] == "none" and doc["cv"]["harm"] == []
    assert doc["cv"]["sigma"]["coverage_1sigma"] is None  # one group cannot tell a new group's offset


def test_the_in_situ_measurement_error_is_taken_out_of_the_calibrated_sigma(tmp_path):
    """In-situ values with a measurement error of 0.4 on top of an estimate error of 0.2: given
    the measurement error, the calibrated σ states the estimate's (≈ 0.2, not ≈ 0.45), and its
    coverage, checked against √(σ² + measurement²) on held-out groups, stays near nominal."""
    rng = np.random.default_rng(5)
    est = rng.uniform(0.5, 6, 1200)
    groups = np.repeat([f"g{i}" for i in range(8)], 150)
    meas = np.full(est.size, 0.4)
    target = est + rng.normal(0, 0.2, est.size) + rng.normal(0, 1, est.size) * meas
    plain = cal.fit_calibration(cal.CalibrationData(est, target, groups), "none", model="sl2p")[0]
    given = cal.fit_calibration(cal.CalibrationData(est, target, groups, insitu_sigma=meas), "none", model="sl2p")[0]
    assert plain.uncertainty(np.array([3.0]))[0] == pytest.approx(0.45, abs=0.06)
    assert given.uncertainty(np.array([3.0]))[0] == pytest.approx(0.2, abs=0.06)
    cover = given.cv["sigma"]
    assert 0.62 <= cover["coverage_1sigma"] <= 0.74 and 0.92 <= cover["coverage_2sigma"] <= 0.98
    assert given.cv["sigma"]["insitu_error"] == "taken out"
    # through the command: a column of the table
    t = tmp_path / "t.csv"
    pd.DataFrame({"LAI": est, "insitu": target, "site": groups, "se": meas}).to_csv(t, index=False)
    r = run("-q", "calibrate", t, "--group", "site", "--method", "none", "--insitu-error-column", "se",
            "-o", tmp_path / "c.json")
    assert r.exit_code == 0, r.output
    assert load_calibration(tmp_path / "c.json").sigma == pytest.approx(given.sigma)
    line = cli_error_line(run("-q", "calibrate", t, "--group", "site", "--insitu-error-column", "sd", "-o",
                              tmp_path / "d.json"))
    assert "has no column 'sd' (--insitu-error-column)" in line
