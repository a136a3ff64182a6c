"""build_frame_profile: numeric and category columns of a training DataFrame, JSON round trip, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aidevops_ext.errors import ConfigError, DataError
from aidevops_ext.monitoring.frameprofile import build_frame_profile
from aidevops_ext.monitoring.profile import build_profile, profile_from_dict


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 2000
    city = rng.choice(["paris", "lyon", "nice"], size=n, p=[0.6, 0.3, 0.1]).astype(object)
    city[rng.random(n) < 0.05] = None
    income = rng.normal(50.0, 10.0, size=n)
    income[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "income": income,
            "age": rng.integers(18, 90, size=n),
            "city": city,
            "plan": pd.Categorical(rng.choice(["basic", "pro"], size=n)),
            "member": rng.random(n) < 0.25,
            "when": pd.Timestamp("2024-01-01"),
        }
    )


def test_columns_are_split_by_dtype_and_kept_in_frame_order(frame):
    prof = build_frame_profile(frame)
    kinds = {f["name"]: f["kind"] for f in prof["features"]}
    assert kinds == {
        "income": "numeric",
        "age": "numeric",
        "city": "category",
        "plan": "category",
        "member": "category",
    }
    assert [f["name"] for f in prof["features"]] == ["income", "age", "city", "plan", "member"]
    assert prof["skipped"] == ["when"]


def test_numeric_columns_match_build_profile_and_carry_missing_rate(frame):
    prof = build_frame_profile(frame)
    ref = build_profile(frame[["income", "age"]])
    for got, want in zip(prof["features"][:2], ref["features"]):
        assert got["bin_edges"] == pytest.approx(want["bin_edges"])
        assert got["counts"] == want["counts"]
        assert got["quantiles"] == pytest.approx(want["quantiles"])
        assert got["missing_rate"] == pytest.approx(want["missing_rate"])
    assert prof["features"][0]["missing_rate"] == pytest.approx(frame["income"].isna().mean())


def test_category_counts_missing_rate_and_order_match_value_counts(frame):
    city = build_frame_profile(frame)["features"][2]
    vc = frame["city"].value_counts()
    assert city["categories"] == list(vc.index)
    assert city["counts"] == vc.tolist()
    assert city["missing_rate"] == pytest.approx(frame["city"].isna().mean())
    assert city["other_count"] == 0 and city["n_categories"] == 3
    member = build_frame_profile(frame)["features"][4]
    assert set(member["categories"]) == {"True", "False"}


def test_rare_categories_beyond_the_cap_are_summed_and_singletons_estimate_the_unseen_rate():
    values = ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + [f"once{i}" for i in range(10)]
    f = build_frame_profile(pd.DataFrame({"v": values}), max_categories=2)["features"][0]
    assert f["categories"] == ["a", "b"] and f["counts"] == [50, 30]
    assert f["other_count"] == 20 and f["n_categories"] == 13
    assert f["unseen_rate"] == pytest.approx(10 / 100)


def test_profile_round_trips_through_json_with_predictions(frame):
    preds = np.where(frame["income"].fillna(0) > 50, "yes", "no")
    prof = build_frame_profile(frame, predictions=preds)
    again = profile_from_dict(json.loads(json.dumps(prof)))
    assert again["predictions"]["task"] == "classification"
    assert again["predictions"]["classes"] == ["no", "yes"]


def test_many_numeric_blocks_give_the_same_profile_as_one(frame, monkeypatch):
    from aidevops_ext.monitoring import frameprofile

    whole = build_frame_profile(frame)
    monkeypatch.setattr(frameprofile, "_BLOCK_BYTES", 8 * len(frame))  # one column per block
    assert build_frame_profile(frame) == whole


def test_bad_input_names_the_problem():
    with pytest.raises(DataError, match="DataFrame"):
        build_frame_profile(np.zeros((3, 2)))
    with pytest.raises(DataError, match="no rows"):
        build_frame_profile(pd.DataFrame({"a": []}))
    with pytest.raises(ConfigError, match="max_categories"):
        build_frame_profile(pd.DataFrame({"a": ["x"]}), max_categories=0)
    with pytest.raises(DataError, match="repeated column names"):
        build_frame_profile(pd.DataFrame([[1, 2]], columns=["a", "a"]))


# --------------------------------------------------------------------------- drift against a frame profile


def _shifted(frame: pd.DataFrame, seed: int, n: int) -> pd.DataFrame:
    """New rows drawn like the fixture's, or with the city mix changed when seed is negative."""
    rng = np.random.default_rng(abs(seed))
    p = [0.6, 0.3, 0.1] if seed >= 0 else [0.1, 0.3, 0.6]
    income = rng.normal(50.0, 10.0, size=n)
    income[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "income": income,
            "age": rng.integers(18, 90, size=n),
            "city": rng.choice(["paris", "lyon", "nice"], size=n, p=p).astype(object),
            "plan": rng.choice(["basic", "pro"], size=n).astype(object),
            "member": rng.random(n) < 0.25,
        }
    )


