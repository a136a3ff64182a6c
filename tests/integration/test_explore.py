"""The explore notebook's core (aidevops_ext.explore) and its buttons: train with per-epoch updates, compare with
a real registered champion, write a pipeline spec the runner accepts — and refuse bad values writing nothing.

The notebook's own code cells are run in-process against a throwaway workspace and its buttons clicked, so the
wiring is checked too (nbval in tests/notebooks runs it headless with its defaults).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from aidevops_ext import explore, registry, trainer
from aidevops_ext.errors import ConfigError
from aidevops_ext.pipeline.notebook import read_notebook
from aidevops_ext.pipeline.params import step_params
from aidevops_ext.pipeline.spec import load_spec
from aidevops_ext.trainer.backend import cupy_available
from aidevops_ext.workspace import Workspace
from tests.conftest import REPO
from tests.support.projects import copy_project

NOTEBOOK = REPO / "notebooks" / "00_explore.ipynb"


@pytest.fixture
def ws(tmp_path, clean_env):
    """A workspace holding copies of the repository's pipelines and notebooks (never the repository's own)."""
    copy_project(tmp_path)
    clean_env.setenv("AIDEVOPS_HOME", str(tmp_path))
    clean_env.chdir(tmp_path)
    return Workspace(tmp_path)


def _received(spec, step: str) -> dict:
    """The params the runner hands to `step`'s notebook under this spec."""
    declared = read_notebook(spec.steps[step].notebook).parameters
    return step_params(declared, spec.params, spec.steps[step].params)


# --- writing the spec --------------------------------------------------------------------------


def test_spec_runs_the_default_pipeline_with_the_chosen_values(ws):
    base = (ws.pipelines_dir / "default.yaml").read_bytes()
    choices = explore.check_choices(
        hidden=[32, 16], learning_rate=1e-5, epochs=5, optimizer="sgd", activation="tanh", seed=7
    )
    path = explore.write_spec(ws, choices)

    assert path == ws.pipelines_dir / "explore.yaml"
    assert (ws.pipelines_dir / "default.yaml").read_bytes() == base
    spec = load_spec(path, ws.root)
    default = load_spec(ws.pipelines_dir / "default.yaml", ws.root)
    assert (spec.name, spec.experiment, spec.model, spec.kernel) == (
        "explore",
        "explore",
        "digits-classifier",
        "aidevops",
    )
    assert spec.order == default.order and spec.gate == default.gate and spec.monitor == default.monitor
    train = _received(spec, "train")
    assert {
        k: train[k]
        for k in ("model", "hidden", "learning_rate", "epochs", "optimizer", "activation", "seed", "l2", "batch_size")
    } == {
        "model": "mlp",
        "hidden": [32, 16],
        "learning_rate": 1e-5,
        "epochs": 5,
        "optimizer": "sgd",
        "activation": "tanh",
        "seed": 7,
        "l2": 0.0001,
        "batch_size": 64,
    }
    assert isinstance(train["learning_rate"], float)  # 1e-05 would read back as a string in YAML 1.1
    assert _received(spec, "prepare")["dataset"] == "digits" and _received(spec, "prepare")["seed"] == 7
    text = path.read_text()
    assert text.startswith(explore.MARKER)
    # Edited in place: the base's comments stay for the reviewer.
    assert "gate:                           # MLflow MetricThreshold vocabulary" in text
    assert "model: digits-classifier        # registered model name in MLflow" in text


def test_each_task_starts_from_its_own_base_pipeline(ws):
    spec = load_spec(explore.write_spec(ws, explore.check_choices(dataset="diabetes", model="linear")), ws.root)
    assert spec.model == "diabetes-regressor" and set(spec.gate) == {"r2", "rmse"}
    assert _received(spec, "prepare")["dataset"] == "diabetes" and _received(spec, "train")["model"] == "linear"
    # Another classification dataset than the default's gets a model name of its own, not digits-classifier.
    spec = load_spec(explore.write_spec(ws, explore.check_choices(dataset="wine"), name="wine-try"), ws.root)
    assert (spec.name, spec.model) == ("wine-try", "wine-classifier") and "accuracy" in spec.gate


