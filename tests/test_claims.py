"""Tests of paperlib.claims: the verdict rules on hand cases, the schema, and a round trip through a real run."""
import math

import numpy as np
import pandas as pd
import pytest

from paperlib.claims import (CLAIMS_COLUMNS, LEGACY_NOTE, VERDICTS, Claim, PaperValue, claim_from_interval,
                             claim_within, claims_table, format_interval, ordering_claim, paper_values_table,
                             paper_vs_ours, verdict_from_interval, within, write_claims)
from paperlib.core import ConfigError, start_run


def test_schema_constants():
    assert CLAIMS_COLUMNS == ("claim", "origin", "paper", "ours", "interval", "verdict", "evidence", "note")
    assert VERDICTS == ("holds", "does not hold", "inconclusive", "by construction", "not testable here")


# ---------------------------------------------------------------- verdict rules

@pytest.mark.parametrize("lo, hi, greater, less", [
    (0.01, 0.05, "holds", "does not hold"),          # wholly above 0
    (-0.05, -0.01, "does not hold", "holds"),        # wholly below
    (-0.01, 0.02, "inconclusive", "inconclusive"),   # straddles
    (0.0, 0.03, "inconclusive", "inconclusive"),     # touches the threshold: strictly on neither side
    (-0.03, 0.0, "inconclusive", "inconclusive"),
    (0.0, 0.0, "inconclusive", "inconclusive"),      # a point interval on the threshold (identical predictors)
    (math.nan, math.nan, "inconclusive", "inconclusive"),   # no interval (one seed)
])
def test_verdict_from_interval_hand_cases(lo, hi, greater, less):
    assert verdict_from_interval(lo, hi, ">", 0.0) == greater
    assert verdict_from_interval(lo, hi, "<", 0.0) == less


def test_verdict_with_a_non_zero_threshold_and_bad_input():
    assert verdict_from_interval(0.76, 0.86, ">", 0.25) == "holds"
    assert verdict_from_interval(0.76, 0.86, ">", 0.9) == "does not hold"
    assert verdict_from_interval(0.76, 0.86, ">", 0.86) == "inconclusive"
    with pytest.raises(ConfigError, match="side"):
        verdict_from_interval(0.1, 0.2, ">=", 0)
    with pytest.raises(ConfigError, match="lo > hi"):
        verdict_from_interval(0.3, 0.2, ">", 0)
    with pytest.raises(ConfigError, match="numbers"):
        verdict_from_interval("a", 0.2, ">", 0)


@pytest.mark.parametrize("lo, hi, verdict", [
    (0.80, 0.84, "holds"),            # inside [0.79, 0.85]
    (0.79, 0.85, "holds"),            # exactly the band: edges count as within
    (0.70, 0.75, "does not hold"),    # wholly below the band
    (0.86, 0.90, "does not hold"),    # wholly above
    (0.70, 0.79, "inconclusive"),     # touches the lower edge from outside
    (0.78, 0.84, "inconclusive"),     # straddles an edge
    (0.70, 0.95, "inconclusive"),     # wider than the band
])
def test_within_hand_cases(lo, hi, verdict):
    assert within(lo, hi, 0.82, 0.03) == verdict


def test_within_bad_margin():
    with pytest.raises(ConfigError, match="margin"):
        within(0.1, 0.2, 0.15, -1)


def test_format_interval():
    assert format_interval(0.8123, 0.8645, 2) == "[0.81, 0.86]"
    assert format_interval(0.8123, 0.8645) == "[0.812, 0.865]"
    assert format_interval(0.8123, 0.8645, 1, scale=100, unit=" %") == "[81.2, 86.5] %"
    assert format_interval(np.nan, np.nan) == "none yet"
    with pytest.raises(ConfigError):
        format_interval(0.1, 0.2, digits=-1)


# ---------------------------------------------------------------- one-line claims

def test_ordering_claim_from_a_paired_difference():
    c = ordering_claim("A > B", (0.031, 0.012, 0.050), paper="A best")
    assert (c.verdict, c.interval, c.ours, c.origin) == ("holds", "[0.012, 0.050]", "A - B = +0.031", "paper")
    assert ordering_claim("A > B", (-0.052, -0.009)).verdict == "does not hold"
    assert ordering_claim("A > B", (0.0, 0.0, 0.0)).verdict == "inconclusive"
    assert ordering_claim("A < B", (-0.03, -0.05, -0.01), side="<").verdict == "holds"


def test_ordering_claim_on_identical_predictors_from_stats():
    from paperlib.stats import paired_difference_ci
    ok = np.arange(40) % 3 == 0
    c = ordering_claim("A > A", paired_difference_ci(ok, ok))
    assert (c.verdict, c.interval) == ("inconclusive", "[0.000, 0.000]")


def test_claim_from_interval_and_claim_within():
    c = claim_from_interval("above chance", (0.81, 0.76, 0.86), ">", 0.25, origin="ours", digits=2)
    assert (c.verdict, c.ours, c.interval) == ("holds", "0.81", "[0.76, 0.86]")
    c = claim_within("as in Table I", (0.80, 0.78, 0.83), 0.82, 0.05, scale=100, digits=1, unit=" %")
    assert (c.verdict, c.paper, c.ours, c.interval) == ("holds", "82.0 ± 5.0 %", "80.0 %", "[78.0, 83.0] %")
    assert claim_within("x", (0.1, 0.2), 0.5, 0.1).verdict == "does not hold"
    with pytest.raises(ConfigError, match="estimate, lo, hi"):
        claim_from_interval("x", 0.5)


