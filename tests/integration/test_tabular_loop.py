"""The closed loop on the tabular template, all real: `aidevops new --template tabular`, its CI pipeline
registers a champion (a scikit-learn Pipeline on numbers and text categories), it is deployed (supervised
server on 127.0.0.1), drifted traffic (numeric columns shifted, category frequencies moved) with feedback
makes the drift rule fire, the supervisor retrains with the labelled live rows handed over as Parquet,
the gate passes, the deployment switches — and not one request fails while all of that happens.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aidevops_ext.workspace import Workspace
from tests.support.cli import loop_settings, run_cli
from tests.support.loop import champion_deployed, deployment_status, open_loop, switched_by_a_drift_retraining

MODEL = "ci-churn"
NAME = "churn"
CATEGORIES = ("plan", "region", "payment_method")


def aidevops(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=root, env=loop_settings(), timeout=timeout)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A tabular project whose CI pipeline ran once, its champion deployed as `churn`. The gate tolerates a
    small drop: the retrained model learns from drifted rows and is judged on the original test split."""
    base = tmp_path_factory.mktemp("tabular-loop")
    made = aidevops(base, "new", "churn", "--template", "tabular")
    assert made.returncode == 0, made.stderr
    root = base / "churn"
    spec_path = root / "pipelines" / "ci.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    for metric in ("accuracy", "roc_auc"):
        spec["gate"][metric]["min_absolute_change"] = -0.05
    open_loop(spec)
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with champion_deployed(aidevops, root, "ci", MODEL, NAME):
        yield root


def deployment(root: Path) -> dict:
    status = deployment_status(aidevops, root, NAME)
    return status.get("deployment", status)


def test_tabular_drift_alert_retrains_on_live_parquet_and_switches_with_zero_failed_requests(deployed):
    from aidevops_ext import traffic

    ws = Workspace(deployed)
    url = deployment(deployed)["url"]
    rows = traffic.rows_for_model(deployed, MODEL)
    assert rows.is_frame and set(CATEGORIES) <= set(rows.X.columns)
    # The chain: a drift alert -> retraining -> pipeline run -> version 2 -> deployment change.
    done, result, _ = switched_by_a_drift_retraining(ws, NAME, url, rows)
    assert result.ok > 300
    assert set(result.versions) == {"1", "2"}, "answers came from the old version, then the new one"
    assert deployment(deployed)["active_version"] == "2"

    # The handover: a Parquet file of the live rows with their original columns, categories and labels.
    assert done.live_rows and done.live_rows > 0 and done.extra_data.endswith(".parquet")
    live = pd.read_parquet(done.extra_data)
    assert len(live) == done.live_rows
    assert set(rows.X.columns) | {"churned", "customer_id"} == set(live.columns)
    assert set(live["churned"].unique()) <= {0, 1}
    for name in CATEGORIES:
        assert set(live[name].dropna()) <= set(rows.X[name].dropna()) and live[name].notna().any(), name
    assert (live["age"].mean() - rows.X["age"].mean()) > rows.X["age"].std(), "the logged rows are the drifted ones"
    run = json.loads(aidevops(deployed, "show", done.pipeline_run_id, "--json").stdout)
    assert run["status"] == "succeeded" and run["overrides"] == {"live_data": done.extra_data}
    split_dir = Path(run["run_dir"] if "run_dir" in run else ws.runs_dir / "ci" / done.pipeline_run_id) / "split"
    split = json.loads((split_dir / "split.json").read_text())
    assert split["live_rows"] == done.live_rows and done.training_rows == split["train_rows"]
    train = pd.read_parquet(split_dir / "train.parquet")
    assert train["customer_id"].str.startswith("live:").sum() == done.live_rows, "the live rows are training rows"

    # The fair gate: the new version's training keys hold the live rows, and it was judged on the test split.
    metrics = json.loads((split_dir.parent / "evaluate" / "metrics.json").read_text())
    assert metrics["champion_version"] == "1" and metrics["comparison"]["compared_rows"] == split["test_rows"]
    from aidevops_ext import splitting
    from aidevops_ext.registry.models import version_train_keys

    keys = version_train_keys(ws, MODEL, "2")
    trained = splitting.load_keys(split_dir / "train_keys.npy")
    assert len(trained) == split["train_rows"] and set(keys.tolist()) == set(trained.tolist())
    live_keys = trained[train["customer_id"].str.startswith("live:").to_numpy()]
    assert splitting.unseen_mask(live_keys, keys).sum() == 0, "v2's lineage names the live rows it trained on"
