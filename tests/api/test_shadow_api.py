"""POST /aidevops/api/deployments/NAME/shadow: the Jupyter credential (like canary), and one sentence for a
body that asks for both or neither of a version and stop."""

from __future__ import annotations

import pytest

from tests.api.test_handlers import _call


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"version": "2", "stop": True}, 400, "either 'version'"),
        ({}, 400, "either 'version'"),
        ({"version": "two"}, 400, "version"),
        ({"version": "2", "share": 0.5}, 400, "share"),
        ({"version": "2"}, 404, "There is no deployment named 'nope'"),
        ({"stop": True}, 404, "There is no deployment named 'nope'"),
    ],
)
async def test_shadow_requests_are_checked_before_the_deployment_is_looked_up(jp_fetch, body, status, needle):
    got, answer = await _call(jp_fetch, "deployments/nope/shadow", "POST", body)
    assert got == status and set(answer) == {"error"} and needle in answer["error"], answer
