"""aidevops_ext.monitoring.profile: bins, counts, moments and missing rates checked against NumPy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aidevops_ext.errors import ConfigError, DataError
from aidevops_ext.monitoring import profile as pr
from tests.support.imports import modules_loaded_by


def _hostile_matrix(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Columns that stress the sorted-row code: ties, NaN, +/-inf, constant, all-missing, mixed."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, 7), dtype=np.float32)
    X[:, 0] = rng.normal(size=n) * 5 + 100
    X[:, 1] = rng.integers(0, 4, n)  # heavy ties: repeated edges
    X[:, 2] = rng.exponential(size=n)
    X[rng.random(n) < 0.2, 2] = np.nan
    X[:, 3] = 7.0  # constant
    X[:, 4] = np.nan  # nothing finite
    X[:, 5] = rng.normal(size=n)
    X[rng.random(n) < 0.05, 5] = np.inf
    X[rng.random(n) < 0.05, 5] = -np.inf
    X[rng.random(n) < 0.05, 5] = np.nan
    X[:, 6] = rng.uniform(-1, 1, n)
    return X


def _brute_counts(x: np.ndarray, edges: list[float]) -> list[int]:
    e = np.asarray(edges)
    counts = [int(((x >= e[i]) & (x < e[i + 1])).sum()) for i in range(len(e) - 2)]
    return counts + [int(((x >= e[-2]) & (x <= e[-1])).sum())]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n_bins", [1, 4, 10])
def test_features_match_numpy(seed: int, n_bins: int) -> None:
    X = _hostile_matrix(seed=seed)
    p = pr.build_profile(X, n_bins=n_bins)
    assert p["n_rows"] == len(X) and p["n_bins"] == n_bins and len(p["features"]) == X.shape[1]
    for j, f in enumerate(p["features"]):
        x = X[:, j].astype(np.float64)
        finite = x[np.isfinite(x)]
        assert f["name"] == f"x{j}"
        assert f["missing_rate"] == pytest.approx(1 - len(finite) / len(x))
        if not len(finite):
            assert f["bin_edges"] == [] and f["counts"] == [] and f["mean"] is None and f["std"] is None
            continue
        edges = f["bin_edges"]
        assert len(edges) == n_bins + 1 and len(f["counts"]) == n_bins
        assert all(b >= a for a, b in zip(edges, edges[1:]))
        np.testing.assert_allclose(edges, np.quantile(finite, np.linspace(0, 1, n_bins + 1)), rtol=1e-12, atol=1e-12)
        assert sum(f["counts"]) == len(finite)
        assert f["counts"] == _brute_counts(finite, edges)
        assert f["mean"] == pytest.approx(finite.mean(), rel=1e-12, abs=1e-12)
        assert f["std"] == pytest.approx(finite.std(), rel=1e-9, abs=1e-12)
        assert (f["min"], f["max"]) == (finite.min(), finite.max())


def test_constant_and_all_missing_columns() -> None:
    p = pr.build_profile(_hostile_matrix(n=500), n_bins=5)
    const = p["features"][3]
    assert const["bin_edges"] == [7.0] * 6 and const["counts"] == [0, 0, 0, 0, 500]
    assert const["std"] == 0.0 and const["mean"] == const["min"] == const["max"] == 7.0
    assert const["missing_rate"] == 0.0
    assert p["features"][4]["missing_rate"] == 1.0


def test_missing_rate_counts_nan_and_inf() -> None:
    X = np.array([[1.0, np.nan], [np.inf, 2.0], [-np.inf, 3.0], [4.0, 4.0]])
    f0, f1 = pr.build_profile(X, feature_names=["a", "b"], n_bins=2)["features"]
    assert (f0["name"], f0["missing_rate"], f0["min"], f0["max"], sum(f0["counts"])) == ("a", 0.5, 1.0, 4.0, 2)
    assert (f1["missing_rate"], f1["mean"]) == (0.25, 3.0)


def test_integer_bool_and_dataframe_inputs() -> None:
    import pandas as pd

    df = pd.DataFrame({"age": [30, 40, 50, 60], "member": [True, False, True, True]})
    p = pr.build_profile(df, n_bins=2)
    assert [f["name"] for f in p["features"]] == ["age", "member"]
    assert p["features"][0]["mean"] == 45.0 and p["features"][1]["mean"] == 0.75
    with pytest.raises(DataError) as info:
        pr.build_profile(df.assign(city=["a", "b", "c", "d"]))
    assert "city" in str(info.value)


def test_json_round_trip_and_validation() -> None:
    X = _hostile_matrix(n=300)
    preds = np.array(["cat", "dog", "emu"])[np.random.default_rng(0).integers(0, 3, 300)]
    p = pr.build_profile(X, predictions=preds)
    text = json.dumps(p, allow_nan=False)  # strict JSON: no NaN/inf, no numpy scalars
    back = json.loads(text)
    assert back == p and pr.profile_from_dict(back) is back


def test_prediction_summaries() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 1000)
    pc = pr.build_profile(rng.normal(size=(1000, 2)), predictions=labels)["predictions"]
    assert pc["task"] == "classification" and pc["classes"] == [0, 1, 2] and sum(pc["counts"]) == 1000
    assert pc["frequencies"] == pytest.approx(np.bincount(labels) / 1000)
    assert all(type(c) is int for c in pc["classes"])
    values = rng.normal(size=1000).astype(np.float32)
    pn = pr.build_profile(rng.normal(size=(1000, 2)), predictions=values)["predictions"]
    assert pn["task"] == "regression" and pn["n"] == 1000 and sum(pn["counts"]) == 1000
    assert pn["mean"] == pytest.approx(values.astype(np.float64).mean())
    forced = pr.build_profile(np.zeros((3, 1)), predictions=[1.0, 2.0, 1.0], task="classification")["predictions"]
    assert forced["classes"] == [1.0, 2.0] and forced["counts"] == [2, 1]
    assert pr.build_profile(np.zeros((3, 1)))["predictions"] is None
    # predictions may come from held-out rows, so their count need not match X's
    held_out = pr.build_profile(np.zeros((3, 1)), predictions=[0, 1, 1, 1, 0])["predictions"]
    assert held_out["n"] == 5 and held_out["counts"] == [2, 3]


def test_bin_counts_uses_reference_bins() -> None:
    X = _hostile_matrix(n=1000)
    p = pr.build_profile(X, n_bins=8)
    ref = pr.bin_counts(X, p)
    for j, f in enumerate(p["features"]):
        assert ref[j].tolist() == (f["counts"] or [0] * 8)
    shifted = X + np.float32(3.0)  # out-of-range values land in the end bins
    new = pr.bin_counts(shifted, p)
    for j, f in enumerate(p["features"]):
        x = shifted[:, j]
        assert new[j].sum() == np.isfinite(x).sum() * (len(f["bin_edges"]) > 0)
    assert new[6, -1] == 1000  # uniform(-1, 1) + 3 is above every reference edge
    with pytest.raises(DataError):
        pr.bin_counts(X[:, :3], p)
    assert pr.bin_counts(X[:0], p).sum() == 0


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.pop("profile_version"),
        lambda p: p.update(profile_version=99),
        lambda p: p.update(features="x"),
        lambda p: p["features"][0].pop("name"),
        lambda p: p["features"][0].update(counts=[1, 2]),
        lambda p: p["features"][0].update(bin_edges=list(reversed(p["features"][0]["bin_edges"]))),
        lambda p: p.update(n_bins=0),
    ],
)
def test_profile_from_dict_rejects_malformed(mutate) -> None:
    p = pr.build_profile(np.random.default_rng(0).normal(size=(50, 2)))
    mutate(p)
    with pytest.raises(DataError) as info:
        pr.profile_from_dict(p)
    assert str(info.value).endswith(".")
    with pytest.raises(DataError):
        pr.profile_from_dict([1, 2])


@pytest.mark.parametrize(
    "call,error",
    [
        (lambda: pr.build_profile(np.zeros((3, 2)), n_bins=0), ConfigError),
        (lambda: pr.build_profile(np.zeros((3, 2)), n_bins=2.5), ConfigError),
        (lambda: pr.build_profile(np.zeros((3, 2)), feature_names=["a"]), DataError),
        (lambda: pr.build_profile(np.zeros((3, 2)), predictions=np.zeros((3, 2))), DataError),
        (lambda: pr.build_profile(np.zeros((3, 2)), predictions=[1, 2, 3], task="ranking"), ConfigError),
        (lambda: pr.build_profile(np.array([["a", "b"]])), DataError),
        (lambda: pr.build_profile(np.zeros((2, 2, 2))), DataError),
        (lambda: pr.build_profile(np.zeros((0, 3))), DataError),
        (lambda: pr.summarize_numeric([]), DataError),
    ],
)
def test_bad_inputs(call, error) -> None:
    with pytest.raises(error) as info:
        call()
    assert str(info.value).endswith(".") and "\n" not in str(info.value)


def test_module_imports_nothing_heavy() -> None:
    heavy = ("sklearn", "mlflow", "pandas", "papermill")
    unrelated = ("aidevops_ext.pipeline", "aidevops_ext.deploy")
    assert modules_loaded_by("import aidevops_ext.monitoring.profile", heavy, unrelated) == []


def test_profiles_a_million_rows() -> None:
    # Speed is measured in benchmarks/, never asserted here (shared, noisy machines).
    X = np.random.default_rng(0).standard_normal((1_000_000, 50), dtype=np.float32)
    p = pr.build_profile(X)
    assert all(sum(f["counts"]) == 1_000_000 for f in p["features"])
    np.testing.assert_allclose([f["mean"] for f in p["features"]], X.mean(axis=0, dtype=np.float64), atol=1e-4)
