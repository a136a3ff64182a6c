"""The REST API against a real Jupyter server on a workspace seeded by the CI pipeline (token-authenticated)."""

from __future__ import annotations

import httpx
import pytest

from .conftest import MODEL


def _error(response: httpx.Response, status: int = 400) -> str:
    """The one-sentence JSON error of a refused request."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"].endswith((".", ")")), body
    return body["error"]


def test_models_carry_versions_aliases_metrics_gate_and_lineage(client, seeded):
    models = client.get("models").json()["models"]
    (model,) = [m for m in models if m["name"] == MODEL]
    versions = {v["version"]: v for v in model["versions"]}
    # Newest first; a retraining in another lab module may have registered more after the seeded two.
    assert [v for v in versions if v in ("1", "2")] == ["2", "1"]
    champion = model["aliases"]["champion"]
    assert "champion" in versions[champion]["aliases"]
    assert versions["1"]["gate_passed"] is True
    assert 0.5 < versions["1"]["metrics"]["accuracy"] <= 1.0
    for version, run_id in (("1", seeded.runs[0]), ("2", seeded.runs[1])):
        lineage = versions[version]["lineage"]
        assert lineage["pipeline"] == "ci" and lineage["pipeline_run_id"] == run_id and lineage["run_in_workspace"]
        steps = {n["step"]: n for n in lineage["notebooks"]}
        assert steps["train"] == {"step": "train", "name": "02_train.ipynb", "status": "ran", "available": True}
    assert client.get(f"models/{MODEL}").json()["name"] == MODEL


def test_a_run_notebook_is_served_read_only_with_its_outputs(client, seeded):
    model = client.get(f"runs/{seeded.runs[0]}/notebooks/train").json()
    assert model["type"] == "notebook" and model["format"] == "json" and model["writable"] is False
    assert model["path"] == f"{seeded.runs[0]}/train/02_train.ipynb"
    outputs = [o for c in model["content"]["cells"] for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the executed notebook, with its learning curve"
    download = client.get(f"runs/{seeded.runs[0]}/notebooks/train?download=1")
    assert download.headers["content-disposition"] == f'attachment; filename="{seeded.runs[0]}-02_train.ipynb"'
    assert download.json() == model["content"]
    run = client.get(f"runs/{seeded.runs[0]}").json()
    assert run["run_id"] == seeded.runs[0] and run["status"] == "succeeded" and run["params"]["seed"] == 0
    listed = [r["run_id"] for r in client.get("runs").json()["runs"]]
    assert [r for r in listed if r in seeded.runs] == seeded.runs[::-1], "newest first (other modules add runs)"


@pytest.mark.parametrize(
    ("path", "needle", "status"),
    [
        ("runs/nope/notebooks/train", "no pipeline run 'nope'", 404),
        ("runs/latest", "no pipeline run 'latest'", 404),  # exact ids only: a link must not change meaning
        ("runs/%2E%2E/notebooks/train", "no pipeline run", 404),  # traversal attempts are run ids like any other
        ("models/no-such-model", "No registered model named 'no-such-model'", 404),
        ("deployments/nope", "no deployment named 'nope'", 404),
        ("deployments/nope/history", "no deployment named 'nope'", 404),
        ("runs?limit=abc", "'limit' must be a whole number", 400),
        ("deployments/bad%20name!", "no deployment named 'bad name!'", 404),
    ],
)
def test_bad_reads_are_4xx_sentences_404_for_what_does_not_exist(client, path, needle, status):
    assert needle in _error(client.get(path), status)


def test_an_unknown_step_names_the_steps_that_have_notebooks(client, seeded):
    message = _error(client.get(f"runs/{seeded.runs[0]}/notebooks/deploy"))
    assert "no executed notebook for step 'deploy'" in message and "train" in message


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("deployments", {}, "Field 'model' is missing"),
        ("deployments", {"model": MODEL}, "exactly one of 'alias'"),
        ("deployments", {"model": MODEL, "alias": "champion", "version": "1"}, "exactly one of 'alias'"),
        ("deployments", {"model": MODEL, "version": "0"}, "not a version number"),
        ("deployments", {"model": MODEL, "alias": "champion", "port": 80}, "Unknown field(s) port"),
        ("deployments", {"model": "$(rm -rf /)", "alias": "champion"}, "not a registered model's name"),
        ("deployments", {"model": "nothing-here", "alias": "champion"}, "nothing-here"),
        ("deployments", {"model": MODEL, "alias": "nosuchalias"}, "nosuchalias"),
        ("deployments", {"model": MODEL, "alias": "champion", "reason": "x" * 501}, "at most 500 characters"),
        ("deployments/nope/canary", {"version": "2"}, "Field 'share' is missing"),
        ("deployments/nope/canary", {"version": "2", "share": 1.5}, "between 0 and 1"),
        ("deployments/nope/canary", {"clear": True, "share": 0.1}, "'clear' takes no version or share"),
        ("deployments/nope/canary", {"clear": "yes"}, "must be true or false"),
        ("deployments/nope/promote", {"reason": 3}, "Field 'reason' must be text"),
        ("deployments/nope/promote", {}, "no deployment named 'nope'"),
        ("deployments/nope/rollback", {"why": "x"}, "Unknown field(s) why"),
    ],
)
def test_bad_changes_are_4xx_sentences_and_change_nothing(client, path, body, needle):
    missing = needle in ("nothing-here", "no deployment named 'nope'")  # what the request names does not exist
    before = client.get("deployments").json()["deployments"]
    assert needle in _error(client.post(path, json=body), 404 if missing else 400)
    after = client.get("deployments").json()["deployments"]
    assert [(d["name"], d["state"], len(d["history"])) for d in after] == [
        (d["name"], d["state"], len(d["history"])) for d in before
    ]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_400(client, raw):
    assert "JSON" in _error(client.post("deployments", content=raw, headers={"Content-Type": "application/json"}))


def test_undeploying_an_unknown_deployment_is_404(client):
    assert "no deployment named 'nope'" in _error(client.delete("deployments/nope"), 404)


def test_core_errors_map_to_4xx_by_kind():
    from aidevops_ext.deploy.local import DeploymentError
    from aidevops_ext.errors import ConfigError, DataError, NotFound
    from aidevops_ext.routes import _status_for
    from aidevops_ext.serving.errors import ModelRefused

    assert _status_for(ModelRefused("v3 was refused: NaN predictions.")) == 422
    assert _status_for(DeploymentError("Deployment 'd' is stopped, not running.")) == 409
    assert _status_for(ConfigError("Field 'x' is missing.")) == 400
    assert _status_for(DataError("Column 'y' is missing.")) == 400
    assert _status_for(NotFound("There is no deployment named 'd'.")) == 404
