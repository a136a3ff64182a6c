"""Chart series of live traffic: bucketed rate, latency percentiles and errors; prediction distributions."""

from __future__ import annotations

import numpy as np
import pytest

from aidevops_ext.errors import ConfigError
from aidevops_ext.monitoring.profile import build_profile
from aidevops_ext.monitoring.series import prediction_distribution, request_series


def test_request_series_buckets_rate_percentiles_and_errors():
    rng = np.random.default_rng(0)
    ts = np.sort(rng.uniform(0, 10, 5000))
    lat = rng.exponential(2.0, 5000)
    status = np.where(ts > 8, 500, 200)  # the last fifth fails
    s = request_series(ts, lat, status, buckets=10, start=0.0, end=10.0)
    assert s["bucket_s"] == pytest.approx(1.0) and len(s["t"]) == 10 and s["t"][0] == 0.0
    assert sum(s["requests"]) == 5000
    for b in range(10):
        sel = (ts >= b) & (ts < b + 1) if b < 9 else (ts >= 9)
        assert s["requests"][b] == int(sel.sum())
        assert s["rate"][b] == pytest.approx(sel.sum())
        assert s["p99_ms"][b] == pytest.approx(np.percentile(lat[sel], 99))
        assert s["p50_ms"][b] == pytest.approx(np.percentile(lat[sel], 50))
        assert s["error_rate"][b] == pytest.approx((status[sel] >= 500).mean())
    assert s["error_rate"][:8] == [0.0] * 8 and s["error_rate"][9] == 1.0


def test_request_series_empty_buckets_and_bad_arguments():
    s = request_series([0.0, 10.0], [1.0, 3.0], [200, 404], buckets=5)
    assert s["requests"] == [1, 0, 0, 0, 1] and s["p50_ms"][1] is None and s["error_rate"][4] == 0.0, (
        "a 4xx is the client's"
    )
    assert request_series([], [], [], buckets=3)["t"] == []
    with pytest.raises(ConfigError, match="buckets must be an integer"):
        request_series([1.0], [1.0], [200], buckets=0)
    with pytest.raises(ConfigError, match="one value per request"):
        request_series([1.0, 2.0], [1.0], [200])


def test_prediction_distribution_against_the_reference():
    X = np.zeros((10, 1))
    profile = build_profile(X, ["x"], predictions=np.array([0] * 6 + [1] * 4))
    d = prediction_distribution([1, 1, 1, 0, 2], profile)
    assert d["task"] == "classification" and d["classes"] == ["0", "1"]
    assert (
        d["reference"] == pytest.approx([0.6, 0.4])
        and d["live"] == pytest.approx([0.2, 0.6])
        and d["unseen"] == pytest.approx(0.2)
    )
    reg = prediction_distribution([0.5, 0.5, 2.0], build_profile(X, ["x"], predictions=np.linspace(0, 1, 10)))
    assert (
        reg["task"] == "regression"
        and sum(reg["live"]) == pytest.approx(1.0)
        and len(reg["edges"]) == len(reg["live"]) + 1
    )
    assert prediction_distribution([1], None) == {"task": None}
