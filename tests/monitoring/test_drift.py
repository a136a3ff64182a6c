"""monitoring.drift: PSI / KS / Wasserstein against a stored profile, checked against SciPy and by simulation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.special
import scipy.stats

from aidevops_ext.errors import ConfigError, DataError
from aidevops_ext.monitoring import drift as dr
from aidevops_ext.monitoring import stats
from aidevops_ext.monitoring.profile import build_profile, profile_from_dict
from tests.support.imports import modules_loaded_by

N_REF, WINDOW, SEEDS = 5000, 500, 50  # WINDOW: the monitor: section's default rows per window


def mixed(rng: np.random.Generator, n: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Eight features of different shapes; feature 0 (standard normal) takes the shift and scale."""
    cols = [
        rng.standard_normal(n) * scale + shift,
        rng.lognormal(size=n),
        rng.uniform(-1, 1, n),
        rng.poisson(3, n).astype(float),  # ties: repeated quantiles
        rng.standard_t(3, n),  # heavy tails
        rng.exponential(size=n),
        rng.integers(0, 2, n).astype(float),  # binary
        rng.normal(5, 2, n),
    ]
    return np.stack(cols, axis=1)


# --------------------------------------------------------------------------- the profile's percentiles


def test_profile_stores_percentiles_and_old_profiles_still_load():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 3))
    X[rng.random(3000) < 0.3, 1] = np.nan
    X[:, 2] = np.nan
    p = build_profile(X)
    for j, f in enumerate(p["features"][:2]):
        finite = X[np.isfinite(X[:, j]), j]
        np.testing.assert_allclose(f["quantiles"], np.quantile(finite, np.linspace(0, 1, 101)), rtol=1e-12, atol=1e-12)
    assert p["features"][2]["quantiles"] == []
    old = json.loads(json.dumps(p))
    for f in old["features"]:
        del f["quantiles"]
    profile_from_dict(old)
    bad = json.loads(json.dumps(p))
    bad["features"][0]["quantiles"][5] = 99.0
    with pytest.raises(DataError, match="malformed quantiles"):
        profile_from_dict(bad)


# --------------------------------------------------------------------------- distribution functions


