"""notebooks/05_deploy.ipynb as the pipeline's `deploy` step runs it: papermill, a real kernel, injected folders."""

from __future__ import annotations

import json
import urllib.request

import yaml

from aidevops_ext.deploy import manager
from tests.conftest import REPO
from tests.deploy.conftest import MODEL

NOTEBOOK = REPO / "notebooks" / "05_deploy.ipynb"


def test_pipelines_have_a_deploy_step_after_register():
    for name in ("default", "regression"):
        steps = yaml.safe_load((REPO / "pipelines" / f"{name}.yaml").read_text())["steps"]
        assert steps["deploy"] == {
            "notebook": "notebooks/05_deploy.ipynb",
            "needs": ["register"],
            "outputs": ["deployment.json"],
        }


def test_deploy_step_serves_the_champion_and_smoke_tests_both_protocols(reg, tmp_path):
    import papermill

    from aidevops_ext.kernels import ensure_kernel

    ensure_kernel("aidevops")
    register = tmp_path / "register"
    register.mkdir()
    (register / "registration.json").write_text(
        json.dumps({"model": MODEL, "version": "1", "gate_passed": True, "champion_moved": True, "reasons": []})
    )
    step_dir = tmp_path / "deploy"

    def run_step(executed: str, **parameters) -> dict:
        """The deploy step as the pipeline runs it; the deployment.json it wrote."""
        parameters.update(model_name=MODEL, step_dir=str(step_dir), upstream={"register": str(register)})
        papermill.execute_notebook(
            str(NOTEBOOK),
            str(tmp_path / executed),
            kernel_name="aidevops",
            progress_bar=False,
            cwd=str(reg.root),
            parameters=parameters,
        )
        return json.loads((step_dir / "deployment.json").read_text())

    try:
        out = run_step("executed.ipynb", pipeline_run_id="run-123")
        assert (out["name"], out["model"], out["version"], out["action"]) == (MODEL, MODEL, "1", "started")
        assert out["smoke"] == {"invocations": 200, "v2_infer": 200, "matches_registry": True}
        assert out["curl"].startswith(f"curl -s -X POST {out['url']}/invocations")
        with urllib.request.urlopen(out["url"] + "/v2/health/ready", timeout=5) as r:
            assert r.status == 200, "the deployment outlives the notebook's kernel"
        executed = json.loads((tmp_path / "executed.ipynb").read_text())
        text = "".join(
            str(o.get("text", "")) + json.dumps(o.get("data", {}))
            for c in executed["cells"]
            for o in c.get("outputs", [])
        )
        assert "/v2/models/dig/infer" in text and "curl -s -X POST" in text
        assert manager.history(reg.ws, MODEL)[-1].reason == "pipeline run run-123"
        # Run again (a later pipeline run): the running deployment is kept, nothing restarts.
        again = run_step("executed2.ipynb")
        assert again["action"] == "unchanged" and again["url"] == out["url"]
    finally:
        try:
            manager.undeploy(reg.ws, MODEL, reason="notebook test finished")
        except Exception:  # noqa: BLE001 - the notebook failed before deploying
            pass
