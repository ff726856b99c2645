"""The book's test for a claim (one-sided 95 % Student-t bound over seeds), on hand-worked numbers."""
import json
import math

import pytest

from cl_lib import claims, config


@pytest.mark.parametrize("df, table", [(1, 6.314), (2, 2.920), (3, 2.353), (4, 2.132), (9, 1.833), (29, 1.699)])
def test_t_quantile_matches_the_printed_table(df, table):
    assert claims.t_quantile(0.95, df) == pytest.approx(table, abs=5e-4)


def test_t_cdf_is_symmetric_and_half_at_zero():
    assert claims.t_cdf(0.0, 3) == 0.5
    assert claims.t_cdf(1.3, 5) + claims.t_cdf(-1.3, 5) == pytest.approx(1.0, abs=1e-12)


def test_bounds_by_hand():
    # mean 2, sample sd 1 (not the population's 0.816), n 3: half-width 2.920 / sqrt(3) = 1.6858
    mean, sd, lower, upper = claims.mean_bounds([1.0, 2.0, 3.0])
    assert (mean, sd) == (2.0, 1.0)
    assert lower == pytest.approx(2 - 1.6858, abs=1e-3) and upper == pytest.approx(2 + 1.6858, abs=1e-3)


def test_the_rule_uses_the_bound_not_the_spread():
    vals = [1.0, 2.0, 3.0]  # lower bound 0.3142
    assert claims.clears(vals, above=0.30) and not claims.clears(vals, above=0.32)
    # the old rule (mean − threshold > population std) would pass this: 2 − 1.1 = 0.9 > 0.816
    assert not claims.clears(vals, above=1.1)
    assert claims.clears([-1.0, -2.0, -3.0], below=-0.30) and not claims.clears([-1.0, -2.0, -3.0], below=-0.32)
    assert claims.clears(vals, above=0.3, below=3.7) and not claims.clears(vals, above=0.3, below=3.6)


def test_one_seed_or_none_never_holds():
    assert not claims.clears([5.0], above=0.0)
    assert not claims.clears([], above=0.0)
    assert claims.mean_bounds([5.0])[2] == -math.inf


def test_no_spread_holds_when_the_mean_clears():
    assert claims.clears([0.1, 0.1, 0.1], above=0.05) and not claims.clears([0.1, 0.1, 0.1], above=0.1)


def _cfg(smoke=False, **params):
    return config.ChapterConfig(chapter="99_test", profile="quick", params=params, smoke=smoke)


def test_done_asserts_a_failing_claim_and_records_the_statistics():
    c = claims.Claims(_cfg())
    c.claim("holds", [1.0, 2.0, 3.0], above=0.3)
    c.claim("fails", [1.0, 2.0, 3.0], above=0.5)
    c.report("a report is never asserted", [-1.0, -2.0])
    with pytest.raises(AssertionError, match="fails"):
        c.done()
    rec = json.loads((config.build_dir("results") / "99_test.json").read_text())
    row = rec["claims"][0]
    assert (row["n"], row["mean"], row["sd"], row["above"], row["result"]) == (3, 2.0, 1.0, 0.3, "holds")
    assert row["lower95"] == pytest.approx(0.3142, abs=1e-3)
    assert rec["claims"][1]["result"] == "FAILS" and rec["claims"][2]["result"] == "measured, not a claim"
    assert {"torch", "cpu_capability", "threads"} <= set(rec["environment"])


def test_smoke_runs_record_claims_but_assert_only_checks():
    c = claims.Claims(_cfg(smoke=True))
    c.claim("fails", [1.0, 2.0, 3.0], above=5)
    c.done()  # not asserted
    c.check("a broken check", False)
    with pytest.raises(AssertionError, match="broken check"):
        c.done()


def test_at_scale_only_is_a_report_unless_the_profile_asserts_it():
    small = claims.Claims(_cfg(assert_at_scale=False))
    assert small.claim("x", [1.0, 1.1, 0.9], above=0.0, at_scale_only=True).kind == "report"
    big = claims.Claims(_cfg(assert_at_scale=True))
    assert big.claim("x", [1.0, 1.1, 0.9], above=0.0, at_scale_only=True).kind == "claim"
    assert big["x"].holds


def test_crosscheck_compares_verdicts_not_digits(tmp_path, capsys):
    """Two records whose numbers move but whose verdicts agree pass; a verdict that flips fails."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("crosscheck", Path(config.ROOT) / "scripts" / "crosscheck.py")
    cc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cc)
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, values in ((a, [1.0, 2.0, 3.0]), (b, [1.01, 2.0, 2.99])):
        folder.mkdir()
        c = claims.Claims(_cfg())
        c.claim("gap", values, above=0.2)
        c.report("measured", values)
        (folder / "99_test.json").write_text(json.dumps(c.record()))
    assert cc.compare(a, b, ["99_test"]) == 0
    c = claims.Claims(_cfg())
    c.claim("gap", [1.0, 2.0, 3.5], above=0.2)  # lower bound below 0.2 now: the verdict flips
    c.report("measured", [1.0, 2.0, 3.5])
    (b / "99_test.json").write_text(json.dumps(c.record()))
    assert cc.compare(a, b, ["99_test"]) == 1
    assert cc.compare(a, b, ["99_missing"]) == 1
    assert "DIFFERS" in capsys.readouterr().out
