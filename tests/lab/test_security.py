"""Every route refuses unauthenticated callers, and cookie-authenticated changes need the XSRF token.

The static check is in the spirit of the extension template's check_auth: it fails when any HTTP verb
of any handler in aidevops_ext/routes.py lacks `@tornado.web.authenticated`.
"""

from __future__ import annotations

import ast
import re

import httpx
import pytest

from aidevops_ext import routes
from tests.conftest import REPO

VERBS = ("get", "post", "put", "delete", "patch", "head", "options")
SAMPLE = {"name": "nope", "run_id": "nope", "step": "train", "job_id": "nope"}


def _is_authenticated(decorator: ast.expr) -> bool:
    return ast.unparse(decorator) in ("tornado.web.authenticated", "web.authenticated", "authenticated")


def test_every_handler_verb_is_decorated_authenticated():
    tree = ast.parse((REPO / "aidevops_ext" / "routes.py").read_text())
    verbs = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for fn in (n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name in VERBS):
            verbs[f"{cls.name}.{fn.name}"] = any(_is_authenticated(d) for d in fn.decorator_list)
    missing = sorted(k for k, ok in verbs.items() if not ok)
    assert not missing, f"handler verbs without @tornado.web.authenticated: {missing}"
    # Every routed class answers through verbs the check saw (its own or a checked base's).
    for _, handler in routes.ROUTES:
        served = [v for v in VERBS if any(f"{c.__name__}.{v}" in verbs for c in handler.__mro__)]
        assert served, f"{handler.__name__} serves no checked verb"
    assert len(verbs) >= 10


def _routed_calls() -> list[tuple[str, str]]:
    """(method, path) for every verb of every route, with sample path parameters."""
    calls = []
    for pattern, handler in routes.ROUTES:
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: SAMPLE[m.group(1)], pattern)
        for verb in ("get", "post", "delete"):
            if any(verb in vars(c) for c in handler.__mro__ if c.__module__ == routes.__name__):
                calls.append((verb.upper(), "aidevops/api" + path))
    return calls


CALLS = _routed_calls()


def test_the_route_table_is_what_the_openapi_file_describes():
    import yaml

    spec = yaml.safe_load((REPO / "aidevops_ext" / "openapi" / "aidevops-api.yaml").read_text())
    described = {
        (m.upper(), "aidevops/api" + re.sub(r"\{(\w+)\}", lambda g: SAMPLE[g.group(1)], p))
        for p, ops in spec["paths"].items()
        for m in ops
        if m in VERBS
    }
    assert described == set(CALLS)


@pytest.mark.parametrize(("method", "path"), CALLS, ids=[f"{m} {p}" for m, p in CALLS])
def test_unauthenticated_requests_are_refused(lab, method, path):
    with httpx.Client(base_url=lab.url, timeout=30) as client:
        plain = client.request(method, "/" + path, json={} if method == "POST" else None)
        assert plain.status_code == 403, plain.text
        # Even with a matching XSRF cookie and header (so only authentication can refuse it).
        forged = client.request(
            method,
            "/" + path,
            json={} if method == "POST" else None,
            headers={"X-XSRFToken": "abc", "Cookie": "_xsrf=abc"},
        )
        assert forged.status_code == 403, forged.text


def test_a_cookie_authenticated_post_needs_the_xsrf_header(lab):
    with httpx.Client(base_url=lab.url, timeout=30, follow_redirects=True) as client:
        assert client.get(f"/lab?token={lab.token}").status_code == 200  # logs in: sets the login and _xsrf cookies
        xsrf = client.cookies.get("_xsrf")
        assert xsrf, "Jupyter server sets an _xsrf cookie on login"
        assert client.get("/aidevops/api/deployments").status_code == 200, "the cookie authenticates"
        refused = client.post("/aidevops/api/deployments/nope/rollback", json={})
        assert refused.status_code == 403 and "xsrf" in refused.text.lower()
        refused = client.delete("/aidevops/api/deployments/nope")
        assert refused.status_code == 403
        allowed = client.post("/aidevops/api/deployments/nope/rollback", json={}, headers={"X-XSRFToken": xsrf})
        assert allowed.status_code == 404, allowed.text  # past auth and XSRF: the core says there is no 'nope'
        assert "no deployment named 'nope'" in allowed.json()["error"]
