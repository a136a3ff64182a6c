"""`aidevops deploy` of a model whose loading unpickles: refused in one sentence without the opt-in, served
with `--allow-pickle`, and served with no flag once the pipeline that trains it says
`serving: {allow_pickle: true}` (the opt-in is recorded with the deployment, so its server loads the same way)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from aidevops_ext import registry
from aidevops_ext.deploy import manager
from aidevops_ext.deploy.local import DeploymentError
from aidevops_ext.serving.errors import ModelRefused
from tests.deploy.test_cli import one_sentence_error, run

PICKLED = "pickled-sum"
SPEC = """
name: pickled
model: pickled-sum
serving:
  allow_pickle: true
steps:
  train:
    notebook: train.ipynb
"""


@pytest.fixture(scope="module")
def pickled(reg) -> str:
    """A cloudpickled python model (it sums each row), registered as pickled-sum v1 with alias champion."""
    import cloudpickle
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from tests.serving import pyfunc_models

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIDEVOPS_HOME", str(reg.root))
        mp.chdir(reg.root)
        cloudpickle.register_pickle_by_value(pyfunc_models)
        frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0], "d": [0.0, 1.0]})
        signature = infer_signature(frame, np.array([9.0, 13.0]))
        run_id = registry.connection.client(reg.ws).create_run(registry.experiment_id(reg.ws, "pickle")).info.run_id
        registry.configure(reg.ws)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model", python_model=pyfunc_models.SumModel(), signature=signature, pip_requirements=[]
            )
        version = registry.register_version(reg.ws, info.model_uri, PICKLED, run_id=run_id, tags={})
        registry.set_alias(reg.ws, PICKLED, "champion", version)
    return version


def _answers(url: str) -> list:
    body = {"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [[1.0, 2.0, 3.0, 4.0]]}}
    r = httpx.post(url + "/invocations", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


def test_a_pickled_model_is_refused_then_served_with_the_flag(reg, pickled, deployer):
    with pytest.raises((ModelRefused, DeploymentError), match="--allow-pickle.*serving: \\{allow_pickle: true\\}"):
        deployer(f"{PICKLED}@champion", "pickle-refused")
    assert manager.get(reg.ws, "pickle-refused").state == "failed"
    one_sentence_error(run(reg, "deploy", f"{PICKLED}@champion", "--name", "pickle-cli"), "--allow-pickle")
    dep = deployer(f"{PICKLED}@champion", "pickle-flag", allow_pickle=True).deployment
    assert _answers(dep.url) == [10.0]
    assert json.loads(dep.options)["allow_pickle"] is True


def test_the_spec_declares_the_opt_in_once_and_deploy_just_works(reg, pickled, deployer):
    spec = reg.root / "pipelines" / "pickled.yaml"
    spec.parent.mkdir(exist_ok=True)
    (reg.root / "train.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    spec.write_text(SPEC)
    try:
        dep = deployer(f"{PICKLED}@champion", "pickle-spec").deployment
        assert _answers(dep.url) == [10.0]
        options = json.loads(dep.options)
        assert options["pipeline"] == "pickled" and options["allow_pickle"] is True  # recorded: restarts load alike
    finally:
        spec.unlink()


def _command(objects: list[dict]) -> list[str]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]["containers"][0]["command"]


def test_kubernetes_pods_get_the_opt_in_as_a_flag_from_the_spec_or_the_command_line(tmp_path):
    from aidevops_ext.deploy.kubernetes import deploy_kubernetes, render_manifests
    from aidevops_ext.workspace import Workspace

    assert "--allow-pickle" not in _command(render_manifests("pickled-sum@champion"))
    assert "--allow-pickle" in _command(render_manifests("pickled-sum@champion", allow_pickle=True))
    ws = Workspace(tmp_path)
    (tmp_path / ".aidevops").mkdir()
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "train.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert "--allow-pickle" not in _command(deploy_kubernetes(ws, "pickled-sum@champion", dry_run=True)["objects"])
    (tmp_path / "pipelines" / "pickled.yaml").write_text(SPEC)  # the pods have no pipelines/: the flag carries it
    assert "--allow-pickle" in _command(deploy_kubernetes(ws, "pickled-sum@champion", dry_run=True)["objects"])
