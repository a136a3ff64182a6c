"""Loading only what a registry vouches for: the admin API takes `models:/` URIs only, and a pyfunc whose
loading unpickles (or runs the model's own code) needs an explicit opt-in; our `.npz` models and skops
scikit-learn models need none."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from starlette.testclient import TestClient

from aidevops_ext.errors import ConfigError
from aidevops_ext.pipeline.spec import parse_serving
from aidevops_ext.serving.errors import ModelRefused
from aidevops_ext.serving.loader import load_model_uri, runs_model_code
from tests.serving.conftest import ADMIN_TOKEN, server_env
from tests.support.servers import free_port

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def strict(app_factory):
    """abc@champion on a server that was not given the opt-in."""
    with TestClient(app_factory(allow_pickle=False)) as c:
        yield c


@pytest.mark.parametrize(
    "uri",
    [
        "/tmp/abc-v1.npz",
        "./models/abc-v1.npz",
        "runs:/0123456789abcdef/model",
        "s3://bucket/abc/model",
        "http://evil.example/model",
        "https://evil.example/model",
        "file:///tmp/model",
        "models:/abc",
        "models:/abc/../../x",
        "",
        None,
        42,
    ],
)
@pytest.mark.parametrize("route", ["/admin/switch", "/admin/canary", "/admin/shadow"])
def test_the_admin_api_refuses_every_uri_that_is_not_a_registry_uri(strict, route, uri):
    before = strict.app.state.server.slots.state
    r = strict.post(route, json={"model_uri": uri, "share": 0.5}, headers=ADMIN)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert "models:/NAME/VERSION or models:/NAME@ALIAS" in error and error.count(". ") == 0
    assert strict.app.state.server.slots.state is before


def test_the_admin_api_still_switches_to_a_registered_version(app_factory):
    with TestClient(app_factory(allow_pickle=False)) as c:
        r = c.post("/admin/switch", json={"model_uri": "models:/abc/2"}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["slots"]["active"]["version"] == "2"
        r = c.post("/admin/canary", json={"model_uri": "models:/abc@champion", "share": 0.1}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["slots"]["canary"]["version"] == "1"


def test_a_cloudpickled_model_is_refused_without_the_opt_in_and_the_refusal_names_both_ways(strict):
    before = strict.app.state.server.slots.state
    r = strict.post("/admin/switch", json={"model_uri": "models:/abc/3"}, headers=ADMIN)
    assert r.status_code == 422
    error = r.json()["error"]
    assert "cloudpickled python model" in error
    assert "--allow-pickle" in error and "serving: {allow_pickle: true}" in error
    assert strict.app.state.server.slots.state is before


def test_with_the_opt_in_the_same_model_loads_and_is_judged_by_the_smoke_test(app_factory, reg):
    with TestClient(app_factory(allow_pickle=True)) as c:
        r = c.post("/admin/switch", json={"model_uri": "models:/abc/3"}, headers=ADMIN)
        assert r.status_code == 422 and "NaN" in r.json()["error"]  # loaded, then refused for its answers
    model = load_model_uri("models:/sum/1", reg.ws, allow_pickle=True)
    assert model.kind != "aidevops"
    with pytest.raises(ModelRefused, match="--allow-pickle"):
        load_model_uri("models:/sum/1", reg.ws)


def test_our_npz_models_need_no_opt_in(reg):
    assert load_model_uri("models:/abc/1", reg.ws).kind == "aidevops"
    assert load_model_uri(str(reg.model_file), reg.ws).kind == "aidevops"


def _sklearn(tmp_path, fmt: str, **kw):
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(0).normal(size=(60, 3))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    path = tmp_path / fmt
    mlflow.sklearn.save_model(model, str(path), serialization_format=fmt, **kw)
    return path, X


def test_a_skops_scikit_learn_model_loads_without_the_opt_in_and_a_pickled_one_does_not(reg, tmp_path):
    path, X = _sklearn(tmp_path, "skops")
    served = load_model_uri(str(path), reg.ws)
    assert np.asarray(served.predict(X[:5])).shape == (5,)
    pickled, _ = _sklearn(tmp_path, "cloudpickle")
    with pytest.raises(ModelRefused, match="scikit-learn model saved as cloudpickle.*--allow-pickle"):
        load_model_uri(str(pickled), reg.ws)
    assert load_model_uri(str(pickled), reg.ws, allow_pickle=True).predict(X[:5]) is not None


@pytest.mark.parametrize(
    "flavors,why",
    [
        ({"python_function": {"loader_module": "aidevops_ext.pyfunc_model", "data": "model"}}, None),
        (
            {
                "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.skops"},
                "sklearn": {"serialization_format": "skops", "skops_trusted_types": ["numpy.dtype", "sklearn.x.Y"]},
            },
            None,
        ),
        (
            {
                "python_function": {"loader_module": "mlflow.sklearn"},
                "sklearn": {"serialization_format": "skops", "skops_trusted_types": ["builtins.eval"]},
            },
            "trusts 'builtins.eval'",
        ),
        ({"python_function": {"loader_module": "mlflow.sklearn"}, "sklearn": {}}, "saved as pickle"),
        ({"python_function": {"loader_module": "mlflow.sklearn"}}, "saved as pickle"),
        ({"python_function": {"loader_module": "mlflow.pytorch"}}, "'mlflow.pytorch' unpickles"),
        ({"python_function": {"loader_module": "mlflow.pyfunc.model", "python_model": "m.pkl"}}, "cloudpickled"),
        (
            {"python_function": {"loader_module": "aidevops_ext.pyfunc_model", "data": "m", "code": "code"}},
            "its own Python code",
        ),
        ({"python_function": {"loader_module": "mlflow.pyfunc.model", "model_code_path": "m.py"}}, "own Python code"),
    ],
)
def test_what_counts_as_running_the_models_code(flavors, why):
    found = runs_model_code(flavors)
    assert (found is None) if why is None else (why in found)


def test_the_spec_opt_in_is_checked():
    assert parse_serving(None) is False
    assert parse_serving({"allow_pickle": True}) is True
    with pytest.raises(ConfigError, match="true or false"):
        parse_serving({"allow_pickle": "yes"})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_serving({"allow_pickles": True})


def test_aidevops_serve_refuses_a_pickled_model_without_the_flag_in_one_sentence(reg):
    proc = subprocess.run(
        [sys.executable, "-m", "aidevops_ext.serving", "models:/sum/1", "--port", str(free_port())],
        env=server_env(reg),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert "cloudpickled python model" in line and "--allow-pickle" in line