def test_distribution_functions_match_scipy():
    x = np.linspace(0, 4, 801)
    np.testing.assert_allclose(stats.kolmogorov_sf(x), scipy.special.kolmogorov(x), atol=1e-12)
    for dof in (1, 2, 3, 9, 10, 57):
        xs = np.linspace(0, 4 * dof + 40, 300)
        np.testing.assert_allclose(stats.chi2_sf(xs, dof), scipy.stats.chi2.sf(xs, dof), atol=1e-12)
    lo, hi = stats.wilson_interval(87, 100, 0.9)
    ci = scipy.stats.binomtest(87, 100).proportion_ci(confidence_level=0.9, method="wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-12)


# --------------------------------------------------------------------------- statistics against brute force and SciPy


def _brute_ks(window: np.ndarray, knots: np.ndarray) -> float:
    """Exact sup |F_window - G| for strictly increasing knots (continuous data), from every order statistic."""
    x = np.sort(window)
    G = np.interp(x, knots, np.linspace(0, 1, len(knots)), left=0.0, right=1.0)
    i = np.arange(len(x))
    return float(max(((i + 1) / len(x) - G).max(), (G - i / len(x)).max(), 0.0))


@pytest.mark.parametrize("n", [200, 4096, 30_000])
def test_ks_is_exact_on_small_windows_and_within_a_grid_step_on_large(n):
    rng = np.random.default_rng(n)
    prof = build_profile(rng.normal(size=(N_REF, 2)))
    W = np.column_stack([rng.normal(0.1, 1.2, n), rng.normal(size=n)])
    rep = dr.feature_drift(W, prof)
    for j, f in enumerate(rep.features):
        exact = _brute_ks(W[:, j], np.array(prof["features"][j]["quantiles"]))
        tol = 1e-12 if n <= 4096 else 1 / 4096 + 1e-3  # a block of n/4096 order statistics and G's rise over it
        assert f.ks_statistic == pytest.approx(exact, abs=tol)


@pytest.mark.parametrize("gen", ["normal", "uniform", "poisson"])
def test_statistics_agree_with_scipy_on_the_reference_sample(gen):
    rng = np.random.default_rng(7)
    draw = {
        "normal": lambda n: rng.normal(2, 3, n),
        "uniform": lambda n: rng.uniform(0, 10, n),
        "poisson": lambda n: rng.poisson(4, n).astype(float),
    }[gen]
    R, W = draw(N_REF), draw(800) * 1.1 + 0.3
    f = dr.feature_drift(W[:, None], build_profile(R[:, None])).features[0]
    ks = scipy.stats.ks_2samp(W, R)
    # the reference CDF is drawn through 101 percentiles: within about one percentile of the sample's ECDF
    assert f.ks_statistic == pytest.approx(ks.statistic, abs=0.011)
    w1 = scipy.stats.wasserstein_distance(W, R)
    assert f.wasserstein == pytest.approx(w1, rel=0.08, abs=0.01 * R.std())
    assert f.wasserstein_std == pytest.approx(f.wasserstein / R.std())
    assert f.mean_shift_std == pytest.approx((W.mean() - R.mean()) / R.std(), rel=1e-9)
    assert f.std_ratio == pytest.approx(W.std() / R.std(), rel=1e-9)
    # PSI by hand on the profile's decile bins
    edges = np.quantile(R, np.linspace(0, 1, 11))
    wc = np.array([((W >= a) & (W < b)).sum() for a, b in zip(edges[:-2], edges[1:-1])] + [(W >= edges[-2]).sum()])
    wc[0] += (W < edges[0]).sum()
    rc = np.array(build_profile(R[:, None])["features"][0]["counts"])
    used = (wc > 0) | (rc > 0)
    wp, rp = np.where(wc > 0, wc, 0.5) / len(W), np.where(rc > 0, rc, 0.5) / len(R)
    assert f.psi == pytest.approx(((wp - rp) * np.log(wp / rp))[used].sum(), rel=1e-9)
    chi = scipy.stats.chi2_contingency(np.stack([wc, rc])[:, used], correction=False)
    assert f.chi2_pvalue == pytest.approx(chi.pvalue, rel=1e-6, abs=1e-300)


# --------------------------------------------------------------------------- the statistical claims


@pytest.mark.parametrize("n", [dr.DEFAULT_MIN_ROWS, WINDOW])
def test_false_positives_at_most_5_percent_and_a_half_std_shift_is_caught(n):
    flagged = np.zeros((SEEDS, 8), dtype=bool)
    caught = np.zeros(SEEDS, dtype=bool)
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        prof = build_profile(mixed(rng, N_REF))
        flagged[seed] = [f.drifted for f in dr.feature_drift(mixed(rng, n), prof).features]
        shifted = dr.feature_drift(mixed(rng, n, shift=0.5), prof)
        caught[seed] = shifted.features[0].drifted
    fpr = flagged.mean()
    assert fpr <= 0.05, f"false-positive rate {fpr:.3f} over {SEEDS} seeds x 8 features at n={n}"
    assert caught.mean() >= 0.95, f"power {caught.mean():.2f} for a +0.5 std shift at n={n}"


def test_a_doubled_spread_is_caught_and_a_trivial_shift_on_a_huge_window_is_not():
    rng = np.random.default_rng(3)
    prof = build_profile(mixed(rng, N_REF))
    wide = dr.feature_drift(mixed(rng, WINDOW, scale=2.0), prof).features[0]
    assert wide.drifted and wide.std_ratio == pytest.approx(2.0, rel=0.15)
    # p-values count the reference as a sample, so "huge" means a huge window *and* a huge reference
    big_prof = build_profile(rng.normal(size=(200_000, 1)))
    f = dr.feature_drift(rng.normal(0.03, 1, (200_000, 1)), big_prof).features[0]
    # detectable but immaterial: the p-value alone would cry wolf, the effect size does not
    assert f.ks_pvalue < 1e-6 and f.wasserstein_std < 0.1 and f.psi < 0.1
    assert not f.drifted
    assert dr.feature_drift(rng.normal(0.5, 1, (200_000, 1)), big_prof).features[0].drifted


def test_shifted_feature_flagged_and_unshifted_not_in_one_report():
    rng = np.random.default_rng(11)
    prof = build_profile(mixed(rng, N_REF), feature_names=[f"f{i}" for i in range(8)])
    rep = dr.feature_drift(mixed(rng, WINDOW, shift=1.0), prof)
    assert rep.status == "ok" and rep.drifted == ["f0"]
    f0 = rep.feature("f0")
    assert f0.psi_band == "major" and f0.ks_pvalue < 1e-10 and f0.reasons == ("psi", "wasserstein")
    assert f0.mean_shift_std == pytest.approx(1.0, abs=0.15)
    assert rep.metric("psi")["f0"] == f0.psi
    json.dumps(rep.to_dict(), allow_nan=False)


# --------------------------------------------------------------------------- sample size, missing values, odd columns


def test_insufficient_data_below_the_minimum_window():
    rng = np.random.default_rng(5)
    prof = build_profile(mixed(rng, N_REF))
    small = dr.feature_drift(mixed(rng, 199, shift=3.0), prof)
    assert small.status == "insufficient data" and small.drifted == []
    for f in small.features:
        assert f.status == "insufficient data" and f.n == 199 and not f.drifted
        assert f.psi is f.ks_pvalue is f.wasserstein_std is f.psi_band is None
    assert dr.feature_drift(mixed(rng, 200, shift=3.0), prof).feature("x0").drifted
    custom = dr.feature_drift(mixed(rng, 150, shift=3.0), prof, min_rows=100)
    assert custom.status == "ok" and custom.min_rows == 100 and custom.feature("x0").drifted


def test_missing_values_report_their_change_and_thin_features_are_insufficient():
    rng = np.random.default_rng(6)
    R = rng.normal(size=(N_REF, 3))
    R[rng.random(N_REF) < 0.1, 2] = np.nan
    prof = build_profile(R)
    W = rng.normal(size=(1000, 3))
    W[rng.random(1000) < 0.3, 0] = np.nan  # 30 % missing, values otherwise unchanged
    W[rng.random(1000) < 0.9, 1] = np.nan  # ~100 present: too few to judge the distribution
    W[rng.random(1000) < 0.1, 2] = np.inf  # inf counts as missing, like the profile
    rep = dr.feature_drift(W, prof)
    a, b, c = rep.features
    assert a.status == "ok" and a.missing_change == pytest.approx(0.3, abs=0.04) and a.missing_pvalue < 1e-10
    assert a.drifted and a.reasons == ("missing",) and a.psi < 0.1  # present values did not move
    assert b.status == "insufficient data" and b.psi is None and b.n_present < 200
    assert b.drifted and b.reasons == ("missing",)
    assert c.missing_rate_ref == pytest.approx(0.1, abs=0.02) and abs(c.missing_change) < 0.04 and not c.drifted


def test_constant_and_empty_reference_columns():
    rng = np.random.default_rng(8)
    R = np.column_stack([np.full(N_REF, 7.0), np.full(N_REF, np.nan), rng.normal(size=N_REF)])
    prof = build_profile(R)
    same = dr.feature_drift(np.column_stack([np.full(300, 7.0), rng.normal(size=300), rng.normal(size=300)]), prof)
    const, empty, _ = same.features
    assert const.status == "ok" and const.ks_statistic == 0 and const.wasserstein == 0 and not const.drifted
    assert const.wasserstein_std is None and const.mean_shift_std is None  # no scale to divide by
    assert empty.status == "no reference" and empty.psi is None and empty.missing_change == pytest.approx(-1.0)
    moved = dr.feature_drift(np.column_stack([np.full(300, 8.0), np.full(300, np.nan), rng.normal(size=300)]), prof)
    assert moved.features[0].drifted and moved.features[0].ks_statistic == 1.0
    json.dumps(moved.to_dict(), allow_nan=False)


def test_vectorized_threaded_report_equals_one_feature_at_a_time():
    rng = np.random.default_rng(9)
    R = rng.normal(size=(N_REF, 40)).astype(np.float32) * rng.uniform(0.5, 3, 40).astype(np.float32)
    prof = build_profile(R)
    W = rng.normal(size=(30_000, 40)).astype(np.float32) * 1.1  # 1.2 M values: the threaded path
    W[rng.random(W.shape) < 0.02] = np.nan
    whole = dr.feature_drift(W, prof)
    for j in range(0, 40, 7):
        one = dict(prof, features=[prof["features"][j]])
        single = dr.feature_drift(W[:, j : j + 1], one).features[0]
        assert whole.features[j] == single


def test_old_profiles_without_percentiles_fall_back_to_bin_edges():
    rng = np.random.default_rng(10)
    prof = build_profile(mixed(rng, N_REF))
    for f in prof["features"]:
        del f["quantiles"]
    rep = dr.feature_drift(mixed(rng, WINDOW, shift=0.7), prof)
    assert rep.features[0].drifted and rep.features[0].ks_statistic > 0.2


def test_dataframe_columns_are_matched_by_name_and_bad_input_is_refused():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(12)
    prof = build_profile(pd.DataFrame(rng.normal(size=(N_REF, 3)), columns=["a", "b", "c"]))
    W = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    W["a"] += 2
    rep = dr.feature_drift(W[["c", "a", "b"]], prof)
    assert rep.drifted == ["a"]
    with pytest.raises(DataError, match=r"lacks profiled columns \['c'\]"):
        dr.feature_drift(W[["a", "b"]], prof)
    with pytest.raises(DataError, match="has 2 columns but the profile has 3"):
        dr.feature_drift(rng.normal(size=(300, 2)), prof)
    with pytest.raises(ConfigError, match="min_rows"):
        dr.feature_drift(W, prof, min_rows=0)
    with pytest.raises(ConfigError, match="psi_bands must increase"):
        dr.feature_drift(W, prof, psi_bands=(0.3, 0.1))
    with pytest.raises(ConfigError, match="alpha"):
        dr.feature_drift(W, prof, alpha=1.5)


# --------------------------------------------------------------------------- predictions


def test_class_prediction_drift_matches_chi_square_and_keeps_its_false_positives_low():
    p_ref = [0.5, 0.3, 0.2]
    false = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        prof = build_profile(rng.normal(size=(N_REF, 1)), predictions=rng.choice(3, N_REF, p=p_ref))
        false += dr.prediction_drift(rng.choice(3, WINDOW, p=p_ref), prof).drifted
    assert false / SEEDS <= 0.05
    y = rng.choice(3, N_REF, p=p_ref)
    prof = build_profile(rng.normal(size=(N_REF, 1)), predictions=y)
    w = rng.choice(4, WINDOW, p=[0.35, 0.3, 0.2, 0.15])  # class 3 never predicted in the reference
    d = dr.prediction_drift(w, prof)
    assert d.task == "classification" and d.status == "ok" and d.drifted and d.psi_band == "major"
    assert d.detail["new_classes"] == [3] and d.detail["classes"] == [0, 1, 2, 3]
    table = np.stack([np.bincount(w, minlength=4), np.bincount(y, minlength=4)])
    chi = scipy.stats.chi2_contingency(table, correction=False)
    assert d.statistic == pytest.approx(chi.statistic) and d.pvalue == pytest.approx(chi.pvalue, rel=1e-6)
    assert d.effect_size == pytest.approx(np.sqrt(chi.statistic / table.sum()))
    assert dr.prediction_drift(w[:150], prof).status == "insufficient data"
    json.dumps(d.to_dict(), allow_nan=False)


def test_numeric_prediction_drift_uses_the_feature_methods():
    rng = np.random.default_rng(13)
    prof = build_profile(rng.normal(size=(N_REF, 2)), predictions=rng.normal(10, 2, N_REF))
    assert not dr.prediction_drift(rng.normal(10, 2, WINDOW), prof).drifted
    d = dr.prediction_drift(rng.normal(11, 2, WINDOW)[:, None], prof)
    assert d.task == "regression" and d.test == "ks" and d.drifted
    assert d.effect_size == pytest.approx(0.5, abs=0.12) and d.detail["name"] == "prediction"
    with pytest.raises(DataError, match="no prediction distribution"):
        dr.prediction_drift(np.zeros(300), build_profile(rng.normal(size=(100, 2))))
    with pytest.raises(DataError, match="must be 1-D"):
        dr.prediction_drift(np.zeros((300, 3)), prof)


# --------------------------------------------------------------------------- layering


def test_monitoring_imports_neither_pipeline_deploy_mlflow_nor_papermill():
    code = (
        "import numpy as np\n"
        "from aidevops_ext.monitoring import alerts, alertstore, drift, live, profile, quality, rules, series, stats\n"
        "p = profile.build_profile(np.random.default_rng(0).normal(size=(500, 3)), predictions=np.zeros(500, int))\n"
        "r = drift.feature_drift(np.random.default_rng(1).normal(size=(300, 3)), p)\n"
        "drift.prediction_drift(np.zeros(300, int), p)\n"
        "alerts.evaluate_rules(alerts.parse_monitor({'rules': []}).rules, alerts.build_snapshot(drift=r), {}, 0.0)\n"
    )
    heavy = ("mlflow", "papermill", "sklearn", "scipy")
    unrelated = ("aidevops_ext.pipeline", "aidevops_ext.deploy", "aidevops_ext.serving", "aidevops_ext.loop")
    assert modules_loaded_by(code, heavy, unrelated) == []


def test_alpha_bounds_the_chance_that_any_of_many_discrete_features_is_flagged_in_distribution():
    """64 integer features like the digits' pixels: at alpha per feature, most in-distribution windows would
    list a drifted feature; alpha is spread over the features, so few windows list any."""
    rng = np.random.default_rng(0)
    p = np.random.default_rng(1).uniform(0.05, 0.6, 64)

    def draw(n: int) -> np.ndarray:
        return rng.binomial(16, p, size=(n, 64)).astype(float)

    profile = build_profile(draw(1300))
    flagged = sum(bool(dr.feature_drift(draw(300), profile).drifted) for _ in range(40))
    assert flagged <= 6, f"{flagged} of 40 in-distribution windows listed a drifted feature"
    shifted = draw(300)
    shifted[:, 5] = np.minimum(shifted[:, 5] + 3, 16)  # a real shift of one pixel is still caught
    assert "x5" in dr.feature_drift(shifted, profile).drifted
