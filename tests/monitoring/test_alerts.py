"""monitoring.alerts: the monitor: section, snapshots from real reports, and alerts that fire and resolve."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import yaml

from aidevops_ext.errors import ConfigError
from aidevops_ext.monitoring import alerts as al
from aidevops_ext.monitoring import rules
from aidevops_ext.monitoring.drift import feature_drift, prediction_drift
from aidevops_ext.monitoring.profile import build_profile
from aidevops_ext.monitoring.quality import accuracy_window, join_feedback


def config() -> al.MonitorConfig:
    """The `monitor:` section that monitoring/rules.py's docstring shows, parsed: these tests run on the documented
    example, so it stays one that parses and behaves as they check (its thresholds are theirs)."""
    example = textwrap.dedent(rules.__doc__.split("\n\n")[1])
    return al.parse_monitor(yaml.safe_load(example)["monitor"])


def step(cfg, snapshot, state, now):
    """One evaluation with the state round-tripped through JSON, as the caller persists it."""
    new, events = al.evaluate_rules(cfg, snapshot, json.loads(json.dumps(state)), now)
    json.dumps(new, allow_nan=False)
    json.dumps(events, allow_nan=False)
    return new, events


# --------------------------------------------------------------------------- parsing


def test_the_spec_example_parses():
    cfg = config()
    assert (cfg.window, cfg.min_rows, len(cfg.rules)) == (500, 200, 4)
    drift_rule = cfg.rules[0]
    assert drift_rule.per_feature and drift_rule.for_windows == 2 and drift_rule.action == "retrain"
    assert cfg.rules[3] == al.Rule("latency", "latency_p99_ms", ">", 50.0)
    assert cfg.drift_options()["min_rows"] == 200
    assert al.parse_monitor(cfg.to_dict()) == cfg  # the dict form round-trips
    assert al.parse_monitor(None) == al.MonitorConfig()


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"name": "x", "metric": "psii", "op": ">", "threshold": 1}, "did you mean 'psi'"),
        ({"name": "x", "metric": "error_rate", "op": "=>", "threshold": 1}, "op '=>' is not valid"),
        ({"name": "x", "metric": "error_rate", "op": ">"}, "needs a threshold"),
        ({"name": "x", "metric": "error_rate", "op": ">", "threshold": "1%"}, "threshold must be a finite number"),
        ({"name": "x", "metric": "psi", "op": ">", "threshold": 0.25}, "is per feature"),
        ({"name": "x", "metric": "error_rate", "op": ">", "threshold": 1, "any_feature": True}, "is not per feature"),
        ({"name": "x", "metric": "error_rate", "op": ">", "threshold": 1, "for_windows": 0}, "for_windows must be"),
        ({"name": "x", "metric": "error_rate", "op": ">", "threshold": 1, "action": "reboot"}, "action 'reboot'"),
        (
            {"name": "x", "metric": "error_rate", "op": ">", "threshold": 1, "for_window": 2},
            "did you mean 'for_windows'",
        ),
        ({"metric": "error_rate", "op": ">", "threshold": 1}, "needs a name"),
        ("psi > 0.25", "must be a mapping"),
    ],
)
def test_bad_rules_are_refused_with_a_clear_sentence(rule, message):
    with pytest.raises(ConfigError, match=message):
        al.parse_monitor({"rules": [rule]})


def test_bad_sections_are_refused():
    ok = {"name": "e", "metric": "error_rate", "op": ">", "threshold": 0.01}
    with pytest.raises(ConfigError, match="two rules are named 'e'"):
        al.parse_monitor({"rules": [ok, ok]})
    with pytest.raises(ConfigError, match="below min_rows"):
        al.parse_monitor({"window": 100})
    with pytest.raises(ConfigError, match="unknown keys \\['windows'\\]"):
        al.parse_monitor({"windows": 500})
    with pytest.raises(ConfigError, match="psi_bands must increase"):
        al.parse_monitor({"psi_bands": [0.25, 0.1]})
    with pytest.raises(ConfigError, match="rules must be a list"):
        al.parse_monitor({"rules": ok})


# --------------------------------------------------------------------------- the state machine


def test_fires_after_consecutive_breaches_and_resolves_with_since_times():
    cfg = config()
    rule = [r for r in cfg.rules if r.name == "feature-drift"]
    psi = lambda v: {"psi": {"a": 0.01, "b": v}}  # noqa: E731
    state, ev = step(rule, psi(0.3), {}, 100)
    assert ev == [] and state["feature-drift"]["state"] == "ok" and state["feature-drift"]["breaches"] == 1
    state, ev = step(rule, psi(0.05), state, 200)  # interrupted: the count starts again
    assert ev == [] and state["feature-drift"]["breaches"] == 0
    state, _ = step(rule, psi(0.3), state, 300)
    state, ev = step(rule, psi(0.4), state, 400)
    assert [e["event"] for e in ev] == ["fired"] and ev[0]["features"] == ["b"] and ev[0]["action"] == "retrain"
    assert ev[0]["value"] == 0.4 and "on b for 2 window(s)" in ev[0]["message"]
    assert state["feature-drift"]["state"] == "firing" and state["feature-drift"]["since"] == 400
    state, ev = step(rule, psi(0.5), state, 500)  # still firing: no new event, since unchanged
    assert ev == [] and state["feature-drift"]["since"] == 400
    state, ev = step(rule, psi(0.1), state, 600)
    assert [e["event"] for e in ev] == ["resolved"] and state["feature-drift"]["state"] == "resolved"
    assert state["feature-drift"]["since"] == 600


def test_no_data_changes_nothing_and_a_window_counts_once():
    rules = [al.parse_rule({"name": "acc", "metric": "accuracy_lower", "op": "<", "threshold": 0.9, "for_windows": 2})]
    state, _ = step(rules, {"window": 1, "accuracy_lower": 0.8}, {}, 10)
    state, ev = step(rules, {"window": 1, "accuracy_lower": 0.8}, state, 20)  # the same window again
    assert ev == [] and state["acc"]["breaches"] == 1
    state, ev = step(rules, {"window": 2, "accuracy_lower": None}, state, 30)  # insufficient data
    assert ev == [] and state["acc"]["breaches"] == 1 and state["acc"]["no_data"]
    state, ev = step(rules, {"window": 3, "accuracy_lower": 0.85}, state, 40)
    assert [e["event"] for e in ev] == ["fired"]
    state, ev = step(rules, {"window": 4}, state, 50)  # metric absent: the alert stays firing
    assert ev == [] and state["acc"]["state"] == "firing"


def test_resolve_windows_and_a_removed_rule_closes_its_alert():
    rules = [
        al.parse_rule({"name": "lat", "metric": "latency_p99_ms", "op": ">", "threshold": 50, "resolve_windows": 2})
    ]
    state, ev = step(rules, {"latency_p99_ms": 80}, {}, 1)
    assert ev[0]["event"] == "fired"
    state, ev = step(rules, {"latency_p99_ms": 20}, state, 2)
    assert ev == [] and state["lat"]["state"] == "firing" and state["lat"]["clears"] == 1
    state, ev = step(rules, {"latency_p99_ms": 90}, state, 3)  # breach again: the clear count restarts
    state, ev = step(rules, {"latency_p99_ms": 20}, state, 4)
    state, ev = step(rules, {"latency_p99_ms": 20}, state, 5)
    assert [e["event"] for e in ev] == ["resolved"]
    state, _ = step(rules, {"latency_p99_ms": 99}, state, 6)
    new, ev = step([], {}, state, 7)
    assert new == {} and ev[0]["event"] == "resolved" and "removed" in ev[0]["message"]


def test_one_feature_rule_reads_only_that_feature():
    rule = [al.parse_rule({"name": "f", "metric": "mean_shift_std", "op": "<", "threshold": -0.5, "feature": "b"})]
    state, ev = step(rule, {"mean_shift_std": {"a": -3.0, "b": 0.0}}, {}, 1)
    assert ev == [] and state["f"]["value"] == 0.0
    state, ev = step(rule, {"mean_shift_std": {"a": 0.0, "b": -0.7}}, state, 2)
    assert ev[0]["features"] == ["b"]


# --------------------------------------------------------------------------- snapshots from real data, end to end


def test_request_stats_match_numpy():
    rng = np.random.default_rng(0)
    lat = rng.lognormal(2, 0.5, 5000)
    err = rng.random(5000) < 0.02
    s = al.request_stats(lat, err)
    assert s["requests"] == 5000 and s["errors"] == err.sum() and s["error_rate"] == pytest.approx(err.mean())
    assert s["error_rate_lower"] < s["error_rate"] < s["error_rate_upper"]
    assert s["latency_p99_ms"] == pytest.approx(np.percentile(lat, 99)) and s["latency_max_ms"] == lat.max()
    empty = al.request_stats([], [])
    assert empty["requests"] == 0 and empty["error_rate"] is None and empty["latency_p99_ms"] is None


def test_alerts_fire_and_resolve_on_real_drift_quality_and_traffic():
    cfg = config()
    rng = np.random.default_rng(42)
    ref = rng.normal(size=(5000, 4))
    prof = build_profile(ref, predictions=rng.integers(0, 2, 5000))

    def window(i: int, shift: float, p_correct: float, slow: bool, fail: float) -> dict:
        X = rng.normal(size=(cfg.window, 4))
        X[:, 2] += shift
        n = 400
        y = rng.integers(0, 2, n)
        pred = np.where(rng.random(n) < p_correct, y, 1 - y)
        ids = np.arange(n)
        joined = join_feedback(
            {"request_id": ids, "timestamp": ids.astype(float), "prediction": pred},
            {"request_id": ids, "label": y, "label_timestamp": ids + 30.0},
        )
        lat = rng.lognormal(np.log(60 if slow else 8), 0.3, 2000)
        return al.build_snapshot(
            drift=feature_drift(X, prof, **cfg.drift_options()),
            prediction=prediction_drift(pred, prof, **cfg.drift_options()),
            quality=accuracy_window(joined, last=400, min_labels=cfg.min_labels),
            latency_ms=lat,
            errors=rng.random(2000) < fail,
            window=i,
        )

    plan = [  # (drift shift, accuracy, slow, error share) per window
        (0.0, 0.97, False, 0.0),
        (1.5, 0.97, False, 0.0),  # drift starts: one window is not enough
        (1.5, 0.80, True, 0.05),  # second drifting window: fires; so do accuracy, latency and errors
        (0.0, 0.97, False, 0.0),  # all clear
    ]
    state: dict = {}
    log = []
    for i, args in enumerate(plan):
        snap = window(i, *args)
        json.dumps(snap, allow_nan=False)
        state, events = step(cfg, snap, state, 1000.0 + i)
        log.append(sorted((e["rule"], e["event"]) for e in events))
    assert log[0] == [] and log[1] == []
    assert log[2] == [("accuracy-low", "fired"), ("errors", "fired"), ("feature-drift", "fired"), ("latency", "fired")]
    assert log[3] == [
        ("accuracy-low", "resolved"),
        ("errors", "resolved"),
        ("feature-drift", "resolved"),
        ("latency", "resolved"),
    ]
    assert state["feature-drift"]["state"] == "resolved" and state["feature-drift"]["since"] == 1003.0


def test_snapshot_of_an_insufficient_window_has_no_drift_numbers():
    rng = np.random.default_rng(1)
    prof = build_profile(rng.normal(size=(1000, 2)))
    snap = al.build_snapshot(drift=feature_drift(rng.normal(3, 1, (50, 2)), prof))
    assert snap["rows"] == 50 and snap["drifted_features"] is None and snap["max_psi"] is None
    assert snap["psi"] == {"x0": None, "x1": None}
    state, ev = al.evaluate_rules(config(), snap, {}, 0)
    assert ev == [] and state["feature-drift"]["no_data"]
