"""aidevops_ext.trainer.optim and .callbacks: update rules against textbook formulas, and per-epoch hooks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aidevops_ext.errors import ConfigError
from aidevops_ext.trainer import Callback, LinearRegression, LogisticRegression, MLPClassifier, ProgressBar
from aidevops_ext.trainer.callbacks import CallbackList, interactive
from aidevops_ext.trainer.optim import SGD, Adam, make_optimizer


def reference_adam(p, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """PyTorch's Adam, written out in float64."""
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        p = p - lr * m_hat / (np.sqrt(v) / math.sqrt(1 - b2**t) + eps)
    return p


def test_adam_matches_reference_formula():
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(50)
    grads = [rng.standard_normal(50) * s for s in (1.0, 0.1, 3.0, 1e-4, 0.5)]
    p = p0.copy()
    opt = Adam([p], learning_rate=0.01)
    for g in grads:
        opt.step([g])
    np.testing.assert_allclose(p, reference_adam(p0, grads, lr=0.01), rtol=1e-12, atol=1e-12)
    assert opt.t == 5


def test_sgd_momentum_matches_reference_formula():
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(20)
    grads = [rng.standard_normal(20) for _ in range(4)]
    p = p0.copy()
    opt = SGD([p], learning_rate=0.1, momentum=0.9)
    for g in grads:
        opt.step([g])
    ref, v = p0.copy(), np.zeros(20)
    for g in grads:
        v = 0.9 * v - 0.1 * g
        ref = ref + v
    np.testing.assert_allclose(p, ref, rtol=1e-12)
    plain = p0.copy()
    SGD([plain], learning_rate=0.1, momentum=0.0).step([grads[0]])
    np.testing.assert_allclose(plain, p0 - 0.1 * grads[0])


@pytest.mark.parametrize("name, lr", [("adam", 0.1), ("sgd", 0.05)])
def test_optimizers_minimise_a_quadratic_in_place(name, lr):
    target = np.array([3.0, -1.0, 0.5], dtype=np.float32)
    a, b = np.zeros(2, np.float32), np.zeros(1, np.float32)
    opt = make_optimizer(name, [a, b], lr)
    ids = (id(a), id(b))
    for _ in range(300):
        opt.step([2 * (a - target[:2]), 2 * (b - target[2:])])
    assert (id(a), id(b)) == ids and a.dtype == np.float32
    np.testing.assert_allclose(np.concatenate([a, b]), target, atol=0.05)


def test_unknown_optimizer():
    with pytest.raises(ConfigError, match="adam, sgd"):
        make_optimizer("rmsprop", [np.zeros(2)], 0.1)


@pytest.mark.parametrize(
    "name, dtype", [("adam", np.float32), ("adam", np.float64), ("sgd", np.float32), ("sgd-plain", np.float32)]
)
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_compiled_engine_update_is_the_xp_update_bit_for_bit(name, dtype, parts):
    """The compiled engine's fused optimizer pass does the xp code's float operations, in the same order."""
    from aidevops_ext.trainer.mlp import load_engine

    engine = load_engine()
    if engine is None:
        pytest.skip("the compiled engine needs numba and NumPy's bundled BLAS")
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(1001).astype(dtype)
    grad_rows = [rng.standard_normal((parts, 1001)).astype(dtype) * s for s in (1.0, 0.1, 3.0, 1e-4, 0.5)]
    ref = p0.copy()
    momentum = 0.0 if name == "sgd-plain" else 0.9
    opt = make_optimizer(name[:4].rstrip("-"), [ref], 0.01, momentum=momentum)
    got = p0.copy()
    m1 = np.zeros_like(p0) if name != "sgd-plain" else np.zeros(0, dtype)
    m2 = np.zeros_like(p0)
    typed = np.dtype(dtype).type
    for t, G in enumerate(grad_rows, start=1):
        g = G[0].copy()
        for q in range(1, parts):
            g += G[q]
        opt.step([g])
        if name == "adam":  # kind 0: the betas, the step's scale and epsilon over it
            a = 0.01 * (1 - 0.9) / (1 - 0.9**t)
            c = math.sqrt((1 - 0.999) / (1 - 0.999**t))
            kind, coefficients = 0, (0.9, 0.999, c / a, 1e-8 / a, 0, 0)
        else:  # kind 1: the learning rate and momentum
            kind, coefficients = 1, (0, 0, 0, 0, 0.01, momentum)
        for lo, hi in ((0, 500), (500, 1001)):  # two parameter shares, as two parts update them
            engine.update(got, G.copy(), m1, m2, lo, hi, kind, *map(typed, coefficients))
        np.testing.assert_array_equal(got, ref)


# --------------------------------------------------------------------------- callbacks


class Recorder(Callback):
    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[tuple] = []
        self.stop_at = stop_at

    def on_train_begin(self, estimator, n_epochs):
        self.calls.append(("begin", n_epochs))

    def on_epoch_end(self, estimator, epoch, logs):
        self.calls.append(("epoch", epoch, dict(logs)))
        return self.stop_at is not None and epoch >= self.stop_at

    def on_train_end(self, estimator):
        self.calls.append(("end",))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int)


def test_callbacks_called_once_per_epoch(data):
    X, y = data
    rec = Recorder()
    est = MLPClassifier(hidden_layer_sizes=(4,), epochs=5, batch_size=32).fit(X, y, callbacks=[rec])
    assert rec.calls[0] == ("begin", 5) and rec.calls[-1] == ("end",)
    epochs = [c for c in rec.calls if c[0] == "epoch"]
    assert [c[1] for c in epochs] == [1, 2, 3, 4, 5]
    assert [c[2] for c in epochs] == est.history_
    assert all({"epoch", "loss", "seconds"} <= set(c[2]) for c in epochs)


