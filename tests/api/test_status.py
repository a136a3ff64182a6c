"""DeploymentStatus derives the active, previous and canary versions once (live slots first, else the stored row),
and the canary's rules are one model for the panel and the CLI."""

from __future__ import annotations

import json

import pytest

from aidevops_ext.deploy import manager
from aidevops_ext.deploy.manager import DeploymentStatus
from aidevops_ext.deploy.store import Deployment, HistoryEntry
from aidevops_ext.errors import ConfigError
from aidevops_ext.workspace import Workspace
from tests.support.deployments import deployment_row


def _row(**kw) -> Deployment:
    """A deployment with a canary: v3 active, v2 the one before it, v4 taking a quarter of the requests."""
    versions = dict(active_version="3", previous_version="2", canary_version="4", canary_share=0.25)
    return deployment_row(**{"created": 1.0, "updated": 2.0, "port": 5001, "admin_token": "secret", **versions, **kw})


def test_live_slots_decide_the_versions_when_the_server_answered():
    slots = {
        "active": {"version": "5", "example": {"inputs": [[1.0]]}},
        "previous": None,
        "canary": {"version": "6"},
        "canary_share": 0.1,
    }
    status = DeploymentStatus(_row(), slots=slots)
    assert (status.active_version, status.previous_version, status.canary_version) == ("5", None, "6")
    assert status.canary_share == 0.1 and status.health == "healthy"
    assert status.example == {"inputs": [[1.0]]}


def test_without_slots_the_stored_row_decides_and_health_says_why():
    running = DeploymentStatus(_row(), error="connection refused")
    assert (running.active_version, running.previous_version, running.canary_version) == ("3", "2", "4")
    assert running.canary_share == 0.25 and running.health == "unreachable" and running.example is None
    assert DeploymentStatus(_row(state="stopped")).health == "stopped"


def test_the_json_view_carries_the_derived_versions_and_never_the_admin_token():
    entry = HistoryEntry("d", 1.0, "deploy", None, "3", "first", "me", True, "")
    data = DeploymentStatus(_row(), history=[entry]).to_dict()
    assert data["active_version"] == "3" and data["history"][0]["operation"] == "deploy"
    assert "secret" not in json.dumps(data, default=str)


@pytest.mark.parametrize(
    ("version", "share", "clear", "needle"),
    [
        ("2", None, False, "--share"),  # the CLI's user reads the flag; the panel's, the field
        ("2", 1.5, False, "between 0 and 1"),
        ("two", 0.1, False, "is not a model version"),
        ("2", None, True, "'clear' takes no version or share"),
    ],
)
def test_manager_canary_refuses_a_bad_request_before_looking_for_the_deployment(
    tmp_path, version, share, clear, needle
):
    (tmp_path / "pipelines").mkdir()
    with pytest.raises(ConfigError) as refused:
        manager.canary(Workspace.discover(tmp_path), "nope", version, share=share, clear=clear)
    assert needle in str(refused.value)
