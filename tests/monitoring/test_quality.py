"""monitoring.quality: feedback joined to requests, windows by request time, intervals that cover."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from aidevops_ext.errors import ConfigError, DataError
from aidevops_ext.monitoring import quality as q


def simulate(rng: np.random.Generator, n: int, p_correct: float, hours: float = 1.0, label_share: float = 0.8):
    """Requests over `hours`, right with probability p_correct; labels for a share of them, late by ~10 min."""
    ts = np.sort(rng.uniform(0, hours * 3600, n))
    y = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < p_correct, y, (y + 1) % 3)
    got = rng.random(n) < label_share
    delay = rng.exponential(600, n)
    requests = {"request_id": np.arange(n), "timestamp": ts, "prediction": pred}
    feedback = {"request_id": np.arange(n)[got], "label": y[got], "label_timestamp": (ts + delay)[got]}
    return requests, feedback


# --------------------------------------------------------------------------- join


def test_join_handles_order_corrections_unknown_ids_and_record_shapes():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    requests = [
        ("b", t0 + timedelta(seconds=20), 1),
        {"request_id": "a", "timestamp": (t0 + timedelta(seconds=10)).isoformat(), "prediction": 0},
        ("c", (t0 + timedelta(seconds=30)).timestamp(), 2),
        ("a", t0 + timedelta(seconds=15), 0),  # a repeated id: the later log entry wins
    ]
    feedback = [
        ("c", 2, t0 + timedelta(seconds=100)),
        ("b", 0, t0 + timedelta(seconds=90)),  # a correction that arrives first but is older ...
        ("b", 1, t0 + timedelta(seconds=95)),  # ... loses to the newer label whatever the order
        ("b", 0, t0 + timedelta(seconds=91)),
        ("zzz", 1, t0 + timedelta(seconds=50)),  # sampled out of the log
    ]
    j = q.join_feedback(requests, feedback)
    assert list(j.request_id) == ["a", "b", "c"]
    assert j.timestamp.tolist() == [t0.timestamp() + s for s in (15, 20, 30)]
    assert list(j.label) == [None, 1, 2] and np.isnan(j.label_timestamp[0])
    assert (j.unmatched_feedback, j.superseded_feedback, j.duplicate_requests, j.n_labelled) == (1, 2, 1, 2)
    with pytest.raises(DataError, match="not ISO 8601"):
        q.join_feedback([("a", "yesterday", 0)], [])
    with pytest.raises(DataError, match=r"record 0 has 2 values"):
        q.join_feedback([("a", 1.0)], [])
    with pytest.raises(DataError, match="lacks columns"):
        q.join_feedback({"request_id": [1], "timestamp": [1.0]}, [])


# --------------------------------------------------------------------------- windows against brute force


def _brute(requests, feedback, now, last=None, seconds=None, min_age=0.0):
    """Labelled requests in the window, by plain loops over the records."""
    end = now - min_age
    label = {r: (y, t) for r, y, t in zip(*(feedback[k] for k in q.FEEDBACK_FIELDS))}
    rows = [
        (t, r, p)
        for r, t, p in zip(*(requests[k] for k in q.REQUEST_FIELDS))
        if t <= end and (seconds is None or t > end - seconds)
    ]
    rows.sort()
    labelled = [(t, p, label[r][0]) for t, r, p in rows if r in label and label[r][1] <= now]
    if last is not None:
        labelled = labelled[-last:]
        if labelled:
            rows = [x for x in rows if x[0] >= labelled[0][0]]
    return labelled, len(rows)


@pytest.mark.parametrize(
    "window",
    [{"last": 250}, {"seconds": 900.0}, {"last": 100, "seconds": 1800.0}, {"seconds": 1200.0, "min_age": 300.0}],
)
def test_windows_match_brute_force_and_late_labels_count_for_their_request(window):
    rng = np.random.default_rng(1)
    req, fb = simulate(rng, 3000, 0.85)
    j = q.join_feedback(req, fb)
    now = 3000.0
    a = q.accuracy_window(j, now=now, min_labels=1, **window)
    rows, n_requests = _brute(req, fb, now, **window)
    assert a["labelled"] == len(rows) and a["requests"] == n_requests
    assert a["correct"] == sum(p == y for _, p, y in rows)
    assert a["accuracy"] == pytest.approx(a["correct"] / len(rows))
    assert a["pending"] == n_requests - len(rows) and a["label_rate"] == pytest.approx(len(rows) / n_requests)
    # as of an hour later the late labels have arrived: more of the same requests are labelled
    later = q.accuracy_window(j, now=now + 3600, min_labels=1, **{k: v for k, v in window.items() if k == "last"})
    if "seconds" not in window:
        assert later["label_rate"] > a["label_rate"]
    json.dumps(a, allow_nan=False)


def test_a_label_arriving_after_now_does_not_count_yet():
    req = {"request_id": [1, 2], "timestamp": [10.0, 20.0], "prediction": ["x", "y"]}
    fb = {"request_id": [1, 2], "label": ["x", "n"], "label_timestamp": [15.0, 500.0]}
    j = q.join_feedback(req, fb)
    early = q.accuracy_window(j, now=100.0, min_labels=1)
    late = q.accuracy_window(j, now=600.0, min_labels=1)
    assert (early["labelled"], early["pending"], early["accuracy"]) == (1, 1, 1.0)
    assert (late["labelled"], late["pending"], late["accuracy"]) == (2, 0, 0.5)
    assert q.accuracy_window(j, min_labels=1)["labelled"] == 2  # now=None: as of the newest event


def test_insufficient_labels_give_no_numbers():
    rng = np.random.default_rng(2)
    j = q.join_feedback(*simulate(rng, 200, 0.9))
    a = q.accuracy_window(j, last=50)
    assert a["status"] == "insufficient data" and a["labelled"] == 50
    assert a["accuracy"] is a["accuracy_lower"] is a["accuracy_upper"] is None
    empty = q.accuracy_window(q.join_feedback([], []))
    assert empty["labelled"] == 0 and empty["label_rate"] is None and empty["status"] == "insufficient data"
    with pytest.raises(ConfigError, match="last must be a positive integer"):
        q.accuracy_window(j, last=0)
    with pytest.raises(ConfigError, match="confidence"):
        q.accuracy_window(j, confidence=95)


# --------------------------------------------------------------------------- coverage in simulation


def test_wilson_interval_covers_live_accuracy_at_its_nominal_rate():
    rng = np.random.default_rng(2026)
    covered, sims, p_true = 0, 1000, 0.9
    for _ in range(sims):
        j = q.join_feedback(*simulate(rng, 600, p_true))
        a = q.accuracy_window(j, last=300, now=3600.0)
        assert a["labelled"] == 300 and a["status"] == "ok"
        covered += a["accuracy_lower"] <= p_true <= a["accuracy_upper"]
    assert 0.93 <= covered / sims <= 0.97, f"coverage {covered / sims:.3f} of a nominal 95 % interval"


def _regression_joined(rng: np.random.Generator, n: int) -> q.Joined:
    e = rng.standard_t(5, n)  # heavy-ish tailed errors
    ids = np.arange(n)
    return q.join_feedback(
        {"request_id": ids, "timestamp": np.arange(n, dtype=float), "prediction": e},
        {"request_id": ids, "label": np.zeros(n), "label_timestamp": np.arange(n, dtype=float) + 5},
    )


def test_mae_and_rmse_intervals_cover_in_simulation():
    rng = np.random.default_rng(7)
    # the true MAE and RMSE of t(5) errors, to three decimals from four million draws
    big = rng.standard_t(5, 4_000_000)
    mae_true, rmse_true = np.abs(big).mean(), np.sqrt((big**2).mean())
    sims = 200
    cov_mae = cov_rmse = 0
    for s in range(sims):
        r = q.regression_window(_regression_joined(rng, 300), n_boot=1000, seed=s)
        assert r["interval"] == "bootstrap"
        cov_mae += r["mae_lower"] <= mae_true <= r["mae_upper"]
        cov_rmse += r["rmse_lower"] <= rmse_true <= r["rmse_upper"]
    assert 0.90 <= cov_mae / sims <= 0.99
    assert 0.85 <= cov_rmse / sims <= 0.99  # RMSE of heavy-tailed errors: the percentile bootstrap runs a little short


def test_regression_window_values_and_large_windows_use_the_normal_interval():
    rng = np.random.default_rng(3)
    j = _regression_joined(rng, 500)
    r = q.regression_window(j, last=400)
    e = np.asarray(list(j.prediction[-400:]), dtype=float)
    assert r["mae"] == pytest.approx(np.abs(e).mean()) and r["rmse"] == pytest.approx(np.sqrt((e**2).mean()))
    assert r["bias"] == pytest.approx(e.mean()) and r["mae_lower"] < r["mae"] < r["mae_upper"]
    assert q.regression_window(j, last=400) == r  # seeded bootstrap: the same data, the same interval
    big = q.regression_window(_regression_joined(rng, 30_000))
    assert big["interval"] == "normal" and big["rmse_lower"] < big["rmse"] < big["rmse_upper"]
    assert q.quality_window(j, "regression", last=400) == r
    with pytest.raises(DataError, match="must be numbers"):
        q.regression_window(q.join_feedback([("a", 1.0, "cat")], [("a", "dog", 2.0)]), min_labels=1)
    with pytest.raises(ConfigError, match="task="):
        q.quality_window(j, "ranking")


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_curve_of_windows_equals_each_window_taken_alone(task):
    """quality_windows (the Monitor panel's accuracy curve) answers exactly what quality_window answers as of each
    moment: corrected and unknown labels, multi-output predictions, windows too small for numbers."""
    rng = np.random.default_rng(7)
    requests, feedback = simulate(rng, 400, 0.8)
    if task == "regression":
        requests["prediction"] = requests["prediction"] + rng.normal(0, 0.5, 400)
    records = [
        (int(r), int(label) if task == "classification" else float(label), float(t))
        for r, label, t in zip(feedback["request_id"], feedback["label"], feedback["label_timestamp"])
    ]
    records += [(int(records[0][0]), records[0][1], records[0][2] + 5.0), (10_000, 1, 100.0)]  # a correction, unknown
    if task == "classification":
        preds = list(requests["prediction"])
        preds[3] = [1, 2]  # a multi-output prediction compared as a whole
        requests["prediction"] = preds
    joined = q.join_feedback(requests, records)
    moments = np.linspace(0.0, 4800.0, 25).tolist()
    window = {"last": 50, "min_labels": 30, "confidence": 0.9}
    curve = q.quality_windows(joined, task, moments, **window)
    alone = [q.quality_window(joined, task, now=at, **window) for at in moments]
    assert curve == alone
    assert {c["status"] for c in curve} == {"ok", "insufficient data"}
