"""Any MLflow model through split → evaluate → gate → register, against a real SQLite MLflow store.

The first part drives the shipped steps' code in-process (seconds); the last test runs the `tabular`
template's pipeline with real kernels, the way a user's `aidevops run` does.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from aidevops_ext import registry, splitting
from aidevops_ext.datasection import parse_data
from aidevops_ext.errors import ConfigError, ModelFileError
from aidevops_ext.registry.logged import find_logged_model, load_pyfunc
from aidevops_ext.steps.generic import evaluate_models, register_model, split_table
from aidevops_ext.workspace import Workspace
from tests.support.cli import run_cli
from tests.support.store import module_store

TEMPLATE = Path(__file__).resolve().parents[2] / "aidevops_ext" / "templates" / "tabular"
SECTION = parse_data({"target": "churned", "id": "customer_id", "test_fraction": 0.25, "table": "table.parquet"})
GATE = {"accuracy": {"threshold": 0.6, "min_absolute_change": -0.02}, "roc_auc": {"threshold": 0.6}}
TRUSTED = ["numpy.dtype", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """One SQLite store for the module, worked from its own folder (a stray ./mlruns write would land there)."""
    with module_store(tmp_path_factory.mktemp("ws")) as workspace:
        yield workspace


@pytest.fixture(scope="module")
def split(ws, tmp_path_factory):
    """The template's customer table split by the shipped split step's code."""
    folder = tmp_path_factory.mktemp("split")
    table = folder / "table.parquet"
    pd.read_csv(TEMPLATE / "data" / "customers.csv").to_parquet(table, index=False)
    info = split_table(table, SECTION, folder)
    assert info["task"] == "classification"
    return folder


def _run(ws: Workspace) -> str:
    c = mlflow.MlflowClient()
    return c.create_run(registry.experiment_id(ws, "any-model")).info.run_id


def _pipeline(classifier):
    return Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        (
                            "numbers",
                            SimpleImputer(strategy="median"),
                            ["age", "tenure_months", "monthly_charges", "support_calls"],
                        ),
                        (
                            "categories",
                            Pipeline(
                                [
                                    ("impute", SimpleImputer(strategy="most_frequent")),
                                    ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                                ]
                            ),
                            ["plan", "region", "payment_method"],
                        ),
                    ]
                ),
            ),
            ("classify", classifier),
        ]
    )


def _train_and_log(ws, frame: pd.DataFrame, classifier, trusted: list[str] | None = TRUSTED) -> str:
    """What a user's train notebook does: fit, then mlflow.sklearn.log_model inside its run."""
    log_kwargs = {} if trusted is None else {"skops_trusted_types": trusted}
    X, y = frame.drop(columns=["churned", "customer_id"]), frame["churned"]
    model = _pipeline(classifier).fit(X, y)
    run_id = _run(ws)
    with mlflow.start_run(run_id=run_id):
        mlflow.sklearn.log_model(model, name="model", input_example=X.head(3), **log_kwargs)
    return run_id


def test_template_notebooks_are_plain_papermill_notebooks_and_shipped_ones_are_clean():
    from aidevops_ext.review.hygiene import check_files

    shipped = sorted((TEMPLATE.parents[1] / "steps").glob("*.ipynb"))
    users = sorted(TEMPLATE.parent.glob("[!_]*/notebooks/*.ipynb"))
    users = [p for p in users if p.parent.parent.name in ("tabular", "pytorch")]
    assert {p.stem for p in shipped} >= {"split", "evaluate", "register"} and len(users) == 4
    assert check_files(shipped + users) == {}, "committed without outputs"
    for path in shipped + users:
        cells = json.loads(path.read_text())["cells"]
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), path
    for path in users:
        code = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        assert "aidevops" not in code, f"{path} must run under papermill alone"


def test_a_run_that_logged_no_model_is_one_sentence(ws):
    with pytest.raises(
        ConfigError, match=r"^The train step's run logged no model; log one .*mlflow\.<flavor>\.log_model"
    ):
        find_logged_model(ws, _run(ws))