def test_a_category_mix_change_is_drift_and_the_same_mix_is_not(frame):
    from aidevops_ext.monitoring.drift import feature_drift

    prof = json.loads(json.dumps(build_frame_profile(frame)))
    same = feature_drift(_shifted(frame, 11, 1500), prof)
    moved = feature_drift(_shifted(frame, -11, 1500), prof)
    assert same.status == "ok" and not same.feature("city").drifted
    city = moved.feature("city")
    assert city.drifted and "psi" in city.reasons and city.kind == "category" and city.chi2_pvalue < 1e-6
    assert moved.drifted == ["city"]
    shares = {c["category"]: c for c in city.to_dict()["top_categories"]}
    assert shares["nice"]["reference"] == pytest.approx(0.1, abs=0.03)
    assert shares["nice"]["live"] == pytest.approx(0.6, abs=0.05)
    assert moved.feature("income").kind == "numeric" and not moved.feature("income").drifted


def test_unseen_categories_and_more_missing_values_are_reported(frame):
    from aidevops_ext.monitoring.drift import feature_drift

    prof = build_frame_profile(frame)
    live = _shifted(frame, 12, 1000)
    live.loc[:299, "city"] = "tokyo"  # a category the reference never saw
    live.loc[300:599, "plan"] = None  # missing values where the reference had none
    report = feature_drift(live, prof)
    city, plan = report.feature("city"), report.feature("plan")
    assert city.unseen_rate == pytest.approx(0.3) and city.unseen_rate_ref == pytest.approx(0.0)
    assert city.drifted and "psi" in city.reasons
    assert plan.missing_rate == pytest.approx(0.3) and plan.missing_rate_ref == 0.0 and "missing" in plan.reasons


def test_booleans_sent_as_json_match_the_reference_labels(frame):
    from aidevops_ext.monitoring.drift import feature_drift

    prof = build_frame_profile(frame)
    live = _shifted(frame, 13, 500)
    live["member"] = live["member"].astype(object)  # as decoded from JSON true/false
    member = feature_drift(live, prof).feature("member")
    assert member.unseen_rate == 0.0 and not member.drifted


def test_a_category_profile_needs_a_frame_window(frame):
    from aidevops_ext.monitoring.drift import feature_drift

    prof = build_frame_profile(frame)
    with pytest.raises(DataError, match="DataFrame"):
        feature_drift(np.zeros((50, 5)), prof)
    with pytest.raises(DataError, match="lacks profiled columns"):
        feature_drift(_shifted(frame, 1, 50).drop(columns=["city"]), prof)


def test_unhashable_values_from_json_are_categories_by_their_text():
    from aidevops_ext.monitoring.drift import feature_drift

    column = pd.Series([["a"], ["a"], "b", None] * 100, dtype=object)
    prof = build_frame_profile(pd.DataFrame({"v": column}))
    f = prof["features"][0]
    assert f["categories"] == ["['a']", "b"] and f["counts"] == [200, 100] and f["missing_rate"] == 0.25
    same = feature_drift(pd.DataFrame({"v": column}), prof).feature("v")
    assert same.status == "ok" and same.psi == pytest.approx(0.0) and same.unseen_rate == 0.0