# ---------------------------------------------------------------- the table and its validation

def test_claims_table_columns_and_order():
    claims = [ordering_claim("A > B", (0.03, 0.01, 0.05)),
              {"claim": "guaranteed", "origin": "ours", "verdict": "by construction", "note": "a max over a superset"}]
    df = claims_table(claims)
    assert tuple(df.columns) == CLAIMS_COLUMNS and len(df) == 2
    assert df.verdict.tolist() == ["holds", "by construction"]
    assert df.interval.tolist() == ["[0.010, 0.050]", "none yet"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(origin="authors"), "origin"),
    (dict(verdict="yes"), "verdict"),
    (dict(verdict="holds"), "legacy=True"),                    # a verdict without an interval
    (dict(verdict="does not hold", interval="none yet"), "legacy=True"),
    (dict(verdict="not testable here"), "reason"),
    (dict(interval="[0.1, 0.2]", legacy=True), "drop legacy"),
    (dict(ours=0.83), "text"),
    (dict(claim=" "), "empty"),
])
def test_bad_claims_are_rejected_with_a_fix(kwargs, match):
    base = dict(claim="A > B", origin="paper")
    with pytest.raises(ConfigError, match=match) as e:
        Claim(**{**base, **kwargs})
    assert e.value.fix
    with pytest.raises(ConfigError, match=match):                  # and as a mapping through claims_table
        claims_table([{**base, **kwargs}])


def test_claims_table_revalidates_a_mutated_claim_and_rejects_other_rows():
    c = Claim("A > B", "paper")
    c.verdict = "maybe"
    with pytest.raises(ConfigError, match="verdict"):
        claims_table([c])
    with pytest.raises(ConfigError, match="unknown keys"):
        claims_table([{"claim": "x", "origin": "ours", "seconds": 3.0}])
    with pytest.raises(ConfigError, match="list"):
        claims_table(Claim("A > B", "paper"))
    with pytest.raises(ConfigError, match="not a Claim"):
        claims_table([("A > B", "paper")])


def test_legacy_verdict_is_allowed_and_marked():
    df = claims_table([Claim("CNN slower", "paper", verdict="holds", legacy=True),
                       Claim("NN faster", "paper", verdict="does not hold", legacy=True, note="one timing")])
    assert df.interval.tolist() == ["none yet", "none yet"]
    assert df.note.tolist() == [LEGACY_NOTE, f"one timing ({LEGACY_NOTE})"]
    assert "legacy" not in df.columns


def test_write_claims_round_trip_through_a_real_run(tmp_path):
    run = start_run("99_claims_test", profile="smoke", seed=0, device="cpu", results_dir=tmp_path)
    claims = [ordering_claim("A > B", (0.031, 0.012, 0.050), paper="A best", evidence="paired bootstrap, 300 clips"),
              claim_within("accuracy as in Table I", (0.80, 0.78, 0.83), 0.82, 0.05),
              Claim("slower", "paper", paper="yes", ours="41 s vs 12 s", verdict="holds", legacy=True),
              Claim("real recordings", "paper", verdict="not testable here", note="none here, see 01_data")]
    df = write_claims(run, claims, caption="Test claims.")
    final = run.commit()
    back = pd.read_csv(final / "tables" / "claims.csv", keep_default_na=False, dtype=str)
    assert tuple(back.columns) == CLAIMS_COLUMNS
    pd.testing.assert_frame_equal(back, df.astype(str))
    md = (final / "tables" / "claims.md").read_text()
    assert "Test claims." in md and "holds when the whole 95 % interval" in md


# ---------------------------------------------------------------- paper values

VALUES = [PaperValue("004", "Table I", "CNN accuracy", 91.2, "%"),
          PaperValue("004", "§IV", "CNN accuracy", 92.1, "%", as_printed=True, note="text disagrees"),
          PaperValue("004", "Table I", "NN accuracy", 85.0, "%"),
          PaperValue("004", "Fig. 4", "best optimiser", "Adam")]


def test_paper_values_table():
    df = paper_values_table(VALUES)
    assert tuple(df.columns) == ("paper", "where", "name", "value", "unit", "as_printed", "note")
    assert df.as_printed.tolist() == [False, True, False, False] and df.paper.tolist() == ["004"] * 4
    with pytest.raises(ConfigError, match="PaperValue"):
        paper_values_table([("004", "Table I", "x", 1.0)])
    with pytest.raises(ConfigError, match="where"):
        PaperValue("004", "", "x", 1.0)
    with pytest.raises(ConfigError, match="number or text"):
        PaperValue("004", "Table I", "x", [1.0])


def test_paper_vs_ours():
    df = paper_vs_ours(VALUES, {"CNN accuracy": 90.4, "best optimiser": "Adam"})
    assert tuple(df.columns[:5]) == ("name", "where", "paper", "ours", "difference")
    assert df.difference.iloc[0] == pytest.approx(-0.8) and df.difference.iloc[1] == pytest.approx(-1.7)
    assert np.isnan(df.ours.iloc[2]) and np.isnan(df.difference.iloc[2])     # no value of ours yet
    assert np.isnan(df.difference.iloc[3]) and df.ours.iloc[3] == "Adam"     # text: no difference
    with pytest.raises(ConfigError, match="no PaperValue"):
        paper_vs_ours(VALUES, {"CNN acc": 90.0})
