"""The quality gate: parsing gate specs and judging candidates against thresholds and the champion."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from aidevops_ext import splitting, trainer
from aidevops_ext.errors import ConfigError
from aidevops_ext.evaluation import compare, evaluate
from aidevops_ext.gate import Check, GateDecision, Threshold, evaluate_gate, parse_gate


def _kinds(decision: GateDecision) -> dict[str, bool]:
    return {f"{c.metric}:{c.kind}": c.passed for c in decision.checks}


# --- parse_gate -------------------------------------------------------------------------


def test_parse_mapping_form():
    ts = parse_gate(
        {
            "accuracy": {"threshold": 0.9, "min_absolute_change": -0.005, "greater_is_better": True},
            "log_loss": {"threshold": 0.5, "greater_is_better": False},
        }
    )
    assert ts == [
        Threshold("accuracy", threshold=0.9, min_absolute_change=-0.005, greater_is_better=True),
        Threshold("log_loss", threshold=0.5, greater_is_better=False),
    ]


def test_parse_list_form_and_shorthand():
    ts = parse_gate([{"metric": "f1_macro", "min_relative_change": 0.01}, {"metric": "r2", "threshold": 0}])
    assert ts[0] == Threshold("f1_macro", min_relative_change=0.01)
    assert ts[1].threshold == 0.0
    assert parse_gate({"accuracy": 0.8}) == [Threshold("accuracy", threshold=0.8)]


def test_parse_empty():
    assert parse_gate(None) == []
    assert parse_gate({}) == []
    assert parse_gate([]) == []


def test_losses_default_to_lower_is_better():
    ts = {t.metric: t for t in parse_gate({"log_loss": {"threshold": 0.5}, "rmse": 3, "val_error": 1, "accuracy": 0.9})}
    assert ts["log_loss"].greater_is_better is False
    assert ts["rmse"].greater_is_better is False
    assert ts["val_error"].greater_is_better is False
    assert ts["accuracy"].greater_is_better is True
    # An explicit setting always wins.
    assert parse_gate({"log_loss": {"threshold": 0.5, "greater_is_better": True}})[0].greater_is_better is True


@pytest.mark.parametrize(
    "section, words",
    [
        ({"accuracy": {"treshold": 0.9}}, ["treshold", "threshold", "min_absolute_change", "greater_is_better"]),
        ({"accuracy": {"threshold": "high"}}, ["threshold", "finite number"]),
        ({"accuracy": {"threshold": True}}, ["threshold", "finite number"]),
        ({"accuracy": {"threshold": float("nan")}}, ["threshold", "finite number"]),
        ({"accuracy": {"min_relative_change": float("inf")}}, ["min_relative_change"]),
        ({"accuracy": {"threshold": 0.9, "greater_is_better": "yes"}}, ["greater_is_better", "true or false"]),
        ({"accuracy": {}}, ["no criterion"]),
        ({"accuracy": {"greater_is_better": True}}, ["no criterion"]),
        ({"accuracy": [0.9]}, ["accuracy", "mapping"]),
        ({"accuracy": "0.9"}, ["accuracy", "mapping"]),
        ({"bad;name": {"threshold": 1}}, ["bad;name", "invalid"]),
        ({3: {"threshold": 1}}, ["invalid"]),
        ({"": {"threshold": 1}}, ["invalid"]),
        ([{"threshold": 0.9}], ["metric"]),
        (["accuracy"], ["metric"]),
        ([{"metric": "acc", "threshold": 1}, {"metric": "acc", "threshold": 2}], ["acc", "twice"]),
        ("accuracy >= 0.9", ["mapping", "str"]),
        (0.9, ["mapping", "float"]),
    ],
)
def test_parse_rejects_hostile_configs(section, words):
    with pytest.raises(ConfigError) as info:
        parse_gate(section)
    message = str(info.value)
    for word in words:
        assert word in message
    assert message.count("\n") == 0


# --- thresholds -------------------------------------------------------------------------


def test_threshold_pass_and_fail():
    ts = [Threshold("accuracy", threshold=0.9)]
    assert evaluate_gate(ts, {"accuracy": 0.95}).passed
    assert evaluate_gate(ts, {"accuracy": 0.9}).passed  # the boundary passes (>=)
    failed = evaluate_gate(ts, {"accuracy": 0.85})
    assert not failed.passed
    (check,) = failed.checks
    assert check == Check("accuracy", "threshold", 0.9, 0.85, False, check.reason)
    assert "0.85" in check.reason and "0.9" in check.reason
    assert failed.reasons == [check.reason]


def test_threshold_lower_is_better():
    ts = [Threshold("log_loss", threshold=0.5, greater_is_better=False)]
    assert evaluate_gate(ts, {"log_loss": 0.3}).passed
    assert evaluate_gate(ts, {"log_loss": 0.5}).passed
    assert not evaluate_gate(ts, {"log_loss": 0.6}).passed
    assert not evaluate_gate(ts, {"log_loss": math.inf}).passed


def test_missing_metric_fails_with_reason():
    d = evaluate_gate(
        [Threshold("accuracy", threshold=0.5), Threshold("f1_macro", min_absolute_change=0)], {"accuracy": 0.9}
    )
    assert not d.passed
    (failed,) = d.failed_checks
    assert failed.metric == "f1_macro" and failed.kind == "missing"
    assert "f1_macro" in d.reasons[0]


def test_nan_candidate_fails():
    d = evaluate_gate([Threshold("accuracy", threshold=0.5)], {"accuracy": float("nan")})
    assert not d.passed
    assert d.checks[0].kind == "missing"


def test_no_champion_judged_on_thresholds_alone():
    ts = [Threshold("accuracy", threshold=0.8, min_absolute_change=0.05, min_relative_change=0.1)]
    d = evaluate_gate(ts, {"accuracy": 0.81})
    assert d.passed
    assert [c.kind for c in d.checks] == ["threshold"]
    assert any("No champion" in r for r in d.reasons)
    assert d.champion is None and d.champion_version is None


def test_empty_gate_passes():
    d = evaluate_gate([], {"accuracy": 0.1})
    assert d.passed and d.checks == []
    assert d.reasons


# --- comparison with the champion -----------------------------------------------------------


def test_absolute_change_must_improve_by_at_least():
    ts = [Threshold("accuracy", min_absolute_change=0.01)]
    assert evaluate_gate(ts, {"accuracy": 0.92}, {"accuracy": 0.90}, "1").passed
    assert evaluate_gate(ts, {"accuracy": 0.91}, {"accuracy": 0.90}, "1").passed
    d = evaluate_gate(ts, {"accuracy": 0.905}, {"accuracy": 0.90}, "1")
    assert not d.passed
    check = d.checks[0]
    assert check.kind == "absolute_change" and check.required == 0.01
    assert check.actual == pytest.approx(0.005)
    assert "v1" in check.reason


def test_negative_absolute_change_is_a_tolerance():
    ts = [Threshold("accuracy", threshold=0.8, min_absolute_change=-0.005)]
    champion = {"accuracy": 0.905}
    # Losing exactly half a point is tolerated, despite float rounding (0.9 - 0.905 != -0.005).
    assert evaluate_gate(ts, {"accuracy": 0.9}, champion, "2").passed
    assert evaluate_gate(ts, {"accuracy": 0.903}, champion, "2").passed
    worse = evaluate_gate(ts, {"accuracy": 0.89}, champion, "2")
    assert not worse.passed
    assert _kinds(worse) == {"accuracy:threshold": True, "accuracy:absolute_change": False}
    assert "tolerated" in worse.reasons[0]


def test_absolute_change_lower_is_better_is_mirrored():
    ts = [Threshold("log_loss", min_absolute_change=-0.01, greater_is_better=False)]
    champion = {"log_loss": 0.30}
    assert evaluate_gate(ts, {"log_loss": 0.25}, champion).passed  # better
    assert evaluate_gate(ts, {"log_loss": 0.305}, champion).passed  # within tolerance
    d = evaluate_gate(ts, {"log_loss": 0.35}, champion)
    assert not d.passed
    assert d.checks[0].actual == pytest.approx(-0.05)  # improvement is negative: a regression


def test_relative_change():
    ts = [Threshold("accuracy", min_relative_change=0.05)]
    assert evaluate_gate(ts, {"accuracy": 0.84}, {"accuracy": 0.80}).passed  # +5%
    d = evaluate_gate(ts, {"accuracy": 0.83}, {"accuracy": 0.80})
    assert not d.passed
    assert d.checks[0].actual == pytest.approx(0.0375)
    assert "%" in d.checks[0].reason


def test_relative_change_lower_is_better_and_negative_baseline():
    ts = [Threshold("mse", min_relative_change=-0.1, greater_is_better=False)]
    assert evaluate_gate(ts, {"mse": 1.09}, {"mse": 1.0}).passed  # 9% worse, 10% tolerated
    assert not evaluate_gate(ts, {"mse": 1.2}, {"mse": 1.0}).passed
    # A negative baseline divides by its magnitude, so the sign of the change still means better/worse.
    r2 = [Threshold("r2", min_relative_change=0.0)]
    assert evaluate_gate(r2, {"r2": -0.5}, {"r2": -1.0}).passed
    assert not evaluate_gate(r2, {"r2": -1.5}, {"r2": -1.0}).passed


def test_relative_change_zero_baseline():
    ts = [Threshold("accuracy", min_relative_change=0.0)]
    assert evaluate_gate(ts, {"accuracy": 0.0}, {"accuracy": 0.0}).passed  # a tie
    assert evaluate_gate(ts, {"accuracy": 0.1}, {"accuracy": 0.0}).passed
    d = evaluate_gate(
        [Threshold("loss", min_relative_change=0.0, greater_is_better=False)], {"loss": 0.1}, {"loss": 0.0}
    )
    assert not d.passed
    assert d.checks[0].actual == -math.inf
    json.dumps(d.to_dict(), allow_nan=False)  # non-finite values do not leak into JSON


def test_champion_without_the_metric_skips_comparison():
    ts = [Threshold("f1_macro", threshold=0.5, min_absolute_change=0.0)]
    d = evaluate_gate(ts, {"f1_macro": 0.7}, {"accuracy": 0.9}, "4")
    assert d.passed
    skipped = [c for c in d.checks if c.kind == "absolute_change"][0]
    assert skipped.actual is None and "skipped" in skipped.reason


def test_all_checks_must_pass():
    ts = [
        Threshold("accuracy", threshold=0.9, min_absolute_change=-0.01),
        Threshold("log_loss", threshold=0.5, greater_is_better=False),
    ]
    d = evaluate_gate(ts, {"accuracy": 0.95, "log_loss": 0.6}, {"accuracy": 0.94, "log_loss": 0.4}, "3")
    assert not d.passed
    assert _kinds(d) == {"accuracy:threshold": True, "accuracy:absolute_change": True, "log_loss:threshold": False}
    assert len(d.reasons) == 1


# --- reporting --------------------------------------------------------------------------


def _sample() -> GateDecision:
    ts = parse_gate({"accuracy": {"threshold": 0.9, "min_absolute_change": -0.005}, "log_loss": {"threshold": 0.5}})
    return evaluate_gate(
        ts, {"accuracy": 0.93, "log_loss": 0.2, "f1_macro": 0.9}, {"accuracy": 0.94, "log_loss": 0.25}, "7"
    )


def test_to_tags_are_flat_strings():
    d = _sample()
    tags = d.to_tags()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    assert tags["gate.passed"] == "false"
    assert tags["gate.champion_version"] == "7"
    assert tags["gate.metric.accuracy.passed"] == "false"
    assert tags["gate.metric.log_loss.passed"] == "true"
    assert tags["gate.metric.accuracy.candidate"] == "0.93"
    assert tags["gate.metric.accuracy.champion"] == "0.94"
    assert "accuracy" in tags["gate.reasons"]
    assert GateDecision.from_dict(json.loads(tags["gate.decision"])) == d


def test_dict_round_trip():
    d = _sample()
    again = GateDecision.from_dict(json.loads(json.dumps(d.to_dict())))
    assert again == d
    assert again.reasons == d.reasons
    with pytest.raises(ConfigError):
        GateDecision.from_dict({"checks": []})


def test_markdown_report():
    md = _sample().to_markdown()
    assert md.startswith("# Quality gate: FAILED")
    assert "champion version 7" in md
    assert "| accuracy | absolute_change | -0.005 | -0.01 | **FAIL** |" in md
    assert "| accuracy | 0.93 | 0.94 | -0.01 |" in md
    assert "| log_loss | 0.2 | 0.25 | -0.05 |" in md
    assert "| f1_macro | 0.9 |  |  |" in md
    first = evaluate_gate(parse_gate({"accuracy": 0.5}), {"accuracy": 0.6}).to_markdown()
    assert first.startswith("# Quality gate: PASSED") and "No champion" in first


def test_gate_module_does_not_import_mlflow():
    code = "import sys, aidevops_ext.gate; assert 'mlflow' not in sys.modules; assert 'pandas' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- fair comparison: the rows both models were scored on ---------------------------------

ACC = parse_gate({"accuracy": {"threshold": 0.5, "min_absolute_change": -0.005}})


def _rows(
    test: int, compared: int, champion_trained: int = 0, candidate_trained: int = 0, lineage: bool = True
) -> dict:
    return {
        "test_rows": test,
        "compared_rows": compared,
        "champion_trained": champion_trained,
        "candidate_trained": candidate_trained,
        "champion_lineage": lineage,
    }


def test_overlap_leaving_too_few_rows_refuses_with_one_sentence():
    d = evaluate_gate(ACC, {"accuracy": 0.99}, {"accuracy": 0.5}, "3", comparison=_rows(360, 40, champion_trained=320))
    assert not d.passed
    (check,) = d.checks  # no metric is judged on 40 rows
    assert (check.metric, check.kind, check.required, check.actual) == ("rows", "overlap", 100.0, 40.0)
    (reason,) = d.reasons
    assert reason.startswith("Refused: only 40 of 360 test rows are unseen by both the candidate and champion v3")
    assert reason.count(".") == 1 and reason.endswith(".")


def test_overlap_leaving_enough_rows_is_judged_on_those_rows():
    d = evaluate_gate(
        ACC, {"accuracy": 0.95}, {"accuracy": 0.951}, "3", comparison=_rows(360, 250, champion_trained=110)
    )
    assert d.passed and {c.kind for c in d.checks} == {"threshold", "absolute_change"}
    assert d.compared_on() == (
        "the same 250 of 360 test rows for candidate and champion, none of which either trained on"
        " (left out: 110 the champion trained on)"
    )
    assert "Scored on the same 250 of 360 test rows" in d.to_markdown()


def test_the_minimum_is_half_a_small_test_split_and_no_overlap_never_refuses():
    # diabetes-sized: 88 test rows; the minimum is 44, and an untouched split is judged as it is.
    assert evaluate_gate(ACC, {"accuracy": 0.9}, {"accuracy": 0.9}, "1", comparison=_rows(88, 88)).passed
    assert evaluate_gate(ACC, {"accuracy": 0.9}, {"accuracy": 0.9}, "1", comparison=_rows(88, 50, 38)).passed
    assert not evaluate_gate(ACC, {"accuracy": 0.9}, {"accuracy": 0.9}, "1", comparison=_rows(88, 43, 45)).passed
    # no champion: the candidate's own training rows can leave too few as well
    d = evaluate_gate(ACC, {"accuracy": 0.9}, comparison=_rows(360, 10, candidate_trained=350, lineage=None))
    assert not d.passed and "unseen by the candidate (" in d.reasons[0]


def test_a_champion_without_lineage_is_compared_but_says_so():
    d = evaluate_gate(ACC, {"accuracy": 0.95}, {"accuracy": 0.95}, "1", comparison=_rows(360, 360, lineage=False))
    assert d.passed
    assert "Champion v1 recorded no training row keys" in d.reasons[-1]


def test_comparison_travels_in_tags_dict_and_headline():
    d = evaluate_gate(ACC, {"accuracy": 0.9638}, {"accuracy": 0.9499}, "1", comparison=_rows(359, 359))
    tags = d.to_tags()
    assert tags["gate.rows.compared_rows"] == "359" and tags["gate.rows.champion_lineage"] == "true"
    again = GateDecision.from_dict(json.loads(tags["gate.decision"]))
    assert again == d and again.comparison == _rows(359, 359)
    assert d.headline() == "accuracy 0.9638 vs v1 0.9499 on 359 rows"
    assert evaluate_gate(ACC, {"accuracy": 0.9}).headline() == "accuracy 0.9000"


def test_compare_scores_both_models_on_the_same_unseen_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    keys = splitting.row_keys(X)
    model = trainer.MLPClassifier(hidden_layer_sizes=(4,), epochs=3, random_state=0, backend="numpy").fit(
        X[:200], y[:200], progress=False
    )
    test = slice(200, 400)
    # The champion trained on test rows 200..259, the candidate on 380..399 (live rows, say).
    out = compare(
        model,
        model,
        X[test],
        y[test],
        test_keys=keys[test],
        candidate_keys=keys[380:],
        champion_keys=keys[:260],
        champion_version="2",
    )
    assert out["comparison"] == {
        "test_rows": 200,
        "compared_rows": 120,
        "candidate_trained": 20,
        "champion_trained": 60,
        "champion_lineage": True,
    }
    assert out["candidate"] == out["champion"] == evaluate(model, X[260:380], y[260:380])
    first = compare(model, None, X[test], y[test], test_keys=keys[test], candidate_keys=keys[:200])
    assert first["champion"] is None and first["comparison"]["compared_rows"] == 200
    assert first["comparison"]["champion_lineage"] is None