def test_the_gpu_backend_is_the_gpu_kernel(ws):
    text = explore.spec_text(ws, explore.Choices(backend="cupy"))
    assert yaml.safe_load(text)["kernel"] == "aidevops-gpu"
    if cupy_available():
        assert explore.check_choices(backend="cupy").backend == "cupy"
    else:
        with pytest.raises(ConfigError, match="backend 'cupy' needs a CUDA GPU.*choose 'numpy'"):
            explore.check_choices(backend="cupy")


def test_a_base_layout_the_line_edit_does_not_know_still_gives_the_right_spec(ws):
    raw = yaml.safe_load((ws.pipelines_dir / "default.yaml").read_text())
    (ws.pipelines_dir / "default.yaml").write_text(yaml.safe_dump(raw, default_flow_style=True))  # all on one line
    spec = load_spec(explore.write_spec(ws, explore.check_choices(epochs=3)), ws.root)
    assert spec.params["epochs"] == 3 and spec.params["activation"] == "relu" and spec.gate == raw["gate"]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"learning_rate": 0.0}, "learning_rate must be a positive number"),
        ({"epochs": 0}, "epochs must be a whole number of at least 1"),
        ({"hidden": []}, "hidden must be one or more positive layer sizes"),
        (
            {"model": "linear"},
            "model 'linear' does not fit the classification dataset 'digits'; use one of mlp, logistic",
        ),
        ({"dataset": "nope"}, "unknown dataset 'nope'"),
        ({"optimiser": "adam"}, "unknown choice"),
    ],
)
def test_bad_choices_are_one_sentence(values, message):
    with pytest.raises(ConfigError, match=message):
        explore.check_choices(**values)


def test_refuses_to_overwrite_what_it_did_not_write(ws):
    default = (ws.pipelines_dir / "default.yaml").read_bytes()
    for name, message in (
        ("default", "is a base pipeline"),
        ("../escape", "must be letters, digits"),
        ("", "must be letters"),
    ):
        with pytest.raises(ConfigError, match=message):
            explore.write_spec(ws, explore.Choices(), name=name)
    mine = ws.pipelines_dir / "mine.yaml"
    mine.write_text("# my own pipeline\nname: mine\n")
    with pytest.raises(ConfigError, match="mine.yaml exists and was not written by the explore notebook"):
        explore.write_spec(ws, explore.Choices(), name="mine")
    assert mine.read_text() == "# my own pipeline\nname: mine\n"
    assert (ws.pipelines_dir / "default.yaml").read_bytes() == default
    assert not (ws.root / "escape.yaml").exists()
    # Its own file it rewrites, and nothing but finished files is ever left in pipelines/.
    explore.write_spec(ws, explore.Choices(epochs=2))
    explore.write_spec(ws, explore.Choices(epochs=4))
    assert load_spec(ws.pipelines_dir / "explore.yaml", ws.root).params["epochs"] == 4
    assert sorted(p.name for p in ws.pipelines_dir.iterdir()) == [
        "ci.yaml",
        "default.yaml",
        "explore.yaml",
        "mine.yaml",
        "regression.yaml",
    ]


def test_a_spec_the_runner_would_refuse_is_never_written(ws):
    (ws.root / "notebooks" / "02_train.ipynb").unlink()  # the copied spec would name a missing notebook
    with pytest.raises(ConfigError, match="02_train.ipynb, which does not exist"):
        explore.write_spec(ws, explore.Choices())
    assert sorted(p.name for p in ws.pipelines_dir.iterdir()) == ["ci.yaml", "default.yaml", "regression.yaml"]


# --- training and the champion -----------------------------------------------------------------


