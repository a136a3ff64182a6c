"""aidevops_ext.trainer estimators: learning, scikit-learn API, reproducibility, state and hostile input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.linear_model import Ridge as SkRidge
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from aidevops_ext.errors import AidevopsError, ConfigError, DataError, ModelFileError
from aidevops_ext.trainer import (
    ESTIMATORS,
    LinearRegression,
    LogisticRegression,
    MLPClassifier,
    MLPRegressor,
    NotFittedError,
    estimator_class,
)


@pytest.fixture(autouse=True)
def numpy_only(monkeypatch):
    monkeypatch.delenv("AIDEVOPS_BACKEND", raising=False)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)  # pixel intensities 0..16 scaled to [0, 1]
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte), ytr, yte


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, random_state=42)


@pytest.fixture(scope="module")
def blobs():
    """Small 3-class problem for fast API tests."""
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0, 0, 0], [3, 3, 0, 0], [0, 3, 3, 0]], dtype=np.float32)
    y = rng.integers(0, 3, 300)
    X = centers[y] + rng.standard_normal((300, 4)).astype(np.float32)
    return X, y


def small(cls, **kw):
    """An estimator of cls with quick settings."""
    base = {"epochs": 3, "batch_size": 32}
    if cls in (MLPClassifier, MLPRegressor):
        base["hidden_layer_sizes"] = (8,)
    if cls is LinearRegression:
        base = {}
    return cls(**{**base, **kw})


# --------------------------------------------------------------------------- learning


def test_mlp_classifier_learns_digits(digits):
    Xtr, Xte, ytr, yte = digits
    est = MLPClassifier(epochs=30, random_state=0).fit(Xtr, ytr)
    assert est.score(Xte, yte) >= 0.95
    assert est.backend_ == "numpy" and est.n_features_in_ == 64
    assert list(est.classes_) == list(range(10))
    assert len(est.history_) == 30 and est.history_[-1]["loss"] < est.history_[0]["loss"]
    assert set(est.history_[0]) == {"epoch", "loss", "seconds"}
    proba = est.predict_proba(Xte[:5])
    assert proba.shape == (5, 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(est.classes_[proba.argmax(axis=1)], est.predict(Xte[:5]))


def test_logistic_regression_learns_digits(digits):
    Xtr, Xte, ytr, yte = digits
    est = LogisticRegression(random_state=0).fit(Xtr, ytr)
    assert est.score(Xte, yte) >= 0.93
    assert est.coef_.shape == (10, 64) and est.intercept_.shape == (10,)


def test_logistic_regression_binary_breast_cancer(cancer):
    Xtr, Xte, ytr, yte = cancer
    est = LogisticRegression(random_state=0).fit(Xtr, ytr)
    assert est.score(Xte, yte) >= 0.94
    assert est.coef_.shape == (1, 30)
    proba = est.predict_proba(Xte)
    assert proba.shape == (len(Xte), 2) and np.allclose(proba.sum(axis=1), 1)
    assert np.array_equal((proba[:, 1] > 0.5).astype(int), est.predict(Xte))


def test_linear_regression_matches_sklearn(diabetes):
    Xtr, Xte, ytr, yte = diabetes
    ours = LinearRegression().fit(Xtr, ytr)
    ref = SkLinearRegression().fit(Xtr, ytr)
    assert abs(ours.score(Xte, yte) - ref.score(Xte, yte)) < 1e-3
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-3, atol=1e-2)
    assert ours.predict(Xte).shape == (len(Xte),)


def test_linear_regression_ridge_matches_sklearn(diabetes):
    Xtr, Xte, ytr, yte = diabetes
    ours = LinearRegression(l2=0.5).fit(Xtr, ytr)
    ref = SkRidge(alpha=0.5).fit(Xtr, ytr)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-4)


def test_linear_regression_multi_output_and_no_intercept():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    W = np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]])
    Y = X @ W + np.array([1.0, -1.0])
    est = LinearRegression(dtype="float64").fit(X, Y)
    np.testing.assert_allclose(est.coef_, W.T, atol=1e-8)
    np.testing.assert_allclose(est.intercept_, [1.0, -1.0], atol=1e-8)
    assert est.predict(X).shape == (200, 2)
    no_b = LinearRegression(fit_intercept=False, dtype="float64").fit(X, X @ W)
    np.testing.assert_allclose(no_b.intercept_, 0.0)


def test_mlp_regressor_learns_diabetes(diabetes):
    Xtr, Xte, ytr, yte = diabetes
    sc = StandardScaler().fit(Xtr)
    mean, std = ytr.mean(), ytr.std()
    est = MLPRegressor(hidden_layer_sizes=(16,), epochs=200, batch_size=32, random_state=0)
    est.fit(sc.transform(Xtr), (ytr - mean) / std)
    assert est.score(sc.transform(Xte), (yte - mean) / std) > 0.35


def test_mlp_regressor_learns_nonlinear_synthetic():
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, (2000, 2)).astype(np.float32)
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    est = MLPRegressor(hidden_layer_sizes=(64, 64), epochs=60, batch_size=64, learning_rate=3e-3).fit(
        X[:1500], y[:1500]
    )
    assert est.score(X[1500:], y[1500:]) > 0.9
    linear = LinearRegression().fit(X[:1500], y[:1500]).score(X[1500:], y[1500:])
    assert linear < 0.5  # the problem really is non-linear


def test_mlp_regressor_multi_output():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((500, 3)).astype(np.float32)
    Y = np.stack([X[:, 0] + X[:, 1], X[:, 2] * 2], axis=1)
    est = MLPRegressor(hidden_layer_sizes=(32,), epochs=60, batch_size=32, learning_rate=3e-3).fit(X, Y)
    assert est.predict(X[:7]).shape == (7, 2)
    assert est.score(X, Y) > 0.9


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_activations_and_optimizers_learn(blobs, activation, optimizer):
    X, y = blobs
    lr = 0.05 if optimizer == "sgd" else 0.01
    est = MLPClassifier(
        hidden_layer_sizes=(16,), activation=activation, optimizer=optimizer, learning_rate=lr, epochs=15, batch_size=32
    ).fit(X, y)
    assert est.score(X, y) > 0.85


def test_two_hidden_layers_l2_and_float64(blobs):
    X, y = blobs
    est = MLPClassifier(
        hidden_layer_sizes=(16, 8), l2=1e-3, epochs=15, batch_size=32, learning_rate=0.01, dtype="float64"
    ).fit(X, y)
    assert est.score(X, y) > 0.85
    assert [c.shape for c in est.coefs_] == [(4, 16), (16, 8), (8, 3)]
    assert all(c.dtype == np.float64 for c in est.coefs_)
    unpenalised = clone(est).set_params(l2=0.0).fit(X, y)
    norm = lambda e: sum(float((c**2).sum()) for c in e.coefs_)  # noqa: E731
    assert norm(est) < norm(unpenalised)


def test_float32_by_default(blobs):
    X, y = blobs
    est = small(MLPClassifier).fit(X.astype(np.float64), y)
    assert all(c.dtype == np.float32 for c in est.coefs_)
    assert est.predict_proba(X[:2]).dtype == np.float32


# --------------------------------------------------------------------------- labels


def test_string_labels(blobs):
    X, y = blobs
    names = np.array(["cat", "dog", "emu"])[y]
    est = MLPClassifier(hidden_layer_sizes=(16,), epochs=10, batch_size=32, learning_rate=0.01).fit(X, names)
    assert est.classes_.tolist() == ["cat", "dog", "emu"]
    pred = est.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= {"cat", "dog", "emu"}
    assert est.score(X, names) > 0.85
    as_objects = clone(est).fit(X, names.astype(object))  # e.g. a pandas column
    assert as_objects.classes_.tolist() == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(as_objects.predict(X), pred)


def test_non_contiguous_int_labels_and_binary_strings(blobs):
    X, y = blobs
    labels = np.array([10, -3, 7])[y]
    est = small(LogisticRegression, epochs=10).fit(X, labels)
    assert est.classes_.tolist() == [-3, 7, 10]
    assert set(est.predict(X)) <= {-3, 7, 10}
    binary = np.where(y == 0, "no", "yes")
    b = small(MLPClassifier, epochs=20, learning_rate=0.01).fit(X, binary)
    assert b.classes_.tolist() == ["no", "yes"] and b.predict_proba(X).shape == (len(X), 2)
    assert b.score(X, binary) > 0.8


# --------------------------------------------------------------------------- scikit-learn API


@pytest.mark.parametrize("cls", [LinearRegression, LogisticRegression, MLPClassifier, MLPRegressor])
def test_get_set_params_round_trip_and_clone(cls):
    est = cls()
    params = est.get_params()
    assert params == cls(**params).get_params()
    assert "backend" in params and "dtype" in params
    first = next(iter(params))
    new_value = {"fit_intercept": False, "optimizer": "sgd", "hidden_layer_sizes": (5, 3)}[first]
    assert est.set_params(**{first: new_value}) is est
    assert est.get_params()[first] == new_value
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    assert repr(twin).startswith(cls.__name__)
    with pytest.raises(ConfigError, match="valid parameters are"):
        est.set_params(not_a_param=1)


def test_mlp_constructor_matches_contract():
    assert list(MLPClassifier().get_params())[:11] == [
        "hidden_layer_sizes",
        "activation",
        "optimizer",
        "learning_rate",
        "batch_size",
        "epochs",
        "l2",
        "early_stopping",
        "validation_fraction",
        "random_state",
        "backend",
    ]
    p = MLPClassifier().get_params()
    assert (
        p["hidden_layer_sizes"],
        p["activation"],
        p["optimizer"],
        p["learning_rate"],
        p["batch_size"],
        p["epochs"],
        p["l2"],
        p["early_stopping"],
        p["validation_fraction"],
        p["random_state"],
        p["backend"],
    ) == ((256,), "relu", "adam", 1e-3, 256, 4, 0.0, False, 0.1, 0, "auto")


def test_clone_is_unfitted(blobs):
    X, y = blobs
    est = small(MLPClassifier).fit(X, y)
    with pytest.raises(NotFittedError):
        clone(est).predict(X)


def test_sklearn_model_selection_accepts_estimators(blobs):
    from sklearn.model_selection import cross_val_score

    X, y = blobs
    scores = cross_val_score(small(LogisticRegression, epochs=10), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8


# --------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("cls", [LogisticRegression, MLPClassifier, MLPRegressor])
def test_same_seed_same_model(blobs, cls):
    X, y = blobs
    target = y if cls is not MLPRegressor else X[:, 0] - X[:, 1]
    a = small(cls, random_state=7, early_stopping=True).fit(X, target)
    b = small(cls, random_state=7, early_stopping=True).fit(X, target)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    for wa, wb in zip(a._get_state()[1].values(), b._get_state()[1].values()):
        np.testing.assert_array_equal(wa, wb)
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    c = small(cls, random_state=8, early_stopping=True).fit(X, target)
    assert not np.array_equal(a._get_state()[1]["coefs_0"], c._get_state()[1]["coefs_0"])


# --------------------------------------------------------------------------- early stopping


def test_early_stopping_stops_and_restores_best():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((120, 20)).astype(np.float32)
    y = rng.integers(0, 2, 120)  # pure noise: the validation loss soon rises as the net memorises
    snapshots = []
    est = MLPClassifier(
        hidden_layer_sizes=(64,),
        learning_rate=0.01,
        batch_size=16,
        epochs=200,
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=4,
        random_state=0,
    )
    est.fit(X, y, callbacks=[lambda e, epoch, logs: snapshots.append(e.predict_proba(X))])
    val_losses = [h["val_loss"] for h in est.history_]
    assert len(est.history_) < 200, "did not stop early"
    best = int(np.argmin(val_losses))
    assert est.best_epoch_ == best + 1 and est.best_val_loss_ == val_losses[best]
    assert len(est.history_) == est.best_epoch_ + 4  # n_iter_no_change epochs without improvement
    assert all("val_score" in h for h in est.history_)
    # The final weights are the best epoch's, not the last epoch's.
    np.testing.assert_array_equal(est.predict_proba(X), snapshots[best])
    assert not np.array_equal(snapshots[-1], snapshots[best])


def test_early_stopping_regressor_records_r2(blobs):
    X, _ = blobs
    y = X[:, 0] * 2 + 1
    est = MLPRegressor(
        hidden_layer_sizes=(16,), epochs=40, batch_size=32, learning_rate=0.01, early_stopping=True, n_iter_no_change=3
    ).fit(X, y)
    assert est.history_[-1]["val_score"] > 0.8
    assert est.best_epoch_ <= len(est.history_)


def test_early_stopping_needs_validation_rows():
    with pytest.raises(DataError, match="validation"):
        MLPClassifier(early_stopping=True, validation_fraction=0.9).fit([[0.0], [1.0]], [0, 1])


# --------------------------------------------------------------------------- model-file state


def _predict_fn(est):
    return est.predict_proba if hasattr(est, "predict_proba") else est.predict


CORE = ("LinearRegression", "LogisticRegression", "MLPClassifier", "MLPRegressor")


@pytest.mark.parametrize("name", CORE)
def test_state_round_trip_predicts_identically(blobs, name):
    X, y = blobs
    cls = estimator_class(name)
    target = y.astype(str) if cls in (LogisticRegression, MLPClassifier) else X[:, 0] * 3 - X[:, 2]
    est = small(cls, early_stopping=True) if cls is not LinearRegression else small(cls, l2=0.1)
    est.fit(X, target)
    spec, arrays = est._get_state()
    json.loads(json.dumps(spec))  # the spec must be plain JSON
    assert spec["estimator"] == name and spec["params"] == json.loads(json.dumps(est.get_params()))
    assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays.values())
    back = cls._from_state(json.loads(json.dumps(spec)), {k: v.copy() for k, v in arrays.items()})
    assert type(back) is cls and back.get_params() == est.get_params()
    np.testing.assert_array_equal(_predict_fn(back)(X), _predict_fn(est)(X))
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    assert back.n_features_in_ == est.n_features_in_ and back.backend_ == "numpy"
    if hasattr(est, "classes_"):
        assert back.classes_.dtype == est.classes_.dtype and back.classes_.tolist() == est.classes_.tolist()
    assert back.history_ == json.loads(json.dumps(est.history_))


def test_state_with_damaged_arrays_is_model_file_error(blobs):
    X, y = blobs
    spec, arrays = small(MLPClassifier).fit(X, y)._get_state()
    bad = dict(arrays, coefs_0=arrays["coefs_0"][:2])
    with pytest.raises(ModelFileError):
        MLPClassifier._from_state(spec, bad)
    missing = {k: v for k, v in arrays.items() if k != "intercepts_1"}
    with pytest.raises(ModelFileError):
        MLPClassifier._from_state(spec, missing)
    with pytest.raises(ModelFileError):
        MLPClassifier._from_state({**spec, "params": {**spec["params"], "bogus": 1}}, arrays)
    hostile = {**spec, "fitted": {**spec["fitted"], "classes_dtype": "|O"}}
    with pytest.raises(ModelFileError):
        MLPClassifier._from_state(hostile, arrays)
    lin_spec, lin_arrays = LinearRegression().fit(X, X[:, 0])._get_state()
    with pytest.raises(ModelFileError):
        LinearRegression._from_state(lin_spec, {"coef": lin_arrays["coef"], "intercept": np.zeros(3, np.float32)})


def test_unknown_estimator_name_is_model_file_error():
    assert set(CORE) <= set(ESTIMATORS)
    with pytest.raises(ModelFileError, match="unknown estimator"):
        estimator_class("RandomForest")
    assert estimator_class("MLPClassifier") is MLPClassifier


# --------------------------------------------------------------------------- hostile input


def test_predict_before_fit():
    for cls in (LinearRegression, LogisticRegression, MLPClassifier, MLPRegressor):
        with pytest.raises(NotFittedError, match="fit"):
            cls().predict([[1.0, 2.0]])
    assert issubclass(NotFittedError, AidevopsError) and issubclass(NotFittedError, ValueError)


@pytest.mark.parametrize("cls", [LinearRegression, LogisticRegression, MLPClassifier, MLPRegressor])
def test_hostile_inputs_raise_clear_errors(blobs, cls):
    X, y = blobs
    y = y if cls in (LogisticRegression, MLPClassifier) else X[:, 0]
    est = small(cls)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="NaN or infinite"):
        est.fit(bad, y)
    bad[3, 1] = np.inf
    with pytest.raises(DataError, match="NaN or infinite"):
        est.fit(bad, y)
    with pytest.raises(DataError, match="2-D"):
        est.fit(X[:, 0], y)
    with pytest.raises(DataError, match="empty"):
        est.fit(np.empty((0, 4)), y[:0])
    with pytest.raises(DataError, match="samples but y has"):
        est.fit(X, y[:-1])
    with pytest.raises(DataError, match="numeric"):
        est.fit([["a", "b"]], y[:1])
    est.fit(X, y)
    with pytest.raises(DataError, match="4"):
        est.predict(X[:, :3])
    with pytest.raises(DataError, match="reshape"):
        est.predict(X[0])
    with pytest.raises(DataError, match="NaN or infinite"):
        est.predict(bad)
    with pytest.raises(DataError, match="empty"):
        est.predict(np.empty((0, 4)))
    assert est.predict(X[:1]).shape[0] == 1  # a single row is fine as (1, n_features)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"activation": "gelu"}, "activation"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"l2": -1}, "l2"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": ("8",)}, "hidden_layer_sizes"),
        ({"momentum": 1.5}, "momentum"),
        ({"dtype": "int8"}, "dtype"),
        ({"backend": "tpu"}, "backend"),
        ({"random_state": -1}, "random_state"),
    ],
)
def test_bad_params_are_config_errors(blobs, params, match):
    X, y = blobs
    with pytest.raises(ConfigError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_bad_targets(blobs):
    X, y = blobs
    with pytest.raises(DataError, match="single class"):
        small(MLPClassifier).fit(X, np.zeros(len(X), int))
    with pytest.raises(DataError, match="NaN"):
        small(MLPRegressor).fit(X, np.where(y == 0, np.nan, 1.0))
    with pytest.raises(DataError, match="integers or all be strings"):
        small(LogisticRegression).fit(X[:3], np.array([1, "a", 2.5], dtype=object))
    with pytest.raises(DataError, match="1-D"):
        small(MLPClassifier).fit(X, np.stack([y, y], axis=1))
    with pytest.raises(ConfigError, match="l2"):
        LinearRegression(l2=-1).fit(X, y)


def test_divergence_is_reported_not_silent(diabetes):
    Xtr, _, ytr, _ = diabetes
    with pytest.raises(ConfigError, match="diverged"):
        MLPRegressor(optimizer="sgd", learning_rate=10.0, epochs=20, batch_size=16).fit(Xtr * 100, ytr)


def test_errors_are_one_sentence(blobs):
    X, y = blobs
    with pytest.raises(DataError) as exc:
        small(MLPClassifier).fit(X, y).predict(X[:, :2])
    msg = str(exc.value)
    assert msg.endswith(".") and "\n" not in msg


# --------------------------------------------------------------------------- engine gradients


def _engine_turned_off() -> bool:
    from aidevops_ext.trainer.mlp import ENGINE_ENV_VAR

    return os.environ.get(ENGINE_ENV_VAR, "").strip().lower() in ("0", "false", "no", "off")


def _engine(name):
    """None for the xp code, or the compiled NumPy engine.

    Skipped only when AIDEVOPS_NUMBA=0 turns the engine off on purpose: an engine that fails to load (an
    ImportError, a missing BLAS symbol) fails these tests instead of silently skipping them.
    """
    if name == "xp":
        return None
    from aidevops_ext.trainer import mlp

    engine = mlp.load_engine()
    if engine is None:
        if _engine_turned_off():
            pytest.skip("AIDEVOPS_NUMBA turns the compiled engine off")
        pytest.fail(f"the compiled engine did not load: {mlp._engine_note}")
    return engine


def test_the_compiled_engine_loads_unless_turned_off_on_purpose():
    from aidevops_ext.trainer import mlp

    if _engine_turned_off():
        pytest.skip("AIDEVOPS_NUMBA turns the compiled engine off")
    assert mlp.load_engine() is not None, f"the compiled engine did not load: {mlp._engine_note}"


@pytest.mark.parametrize("engine", ["xp", "compiled"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("output, k", [("softmax", 3), ("logistic", 1), ("identity", 2)])
@pytest.mark.parametrize("exact_shift", [False, True])
def test_engine_gradients_match_finite_differences(activation, output, k, exact_shift, engine):
    from aidevops_ext.trainer.mlp import _mean_loss, _Net, _Trainer

    rng = np.random.default_rng(0)
    n, d = 7, 4  # a batch of 7 rows with batch_size 5: exercises the partial last batch's views too
    X = rng.standard_normal((n, d))
    if output == "softmax":
        Y = np.eye(k)[rng.integers(0, k, n)]
    elif output == "logistic":
        Y = rng.integers(0, 2, (n, 1)).astype(float)
    else:
        Y = rng.standard_normal((n, k))
    # The compiled engine reads class indices for softmax; exact_shift=True runs it on the one-hot rows instead.
    labels = Y.argmax(axis=1) if engine == "compiled" and output == "softmax" and not exact_shift else None
    net = _Net([d, 5, 3, k], activation, output, np, np.float64)
    net.init(rng)
    l2 = 0.1
    # lr 0: the step leaves weights alone
    trainer = _Trainer(net, 5, "sgd", 0.0, 0.0, l2, exact_shift=exact_shift, engine=_engine(engine))

    def objective(rows):
        z = net.forward(X[rows])
        penalty = 0.5 * l2 * sum(float((W[:-1] ** 2).sum()) for W in net.layers)
        return float(_mean_loss(np, output, z, Y[rows])) + penalty

    for rows in (np.arange(5), np.arange(5, 7)):
        before = net.params.copy()
        loss_sum = trainer.step(X, Y, rows, trainer.buffers(len(rows)), labels)
        np.testing.assert_array_equal(net.params, before)
        assert float(loss_sum) / len(rows) == pytest.approx(
            objective(rows) - 0.5 * l2 * sum(float((W[:-1] ** 2).sum()) for W in net.layers), rel=1e-9
        )
        numeric = np.empty_like(net.params)
        for j in range(net.params.size):
            saved = net.params[j]
            net.params[j] = saved + 1e-6
            up = objective(rows)
            net.params[j] = saved - 1e-6
            down = objective(rows)
            net.params[j] = saved
            numeric[j] = (up - down) / 2e-6
        np.testing.assert_allclose(trainer.grads, numeric, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("engine", ["xp", "compiled"])
def test_engine_softmax_survives_huge_logits(engine):
    from aidevops_ext.trainer.mlp import _mean_loss, _Net, _Trainer

    rng = np.random.default_rng(0)
    net = _Net([3, 4], "relu", "softmax", np, np.float32)
    net.init(rng)
    net.params *= 100  # logits in the thousands: exp(z) overflows without a shift
    X = (rng.standard_normal((6, 3)) * 10).astype(np.float32)
    Y = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]]
    trainer = _Trainer(net, 6, "sgd", 0.0, 0.0, 0.0, exact_shift=False, engine=_engine(engine))
    with np.errstate(over="ignore"):
        loss = trainer.step(X, Y, np.arange(6), trainer.full)
    assert np.isfinite(loss) and np.isfinite(trainer.grads).all()
    assert float(loss) / 6 == pytest.approx(float(_mean_loss(np, "softmax", net.forward(X), Y)), rel=1e-5)


# --------------------------------------------------------------------------- the compiled NumPy engine


def _fit_both(make, X, y, monkeypatch):
    """Fit twice, with the compiled engine and with the xp code (AIDEVOPS_NUMBA=0)."""
    _engine("compiled")
    compiled = make().fit(X, y)
    monkeypatch.setenv("AIDEVOPS_NUMBA", "0")
    reference = make().fit(X, y)
    monkeypatch.delenv("AIDEVOPS_NUMBA")
    return compiled, reference


@pytest.mark.parametrize(
    "make, target",
    [
        (lambda: MLPClassifier(hidden_layer_sizes=(16,), epochs=4, batch_size=32), "cls"),
        (
            lambda: MLPClassifier(
                hidden_layer_sizes=(16, 8), activation="tanh", optimizer="sgd", l2=1e-3, epochs=4, batch_size=50
            ),
            "cls",
        ),
        (
            lambda: MLPClassifier(
                hidden_layer_sizes=(12,), activation="logistic", epochs=3, batch_size=64, early_stopping=True
            ),
            "binary",
        ),
        (lambda: MLPClassifier(hidden_layer_sizes=(16,), epochs=3, batch_size=40, dtype="float64"), "cls"),
        (
            lambda: MLPRegressor(
                hidden_layer_sizes=(16,),
                activation="identity",
                optimizer="sgd",
                momentum=0.0,
                learning_rate=0.01,
                epochs=3,
                batch_size=32,
            ),
            "reg",
        ),
        (lambda: MLPRegressor(hidden_layer_sizes=(16,), epochs=3, batch_size=1000), "reg2"),
        (lambda: LogisticRegression(epochs=3, batch_size=16), "cls"),
    ],
)
def test_compiled_engine_trains_like_the_xp_code(make, target, blobs, monkeypatch):
    X, y = blobs
    y = {"cls": y, "binary": y == 1, "reg": X[:, 0] - 2 * X[:, 1], "reg2": np.c_[X[:, 0], X[:, 1] * X[:, 2]]}[target]
    compiled, reference = _fit_both(make, X, y, monkeypatch)
    # Same initial weights, batches and update rule; only float rounding differs (summation order,
    # exp and the softmax's max shift), so the results agree closely, not bit for bit.
    assert [h["epoch"] for h in compiled.history_] == [h["epoch"] for h in reference.history_]
    loose = 2e-3 if compiled._net.dtype == np.float32 else 1e-9
    np.testing.assert_allclose(
        [h["loss"] for h in compiled.history_], [h["loss"] for h in reference.history_], rtol=loose
    )
    for a, b in zip(compiled._get_state()[1].values(), reference._get_state()[1].values()):
        np.testing.assert_allclose(a, b, rtol=loose, atol=loose)
    out = "predict_proba" if hasattr(compiled, "predict_proba") else "predict"
    np.testing.assert_allclose(getattr(compiled, out)(X), getattr(reference, out)(X), rtol=loose, atol=loose)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "activation, output, optimizer, l2",
    [
        ("relu", "softmax", "adam", 0.0),
        ("tanh", "identity", "sgd", 1e-3),
        ("logistic", "logistic", "adam", 1e-2),
    ],
)
def test_compiled_engine_split_over_threads_matches_one_thread(activation, output, optimizer, l2, dtype):
    from aidevops_ext.trainer.mlp import _Net, _Trainer

    engine = _engine("compiled")
    rng = np.random.default_rng(1)
    n, d, k = 1000, 6, {"softmax": 4, "identity": 2, "logistic": 1}[output]
    X = rng.standard_normal((n, d)).astype(dtype)
    labels = rng.integers(0, k, n) if output == "softmax" else None
    Y = (
        np.eye(k)[labels]
        if output == "softmax"
        else rng.integers(0, 2, (n, k))
        if output == "logistic"
        else rng.standard_normal((n, k))
    ).astype(dtype)
    runs = []
    for parts in (1, 2, 3):
        net = _Net([d, 16, 8, k], activation, output, np, dtype)
        net.init(np.random.default_rng(0))
        trainer = _Trainer(net, 100, optimizer, 0.01, 0.9, l2, exact_shift=False, engine=engine, n_rows=n, parts=parts)
        assert trainer.parts == parts
        order_rng = np.random.default_rng(2)
        losses = [trainer.epoch(X, Y, order_rng.permutation(n)[: n - 37], labels) for _ in range(3)]  # a partial batch
        runs.append((net.params.copy(), losses, trainer.optimizer.t))
    # Each part sums its rows' gradients; the update adds the parts' sums: only the rounding differs.
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for params, losses, t in runs[1:]:
        assert t == runs[0][2] == 3 * 10
        np.testing.assert_allclose(losses, runs[0][1], rtol=tol)
        np.testing.assert_allclose(params, runs[0][0], rtol=tol, atol=tol)


def test_compiled_engine_gradient_split_over_threads_is_exact():
    from aidevops_ext.trainer.mlp import _mean_loss, _Net, _Trainer

    engine = _engine("compiled")
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((9, 4)), np.eye(3)[rng.integers(0, 3, 9)]
    net = _Net([4, 5, 3], "tanh", "softmax", np, np.float64)
    net.init(rng)
    one = _Trainer(net, 9, "sgd", 0.0, 0.0, 0.1, exact_shift=False, engine=engine, parts=1)
    two = _Trainer(net, 9, "sgd", 0.0, 0.0, 0.1, exact_shift=False, engine=engine, parts=2)
    for rows in (np.arange(9), np.arange(1)):  # one row: a part with no rows at all
        loss1 = one.step(X, Y, rows, one.buffers(len(rows)))
        loss2 = two.step(X, Y, rows, two.buffers(len(rows)))
        assert loss2 == pytest.approx(loss1, rel=1e-12)
        assert float(loss1) / len(rows) == pytest.approx(
            float(_mean_loss(np, "softmax", net.forward(X[rows]), Y[rows]))
        )
        np.testing.assert_allclose(two.e_grads.sum(axis=0), one.grads, rtol=1e-12, atol=1e-15)


def test_compiled_engine_releases_started_parts_when_a_thread_cannot_start(monkeypatch):
    import threading

    from aidevops_ext.trainer import mlp
    from aidevops_ext.trainer.mlp import _Net, _Trainer

    engine = _engine("compiled")
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((600, 4)), np.eye(3)[rng.integers(0, 3, 600)]
    net = _Net([4, 8, 3], "relu", "softmax", np, np.float64)
    net.init(rng)
    trainer = _Trainer(net, 60, "adam", 0.01, 0.9, 0.0, exact_shift=False, engine=engine, n_rows=600, parts=3)
    blas_threads = engine.blas_threads()
    started = []
    real_start = threading.Thread.start

    def flaky_start(self):
        if started:
            raise RuntimeError("can't start new thread")
        started.append(self)
        real_start(self)

    monkeypatch.setattr(mlp.threading.Thread, "start", flaky_start)
    with pytest.raises(RuntimeError, match="can't start"):
        trainer.epoch(X, Y, np.arange(600))
    assert not started[0].is_alive()  # the part that did start left its barrier and ended
    assert engine.blas_threads() == blas_threads  # BLAS's thread count is restored
    monkeypatch.undo()
    assert np.isfinite(trainer.epoch(X, Y, np.arange(600)))


def test_concurrent_split_fits_restore_blas_threads():
    import threading

    from aidevops_ext.trainer.mlp import _Net, _Trainer

    engine = _engine("compiled")
    before = engine.blas_threads()
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((800, 4)), np.eye(3)[rng.integers(0, 3, 800)]
    results = []

    def fit_one(seed):
        net = _Net([4, 8, 3], "relu", "softmax", np, np.float64)
        net.init(np.random.default_rng(seed))
        trainer = _Trainer(net, 80, "adam", 0.01, 0.9, 0.0, exact_shift=False, engine=engine, n_rows=800, parts=2)
        results.append(sum(trainer.epoch(X, Y, np.random.default_rng(e).permutation(800)) for e in range(3)))

    fits = [threading.Thread(target=fit_one, args=(s,)) for s in (0, 1, 2)]
    for f in fits:
        f.start()
    for f in fits:
        f.join()
    assert len(results) == 3 and np.isfinite(results).all()
    assert engine.blas_threads() == before


def test_compiled_engine_learns_digits_as_well(digits, monkeypatch):
    Xtr, Xte, ytr, yte = digits
    compiled, reference = _fit_both(
        lambda: MLPClassifier(epochs=30, batch_size=64, random_state=0), Xtr, ytr, monkeypatch
    )
    assert compiled.score(Xte, yte) > 0.95
    assert abs(compiled.score(Xte, yte) - reference.score(Xte, yte)) <= 0.01


def test_compiled_engine_reports_divergence(diabetes):
    _engine("compiled")
    Xtr, _, ytr, _ = diabetes
    with pytest.raises(ConfigError, match="diverged"):
        MLPRegressor(learning_rate=1e6, optimizer="sgd", epochs=3).fit(Xtr * 1e3, ytr * 1e6)


def test_without_numba_the_xp_code_trains(monkeypatch, blobs):
    import sys

    from aidevops_ext.trainer import mlp

    X, y = blobs
    monkeypatch.setenv("AIDEVOPS_NUMBA", "off")
    assert mlp.load_engine() is None
    monkeypatch.delenv("AIDEVOPS_NUMBA")
    # Numba missing: importing the kernels module fails, and fit falls back to the xp code.
    import aidevops_ext.trainer

    monkeypatch.delitem(sys.modules, "aidevops_ext.trainer.kernels", raising=False)
    monkeypatch.delattr(aidevops_ext.trainer, "kernels", raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)
    assert mlp.load_engine() is None
    est = small(MLPClassifier, epochs=10, learning_rate=0.05).fit(X, y)
    assert est.score(X, y) > 0.9


def test_without_numpys_blas_the_xp_code_trains(monkeypatch, blobs):
    from aidevops_ext.trainer import mlp

    kernels = _engine("compiled")
    monkeypatch.setattr(kernels, "GEMM", {})
    assert mlp.load_engine() is None
    X, y = blobs
    assert small(MLPClassifier, epochs=10, learning_rate=0.05).fit(X, y).score(X, y) > 0.9


def test_numba_loads_at_first_fit_not_at_import():
    import subprocess
    import sys

    code = (
        "import sys, aidevops_ext.trainer\n"
        "assert 'numba' not in sys.modules and 'aidevops_ext.trainer.kernels' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fast_exp_is_accurate():
    kernels = _engine("compiled")
    from numba import njit

    @njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = kernels.fast_exp(x[i])

    x = np.concatenate([np.linspace(-87, 0, 200_001), [0.0, -1e-30, -86.99, -87.5, -200.0, -np.inf, np.nan]])
    for dtype, ulps in ((np.float32, 1), (np.float64, 1)):
        xs = x.astype(dtype)
        got = np.empty_like(xs)
        apply(xs, got)
        want = np.exp(xs.astype(np.float64))
        finite = xs >= -87
        spacing = np.spacing(want[finite].astype(dtype)).astype(np.float64)
        assert np.max(np.abs(got[finite] - want[finite]) / spacing) <= ulps
        assert np.all(got[xs < -87] == 0) or dtype == np.float64
        assert np.isnan(got[-1])
