"""Schemathesis against the server's own /openapi.json: every documented operation, generated valid and invalid
requests, all of schemathesis' default checks (no 5xx, documented status codes, content types and schemas,
valid data accepted, invalid data refused)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_contract(case):
    case.call_and_validate()