def test_train_reports_every_epoch_as_it_happens(ws):
    seen = []
    result = explore.train(ws, explore.Choices(epochs=4), on_epoch=lambda rows: seen.append(rows))
    assert [len(rows) for rows in seen] == [1, 2, 3, 4]
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert 0.0 <= result.history[-1]["val_score"] <= 1.0
    # The split is the base pipeline's: 20 % of digits' 1,797 rows held out, scored there.
    assert len(result.split.y_test) == 359 and result.metrics["accuracy"] > 0.85
    assert result.backend == "numpy" and result.score_name == "accuracy"


def test_no_champion_yet_creates_no_store(ws):
    result = explore.train(ws, explore.Choices(epochs=1))
    comparison = explore.compare_with_champion(ws, result)
    assert comparison.champion is None and comparison.version is None
    assert comparison.reason.startswith("no champion yet: nothing is registered in this workspace")
    assert not ws.state.exists()


def _register_champion(ws: Workspace, estimator, name: str, tmp_path: Path) -> str:
    parent = registry.start_pipeline_run(ws, "explore-tests", "default", {}, {})
    step = registry.start_step_run(ws, parent, "register", {}, {})
    info = registry.log_model(ws, step, trainer.save_model(estimator, tmp_path / f"{name}.npz"))
    version = registry.register_version(ws, info["model_uri"], name, run_id=step, tags={})
    registry.set_alias(ws, name, registry.CHAMPION, version)
    return version


def test_compares_with_the_registered_champion_on_the_same_rows(ws, tmp_path):
    champion = explore.train(ws, explore.Choices(epochs=2, hidden=(16,)))
    registry.experiment_id(ws, "explore-tests")  # a store with nothing registered yet
    assert "has no version aliased 'champion'" in explore.compare_with_champion(ws, champion).reason
    version = _register_champion(ws, champion.estimator, "digits-classifier", tmp_path)

    result = explore.train(ws, explore.Choices(epochs=6))
    comparison = explore.compare_with_champion(ws, result)
    assert comparison.reason == "" and (comparison.model, comparison.version) == ("digits-classifier", version)
    # The champion is scored on the exploration's test rows, so it gets exactly the metrics it had there.
    assert comparison.champion == pytest.approx(champion.metrics)
    assert comparison.candidate == result.metrics and comparison.candidate != comparison.champion

    # A champion of another shape of data is named, never scored on rows it cannot read.
    _register_champion(ws, champion.estimator, "wine-classifier", tmp_path)
    wine = explore.train(ws, explore.Choices(dataset="wine", epochs=1))
    comparison = explore.compare_with_champion(ws, wine)
    assert comparison.champion is None and "takes 64 features and wine has 13" in comparison.reason


# --- the notebook's buttons --------------------------------------------------------------------


def _notebook_namespace() -> dict:
    """Run the notebook's parameters and UI cells (not the headless ones) and return their names."""
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    namespace: dict = {}
    for cell in cells[:3]:
        exec("".join(cell["source"]), namespace)  # noqa: S102 - our own notebook's code
    return namespace


def test_the_notebook_buttons_train_and_write_with_the_controls_values(ws):
    nb = _notebook_namespace()
    controls, status = nb["controls"], nb["status"]
    assert [label for label, _ in controls["backend"].options] == (
        ["NumPy", "CuPy (GPU)"] if cupy_available() else ["NumPy"]
    )
    controls["epochs"].value = 3
    controls["hidden_units"].value = 32
    controls["hidden_layers"].value = 2
    nb["train_button"].click()
    assert status.value.startswith("trained in") and "test accuracy" in status.value, status.value
    assert not nb["train_button"].disabled
    nb["write_button"].click()
    spec = load_spec(ws.pipelines_dir / "explore.yaml", ws.root)
    assert (spec.params["epochs"], spec.params["hidden"]) == (3, [32, 32])
    assert "aidevops run explore" in status.value

    controls["dataset"].value = "diabetes"  # a regression set offers its own models
    assert tuple(controls["model"].options) == ("mlp", "linear")
    nb["name_box"].value = "default"
    nb["write_button"].click()  # refused with its sentence in the status line, the base untouched
    assert "is a base pipeline" in status.value
    assert load_spec(ws.pipelines_dir / "default.yaml", ws.root).params["dataset"] == "digits"