def test_two_logged_models_need_the_spec_to_say_which(ws):
    run_id = _run(ws)
    with mlflow.start_run(run_id=run_id):
        for name in ("first", "second"):
            mlflow.sklearn.log_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), name=name)
    with pytest.raises(ConfigError, match=r"logged 2 models \(first, second\); say which one .*data: \{model: NAME\}"):
        find_logged_model(ws, run_id)
    assert find_logged_model(ws, run_id, "second").name == "second"
    with pytest.raises(ConfigError, match=r"logged no model named 'third' \(it logged: first, second\)"):
        find_logged_model(ws, run_id, "third")


def test_a_skops_refusal_names_skops_trusted_types_and_serialization_format(ws, split):
    frame = pd.read_parquet(split / "train.parquet")
    with pytest.raises(mlflow.exceptions.MlflowException, match="untrusted types"):
        # The train notebook's own cell fails here; a notebook that carries on leaves a FAILED model behind.
        _train_and_log(ws, frame, HistGradientBoostingClassifier(max_iter=5), trusted=None)
    failed_run = mlflow.search_runs(
        experiment_names=["any-model"], order_by=["start_time DESC"], max_results=1, output_format="list"
    )[0].info.run_id
    with pytest.raises(ConfigError) as err:
        find_logged_model(ws, failed_run)
    message = str(err.value)
    assert "skops_trusted_types" in message and 'serialization_format="cloudpickle"' in message
    assert "\n" not in message