def test_callback_returning_true_stops_training(data):
    X, y = data
    rec = Recorder(stop_at=3)
    est = MLPClassifier(hidden_layer_sizes=(4,), epochs=50, batch_size=32).fit(X, y, callbacks=[rec])
    assert len(est.history_) == 3 and est.n_iter_ == 3
    assert rec.calls[-1] == ("end",)
    est.predict(X)  # still a usable, fitted model


def test_plain_function_is_a_callback_and_gets_every_epochs_logs(data):
    X, y = data
    logged: list[tuple[str, float, int]] = []

    def collect(estimator, epoch, logs):
        for key, value in logs.items():
            if key != "epoch":
                logged.append((key, value, epoch))

    LogisticRegression(epochs=4, early_stopping=True).fit(X, y, callbacks=collect)
    assert {k for k, _, _ in logged} == {"loss", "val_loss", "val_score", "seconds"}
    assert sorted({e for _, _, e in logged}) == [1, 2, 3, 4]


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A real SQLite MLflow store in tmp_path, made the tracking URI for this test only."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # MLflow's Default experiment puts its artifact root under the working folder
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # Whatever an earlier test set with mlflow.set_tracking_uri would win over the variable; it comes back afterwards.
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    yield mlflow.MlflowClient(tracking_uri=uri)
    while mlflow.active_run() is not None:  # a failing test must not leave its run active for the next
        mlflow.end_run("FAILED")


def test_mlflow_epoch_logger_writes_every_epoch_to_the_active_run(data, mlflow_store):
    import mlflow

    from aidevops_ext.tracking import MLflowEpochLogger

    X, y = data
    X_val, y_val = X[:50], y[:50]
    with mlflow.start_run() as run:
        est = MLPClassifier(hidden_layer_sizes=(4,), epochs=4, batch_size=32, random_state=0).fit(
            X, y, callbacks=[MLflowEpochLogger(X_val, y_val)]
        )
    stored = mlflow_store.get_run(run.info.run_id).data.metrics
    assert set(stored) == {"loss", "seconds", "val_score"}, "every number in the logs, and no 'epoch' metric"
    for key in ("loss", "seconds"):
        history = sorted(mlflow_store.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == [(h["epoch"], float(h[key])) for h in est.history_], key
    val = sorted(mlflow_store.get_metric_history(run.info.run_id, "val_score"), key=lambda m: m.step)
    assert [m.step for m in val] == [1, 2, 3, 4] and all(0.0 <= m.value <= 1.0 for m in val)
    # The score logged after the last epoch is the fitted model's score on the validation rows.
    assert val[-1].value == pytest.approx(est.score(X_val, y_val))


def test_mlflow_epoch_logger_keeps_the_estimators_own_validation_score(data, mlflow_store):
    import mlflow

    from aidevops_ext.tracking import MLflowEpochLogger

    X, y = data
    with mlflow.start_run() as run:
        est = LogisticRegression(epochs=3, early_stopping=True).fit(X, y, callbacks=[MLflowEpochLogger(X[:50], y[:50])])
    history = sorted(mlflow_store.get_metric_history(run.info.run_id, "val_score"), key=lambda m: m.step)
    # With its own validation split the estimator reports val_score; the logger must not replace it with its own.
    assert [(m.step, m.value) for m in history] == [(h["epoch"], float(h["val_score"])) for h in est.history_]
    assert set(mlflow_store.get_run(run.info.run_id).data.metrics) == {"loss", "seconds", "val_loss", "val_score"}


def test_closed_form_model_reports_one_epoch(data):
    X, _ = data
    rec = Recorder()
    LinearRegression().fit(X, X[:, 0] * 2, callbacks=[rec])
    assert [c[0] for c in rec.calls] == ["begin", "epoch", "end"]
    assert rec.calls[1][2]["loss"] < 1e-6


def test_callback_errors_end_training_cleanly(data):
    X, y = data
    rec = Recorder()

    def boom(estimator, epoch, logs):
        raise RuntimeError("tracker down")

    with pytest.raises(RuntimeError, match="tracker down"):
        MLPClassifier(hidden_layer_sizes=(4,), epochs=3).fit(X, y, callbacks=[rec, boom])
    assert rec.calls[-1] == ("end",)  # on_train_end still ran (the progress bar closes)


def test_bad_callback_is_config_error(data):
    X, y = data
    with pytest.raises(ConfigError, match="callbacks"):
        MLPClassifier(epochs=1).fit(X, y, callbacks=[42])


def test_progress_bar_shows_one_bar_per_fit(data, capsys):
    X, y = data
    MLPClassifier(hidden_layer_sizes=(4,), epochs=3).fit(X, y, progress=True)
    err = capsys.readouterr().err
    assert "MLPClassifier" in err and "3/3" in err and "epoch" in err


def test_progress_false_and_none_outside_a_terminal_are_silent(data, capsys):
    X, y = data
    assert not interactive()  # pytest captures stderr: not a tty
    MLPClassifier(hidden_layer_sizes=(4,), epochs=2).fit(X, y, progress=False)
    MLPClassifier(hidden_layer_sizes=(4,), epochs=2).fit(X, y)
    assert capsys.readouterr().err == ""


def test_callback_list_adds_a_bar_only_when_asked():
    assert not CallbackList(None, progress=False).callbacks
    assert isinstance(CallbackList(None, progress=True).callbacks[0], ProgressBar)
    own = ProgressBar(desc="mine")
    assert CallbackList([own], progress=True).callbacks == [own]
