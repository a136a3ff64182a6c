"""aidevops_ext.trainer.backend: choosing NumPy or CuPy, never silently."""

from __future__ import annotations

import logging
import sys
import types

import numpy as np
import pytest

from aidevops_ext.errors import BackendUnavailableError, ConfigError
from aidevops_ext.trainer import cupy_available, get_backend
from tests.support.imports import modules_loaded_by

needs_gpu = pytest.mark.skipif(not cupy_available(), reason="needs a CUDA device: cupy.cuda.is_available() is false")


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv("AIDEVOPS_BACKEND", raising=False)


def fake_cupy(available: bool) -> types.ModuleType:
    """A stand-in `cupy` module: enough for selection logic (numpy does the array work)."""
    mod = types.ModuleType("cupy")
    mod.cuda = types.SimpleNamespace(is_available=lambda: available)
    mod.asarray = np.asarray
    mod.asnumpy = np.asarray
    return mod


def test_numpy_is_explicit_and_reported(caplog):
    with caplog.at_level(logging.INFO, logger="aidevops.trainer"):
        be = get_backend("numpy")
    assert be.name == "numpy" and be.xp is np
    assert "array backend: numpy" in caplog.text


def test_auto_without_cuda_is_numpy(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(False))
    assert cupy_available() is False
    with caplog.at_level(logging.INFO, logger="aidevops.trainer"):
        assert get_backend("auto").name == "numpy"
    assert "no usable CUDA device" in caplog.text


def test_explicit_cupy_without_cuda_raises_not_falls_back(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(False))
    with pytest.raises(BackendUnavailableError, match="cupy.*backend='numpy'"):
        get_backend("cupy")


def test_cupy_not_installed_means_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    assert cupy_available() is False
    with pytest.raises(BackendUnavailableError):
        get_backend("cupy")


def test_cuda_runtime_error_means_unavailable(monkeypatch):
    mod = fake_cupy(True)

    def broken() -> bool:
        raise RuntimeError("cudaErrorInsufficientDriver")

    mod.cuda = types.SimpleNamespace(is_available=broken)
    monkeypatch.setitem(sys.modules, "cupy", mod)
    assert cupy_available() is False


def test_auto_with_cuda_picks_cupy(monkeypatch):
    mod = fake_cupy(True)
    monkeypatch.setitem(sys.modules, "cupy", mod)
    be = get_backend("auto")
    assert be.name == "cupy" and be.xp is mod
    assert get_backend("cupy").xp is mod


def test_env_var_is_honoured_by_auto(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(True))
    monkeypatch.setenv("AIDEVOPS_BACKEND", "numpy")
    assert get_backend("auto").name == "numpy"
    assert get_backend().name == "numpy"
    # An explicit argument wins over the environment.
    assert get_backend("cupy").name == "cupy"


def test_env_var_asking_for_missing_cupy_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(False))
    monkeypatch.setenv("AIDEVOPS_BACKEND", "cupy")
    with pytest.raises(BackendUnavailableError, match="AIDEVOPS_BACKEND"):
        get_backend("auto")


def test_bad_env_var_is_config_error(monkeypatch):
    monkeypatch.setenv("AIDEVOPS_BACKEND", "tpu")
    with pytest.raises(ConfigError, match="AIDEVOPS_BACKEND"):
        get_backend()


@pytest.mark.parametrize("name", ["tpu", "", None, 3])
def test_unknown_backend_name_is_config_error(name):
    with pytest.raises(ConfigError, match="backend"):
        get_backend(name)


def test_backend_conversions_on_numpy():
    be = get_backend("numpy")
    a = be.asarray([1, 2, 3], dtype=np.float32)
    assert a.dtype == np.float32
    assert isinstance(be.asnumpy(a), np.ndarray)


def test_estimator_reports_backend_and_refuses_missing_cupy(monkeypatch):
    from aidevops_ext.trainer import MLPClassifier

    X = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(False))
    est = MLPClassifier(hidden_layer_sizes=(4,), epochs=1, backend="auto").fit(X, y)
    assert est.backend_ == "numpy"
    with pytest.raises(BackendUnavailableError):
        MLPClassifier(epochs=1, backend="cupy").fit(X, y)


def test_import_is_cheap():
    heavy = ("sklearn", "mlflow", "cupy", "pandas", "torch", "papermill", "tqdm", "scipy")
    assert modules_loaded_by("import aidevops_ext.trainer", heavy) == []


@needs_gpu
@pytest.mark.gpu
def test_cupy_matches_numpy_on_a_small_problem():
    from sklearn.base import clone

    from aidevops_ext.trainer import LinearRegression, LogisticRegression, MLPClassifier, MLPRegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 8)).astype(np.float32)
    y_cls = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int) + (X[:, 2] > 0.5)
    y_reg = X @ rng.standard_normal(8) + 0.1 * rng.standard_normal(600)
    cases = [
        (MLPClassifier(hidden_layer_sizes=(32,), epochs=5, batch_size=64), y_cls),
        (MLPRegressor(hidden_layer_sizes=(16, 8), activation="tanh", epochs=5, batch_size=64), y_reg),
        (LogisticRegression(epochs=5, optimizer="sgd", learning_rate=0.05), y_cls),
        (LinearRegression(l2=0.1), y_reg),
    ]
    for est, y in cases:
        on_cpu = est.set_params(backend="numpy").fit(X, y)
        cpu_out = on_cpu.predict_proba(X) if hasattr(on_cpu, "predict_proba") else on_cpu.predict(X)
        on_gpu = clone(est).set_params(backend="cupy").fit(X, y)
        assert on_gpu.backend_ == "cupy"
        gpu_out = on_gpu.predict_proba(X) if hasattr(on_gpu, "predict_proba") else on_gpu.predict(X)
        assert isinstance(gpu_out, np.ndarray)
        # Same initial weights and batch order; only floating-point summation order differs.
        np.testing.assert_allclose(gpu_out, cpu_out, rtol=2e-3, atol=2e-3)
        assert [h["epoch"] for h in on_gpu.history_] == [h["epoch"] for h in on_cpu.history_]