def test_a_flavor_that_cannot_load_is_one_sentence(ws, tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\0" * 8)
    run_id = _run(ws)
    with mlflow.start_run(run_id=run_id):
        mlflow.pyfunc.log_model(name="model", loader_module="flavor_not_installed_here", data_path=str(weights))
    ref = find_logged_model(ws, run_id)
    with pytest.raises(ModelFileError) as err:
        load_pyfunc(ref.model_uri, "The train step's model 'model'")
    assert str(err.value).startswith(
        "The train step's model 'model' needs the Python module 'flavor_not_installed_here'"
    )
    assert "\n" not in str(err.value)


def test_candidate_and_champion_are_gated_on_test_rows_neither_trained_on(ws, split):
    train = pd.read_parquet(split / "train.parquet")
    name = "churn-any"
    run1 = _train_and_log(ws, train, HistGradientBoostingClassifier(max_iter=60, random_state=0))
    first = evaluate_models(ws, section=SECTION, split_dir=split, train_run_id=run1, model_name=name)
    assert first["champion"] is None and first["comparison"]["compared_rows"] == first["comparison"]["test_rows"]
    assert set(first["candidate"]) == {"accuracy", "f1_macro", "log_loss", "roc_auc"}
    assert 0.6 < first["candidate"]["roc_auc"] <= 1.0
    gate_run = _run(ws)
    outcome, decision = register_model(
        ws,
        evaluation=first,
        gate=GATE,
        model_name=name,
        run_id=gate_run,
        section=SECTION,
        split_dir=split,
        tags={"aidevops.source": "test"},
    )
    assert outcome["version"] == "1" and outcome["champion_moved"] and decision.passed
    # Lineage: the training keys and the reference profile are artifacts the version's tags name.
    mv = mlflow.MlflowClient().get_model_version(name, "1")
    assert mv.run_id == run1, "the version's source run is the train step's run"
    keys = splitting.load_keys(mlflow.artifacts.download_artifacts(mv.tags["aidevops.train_keys"]))
    assert np.array_equal(np.sort(keys), np.sort(splitting.load_keys(split / "train_keys.npy")))
    profile = json.loads(Path(mlflow.artifacts.download_artifacts(mv.tags["aidevops.reference_profile"])).read_text())
    kinds = {f["name"]: f["kind"] for f in profile["features"]}
    assert kinds["plan"] == "category" and kinds["age"] == "numeric" and "customer_id" not in kinds
    # A champion trained on a quarter of today's test rows: the comparison leaves those rows out.
    test = pd.read_parquet(split / "test.parquet")
    leaked = pd.concat([train, test.iloc[: len(test) // 4]])
    run2 = _train_and_log(ws, leaked, LogisticRegression(max_iter=300))
    second = evaluate_models(ws, section=SECTION, split_dir=split, train_run_id=run2, model_name=name)
    assert second["champion_version"] == "1"
    assert second["comparison"]["compared_rows"] == len(test), "v1 never saw a test row"
    outcome2, _ = register_model(
        ws, evaluation=second, gate=GATE, model_name=name, run_id=_run(ws), section=SECTION, split_dir=split, tags={}
    )
    # Make v2 champion by hand, with the training keys of what it really saw, then evaluate a third model.
    c = mlflow.MlflowClient()
    c.set_registered_model_alias(name, "champion", outcome2["version"])
    keys_run = _run(ws)
    leaked_keys = splitting.row_keys(leaked, "customer_id")
    splitting.save_keys(split.parent / "leaked_keys.npy", leaked_keys)
    c.log_artifact(keys_run, str(split.parent / "leaked_keys.npy"), "lineage")
    c.set_model_version_tag(
        name, outcome2["version"], "aidevops.train_keys", f"runs:/{keys_run}/lineage/leaked_keys.npy"
    )
    third = evaluate_models(ws, section=SECTION, split_dir=split, train_run_id=run1, model_name=name)
    compared = len(test) - len(test) // 4
    assert third["comparison"] == {
        "test_rows": len(test),
        "compared_rows": compared,
        "candidate_trained": 0,
        "champion_trained": len(test) // 4,
        "champion_lineage": True,
    }
    assert f"the same {compared} of {len(test)} test rows for candidate and champion" in third["compared_on"]
    assert third["candidate"] != first["candidate"], "the candidate is scored on the same rows as the champion"


def test_too_few_unseen_rows_make_the_gate_refuse_and_keep_the_champion(ws, split):
    name = "churn-everything"
    full = pd.concat([pd.read_parquet(split / "train.parquet"), pd.read_parquet(split / "test.parquet")])
    run_id = _train_and_log(ws, full, LogisticRegression(max_iter=300))
    first = evaluate_models(ws, section=SECTION, split_dir=split, train_run_id=run_id, model_name=name)
    register_model(
        ws, evaluation=first, gate=GATE, model_name=name, run_id=_run(ws), section=SECTION, split_dir=split, tags={}
    )
    # v1 claims (truthfully) to have trained on every row, the test rows included.
    c = mlflow.MlflowClient()
    c.set_model_version_tag(
        name,
        "1",
        "aidevops.train_keys",
        registry.models.log_train_keys(ws, _run(ws), splitting.row_keys(full, "customer_id")),
    )
    second = evaluate_models(ws, section=SECTION, split_dir=split, train_run_id=run_id, model_name=name)
    assert second["comparison"]["compared_rows"] == 0 and second["candidate"] == {}
    outcome, decision = register_model(
        ws, evaluation=second, gate=GATE, model_name=name, run_id=_run(ws), section=SECTION, split_dir=split, tags={}
    )
    assert not decision.passed and not outcome["champion_moved"]
    assert decision.reasons[0].startswith(
        f"Refused: only 0 of {second['comparison']['test_rows']} test rows are unseen"
    )
    assert str(c.get_registered_model(name).aliases["champion"]) == "1"


def test_a_regression_model_gets_regression_metrics(ws, tmp_path):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"size": rng.uniform(20, 200, 400), "city": rng.choice(["a", "b", "c"], 400)})
    frame["price"] = 3.0 * frame["size"] + frame["city"].map({"a": 0, "b": 50, "c": 100}) + rng.normal(0, 5, 400)
    frame.to_parquet(tmp_path / "table.parquet", index=False)
    section = parse_data({"target": "price"})
    info = split_table(tmp_path / "table.parquet", section, tmp_path)
    assert info["task"] == "regression"
    train = pd.read_parquet(tmp_path / "train.parquet")
    model = Pipeline(
        [
            ("prep", ColumnTransformer([("oh", OneHotEncoder(), ["city"])], remainder="passthrough")),
            ("fit", LinearRegression()),
        ]
    ).fit(train[["size", "city"]], train["price"])
    run_id = _run(ws)
    with mlflow.start_run(run_id=run_id):
        mlflow.sklearn.log_model(model, name="model")
    result = evaluate_models(ws, section=section, split_dir=tmp_path, train_run_id=run_id, model_name="prices")
    assert set(result["candidate"]) == {"mse", "mae", "max_error", "r2"}
    assert result["candidate"]["r2"] > 0.95


# -- the template's pipeline with real kernels --------------------------------------------------------------


def aidevops(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in `root`, with no MLflow/aidevops settings leaking in."""
    return run_cli(*args, cwd=root, env={"MPLBACKEND": "Agg"}, timeout=timeout)


def test_tabular_template_runs_through_register_and_gates_a_second_model_against_the_champion(tmp_path):
    made = aidevops(tmp_path, "new", "churn", "--template", "tabular")
    assert made.returncode == 0, made.stderr
    root = tmp_path / "churn"
    first = aidevops(root, "run", "ci")
    assert first.returncode == 0, first.stderr[-3000:]
    run_dirs = sorted((root / ".aidevops" / "runs" / "ci").iterdir())
    registration = json.loads((run_dirs[-1] / "register" / "registration.json").read_text())
    assert registration["version"] == "1" and registration["gate_passed"] and registration["champion_moved"]
    assert not (root / "table.parquet").exists() and not (root / "mlruns").exists(), (
        "nothing written to the project root"
    )
    second = aidevops(root, "run", "ci", "-p", "classifier=logistic_regression")
    assert second.returncode == 0, second.stderr[-3000:]
    run_dirs = sorted((root / ".aidevops" / "runs" / "ci").iterdir())
    metrics = json.loads((run_dirs[-1] / "evaluate" / "metrics.json").read_text())
    assert metrics["champion_version"] == "1"
    assert set(metrics["champion"]) == set(metrics["candidate"]) == {"accuracy", "f1_macro", "log_loss", "roc_auc"}
    assert metrics["comparison"]["compared_rows"] == metrics["comparison"]["test_rows"], (
        "the split is stable: v1 trained on no test row"
    )
    registration = json.loads((run_dirs[-1] / "register" / "registration.json").read_text())
    assert registration["version"] == "2"
    models = json.loads(aidevops(root, "models", "--json").stdout)
    (churn,) = [m for m in models if m["name"] == "ci-churn"]
    assert {v["version"] for v in churn["versions"]} == {"1", "2"}


def test_tabular_default_pipeline_deploys_the_champion_which_answers_its_own_input_example(tmp_path):
    import urllib.request

    assert aidevops(tmp_path, "new", "shop", "--template", "tabular").returncode == 0
    root = tmp_path / "shop"
    try:
        out = aidevops(root, "run")
        assert out.returncode == 0, out.stderr[-3000:]
        (run_dir,) = (root / ".aidevops" / "runs" / "default").iterdir()
        deployment = json.loads((run_dir / "deploy" / "deployment.json").read_text())
        assert deployment["action"] == "started" and deployment["version"] == "1"
        assert (
            "dataframe_split" in deployment["example"] and "plan" in deployment["example"]["dataframe_split"]["columns"]
        )
        request = urllib.request.Request(
            deployment["endpoints"]["invocations"],
            method="POST",
            data=json.dumps(deployment["example"]).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
            assert json.loads(answer.read())["predictions"][0] in (0, 1)
    finally:
        aidevops(root, "undeploy", "churn-classifier")


@pytest.mark.torch
@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="PyTorch is not installed: pip install 'aidevops-ext[bench]' to test the pytorch template",
)
def test_pytorch_template_logs_with_mlflow_pytorch_and_is_scored_through_pyfunc(tmp_path):
    template = TEMPLATE.parent / "pytorch"
    root = tmp_path / "net"
    for part in ("notebooks", "pipelines"):
        shutil.copytree(template / part, root / part)
    (root / ".aidevops").mkdir()
    out = aidevops(root, "run", "ci")
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = (root / ".aidevops" / "runs" / "ci").iterdir()
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert set(metrics["candidate"]) == {"accuracy", "f1_macro", "log_loss", "roc_auc"}, (
        "logits scored as probabilities"
    )
    assert metrics["candidate"]["roc_auc"] > 0.95
    registration = json.loads((run_dir / "register" / "registration.json").read_text())
    assert registration["version"] == "1" and registration["champion_moved"]
    store = f"sqlite:///{root / '.aidevops' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    source = client.get_model_version("ci-torch", "1").source  # models:/m-…: the logged model itself
    location = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    mlmodel = yaml.safe_load((Path(location.removeprefix("file://")) / "MLmodel").read_text())
    assert "pytorch" in mlmodel["flavors"], "the version is the very model mlflow.pytorch logged"


def test_a_train_step_refused_by_skops_fails_with_one_sentence_naming_both_fixes(tmp_path):
    root = tmp_path / "churn"
    for part in ("notebooks", "pipelines", "data"):
        shutil.copytree(TEMPLATE / part, root / part)
    train = root / "notebooks" / "02_train.ipynb"
    nb = json.loads(train.read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if "skops_trusted_types=trusted" in source:  # what a user writes first: no trusted types
            cell["source"] = source.replace(", skops_trusted_types=trusted", "")
    train.write_text(json.dumps(nb))
    (root / ".aidevops").mkdir()
    out = aidevops(root, "run", "ci", "--until", "train")
    assert out.returncode != 0
    (line,) = [x for x in out.stderr.splitlines() if "skops" in x]
    assert "step 'train' failed" in line and "skops_trusted_types=[...]" in line
    assert 'serialization_format="cloudpickle"' in line
    assert "Traceback" not in out.stderr


def test_an_onnx_model_is_scored_through_onnxruntime_like_any_other_flavor(ws, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install -e '.[test]'")
    skl2onnx = pytest.importorskip("skl2onnx", reason="skl2onnx is not installed: pip install -e '.[test]'")
    import onnx
    from onnx import helper
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn import metrics
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(800, 6)), columns=[f"f{i}" for i in range(6)])
    frame["label"] = (frame["f0"] - frame["f1"] + rng.normal(scale=0.7, size=800) > 0).astype(int)
    frame.to_parquet(tmp_path / "table.parquet", index=False)
    section = parse_data({"target": "label"})
    split_table(tmp_path / "table.parquet", section, tmp_path)
    train, test = pd.read_parquet(tmp_path / "train.parquet"), pd.read_parquet(tmp_path / "test.parquet")
    model = Pipeline([("scale", StandardScaler()), ("fit", LogisticRegression())]).fit(
        train.drop(columns="label"), train["label"]
    )
    graph = skl2onnx.to_onnx(
        model, initial_types=[("features", FloatTensorType([None, 6]))], options={"zipmap": False}, target_opset=17
    )
    # MLflow's ONNX pyfunc flattens every output into one DataFrame column, so the graph returns one
    # value per row: the positive class's probability.
    index = helper.make_tensor("positive", onnx.TensorProto.INT64, [], [1])
    graph.graph.initializer.append(index)
    graph.graph.node.append(helper.make_node("Gather", ["probabilities", "positive"], ["p_positive"], axis=1))
    del graph.graph.output[:]
    graph.graph.output.append(helper.make_tensor_value_info("p_positive", onnx.TensorProto.FLOAT, [None]))
    run_id = _run(ws)
    with mlflow.start_run(run_id=run_id):
        mlflow.onnx.log_model(graph, name="model")
    result = evaluate_models(ws, section=section, split_dir=tmp_path, train_run_id=run_id, model_name="onnx-model")
    X, y = test.drop(columns="label"), test["label"]
    proba = model.predict_proba(X)[:, 1]
    assert result["candidate"]["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, proba), abs=1e-4)
    assert result["candidate"]["log_loss"] == pytest.approx(metrics.log_loss(y, proba), abs=1e-4)
    assert result["candidate"]["accuracy"] == pytest.approx(metrics.accuracy_score(y, model.predict(X)), abs=2 / len(y))
