"""Model slots: load + smoke test before traffic, atomic switch, rollback, canary; refused versions change nothing."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from aidevops_ext.serving import ModelRefused, ModelSlots, SlotError
from aidevops_ext.serving.models import AidevopsModel
from aidevops_ext.serving.slots import SlotState
from tests.serving.conftest import ADMIN_TOKEN, data, start_server, stop_server

ROWS = {"inputs": [[0.1, 1.0, 10.0], [1.0, -2.0, 3.0]]}


@pytest.fixture
def slots(reg) -> ModelSlots:
    return ModelSlots.from_uri("models:/abc@champion", reg.ws, allow_pickle=True)  # the tests' own registry


def test_from_uri_loads_and_smoke_tests(slots):
    m = slots.active
    assert (m.name, m.version, m.alias, m.kind, m.n_features) == ("abc", "1", "champion", "aidevops", 3)
    assert m.feature_names == ["a", "b", "c"]
    assert m.smoke["ok"] and m.smoke["input"] == "profile" and m.smoke["rows"] == 4


def test_switch_rollback_and_history(slots):
    event = slots.switch("models:/abc/2", actor="alice", reason="better accuracy")
    assert (event.from_version, event.to_version, event.actor, event.reason) == ("1", "2", "alice", "better accuracy")
    assert slots.active.version == "2" and slots.previous.version == "1"
    assert slots.active.alias == "champion"  # loaded by version, served as the slots' alias
    slots.rollback(actor="bob", reason="latency")
    assert slots.active.version == "1" and slots.previous.version == "2"
    ops = [(e.operation, e.to_version, e.actor) for e in slots.history]
    assert ops == [("switch", "2", "alice"), ("rollback", "1", "bob")]
    assert slots.describe()["history"][-1]["reason"] == "latency"


@pytest.mark.parametrize(
    "uri,problem",
    [
        ("models:/abc/3", "NaN"),
        ("models:/abc/4", "cannot load"),
        ("models:/abc/99", "Cannot load"),
        ("models:/nope@champion", "does not exist"),
        ("/no/such/model.npz", "does not exist"),
    ],
)
def test_refused_versions_leave_the_slots_alone(slots, uri, problem):
    before = slots.state
    with pytest.raises(ModelRefused, match=problem):
        slots.switch(uri, actor="ci")
    assert slots.state is before
    assert slots.history[-1].ok is False and slots.history[-1].operation == "switch"
    with pytest.raises(ModelRefused):
        slots.set_canary(uri, 0.5)
    assert slots.state is before and slots.server_stats.loads["refused"] == 2


def test_smoke_test_catches_a_model_whose_output_breaks(reg):
    """A fast-path model that returns NaN (weights gone bad) is refused just like a pyfunc."""
    model = AidevopsModel.from_estimator(reg.champion, name="abc", version="x", source="mem")
    broken = type(
        "Broken",
        (),
        {
            "predict": lambda self, X: np.full(len(X), np.nan),
            "n_features_in_": 3,
            "classes_": None,
            "_estimator_type": "regressor",
        },
    )()
    bad = AidevopsModel.from_estimator(broken, name="abc", version="y", source="mem")
    slots = ModelSlots(model)
    slots.prepare(model)
    with pytest.raises(ModelRefused, match="NaN"):
        slots.switch(bad)
    assert slots.active is model


def test_canary_share_promote_clear(slots):
    slots.set_canary("models:/abc/2", 0.25, reason="try v2")
    st = slots.state
    assert st.canary.version == "2" and st.canary_share == 0.25
    picks = [st.pick(lambda r=r: r)[0] for r in (0.0, 0.2, 0.3, 0.99)]
    assert picks == ["canary", "canary", "active", "active"]
    slots.set_canary_share(1.0)
    assert slots.state.pick()[1].version == "2"
    slots.promote_canary()
    assert slots.active.version == "2" and slots.previous.version == "1" and slots.canary is None
    slots.set_canary("models:/abc/1", 0.1)
    slots.clear_canary()
    assert slots.canary is None
    with pytest.raises(SlotError):
        slots.clear_canary()
    with pytest.raises(SlotError):
        slots.set_canary_share(2)


def test_rollback_without_previous_is_an_error(slots):
    with pytest.raises(SlotError, match="no previous"):
        slots.rollback()


def test_slot_state_is_immutable_and_find_by_version(slots):
    slots.switch("models:/abc/2")
    st = slots.state
    assert isinstance(st, SlotState) and st.find("1") is st.previous and st.find("2") is st.active
    with pytest.raises(AttributeError):
        st.active = None  # frozen


def test_admin_api_switch_under_load_fails_no_request(reg):
    """A real server: requests keep flowing while the admin API switches, rolls back and refuses a bad version."""
    srv = start_server(reg, "models:/abc@champion", "--follow-alias", "0")
    failures: list = []
    versions: set = set()
    stop = threading.Event()

    def hammer():
        with srv.client() as c:
            while not stop.is_set():
                try:
                    r = c.post(
                        "/v2/models/abc/infer",
                        json={"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": ROWS["inputs"]}]},
                    )
                    if r.status_code != 200:
                        failures.append(r.text)
                    else:
                        versions.add(r.json()["model_version"])
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    try:
        for w in workers:
            w.start()
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with srv.client() as admin:
            assert admin.post("/admin/switch", json={"model_uri": "models:/abc/2"}).status_code == 401
            r = admin.post(
                "/admin/switch",
                json={"model_uri": "models:/abc/2", "actor": "ci", "reason": "gate passed"},
                headers=auth,
            )
            assert r.status_code == 200, r.text
            assert r.json()["slots"]["active"]["version"] == "2"
            time.sleep(0.3)
            r = admin.post("/admin/switch", json={"model_uri": "models:/abc/3"}, headers=auth)
            assert r.status_code == 422 and "NaN" in r.json()["error"]
            time.sleep(0.3)
            assert (
                admin.post("/admin/rollback", json={"reason": "check"}, headers=auth).json()["slots"]["active"][
                    "version"
                ]
                == "1"
            )
            r = admin.post("/admin/canary", json={"model_uri": "models:/abc/2", "share": 0.5}, headers=auth)
            assert r.status_code == 200 and r.json()["slots"]["canary_share"] == 0.5
            time.sleep(0.3)
            assert admin.post("/admin/canary/clear", headers=auth).status_code == 200
            assert admin.post("/admin/canary/clear", headers=auth).status_code == 409
            assert admin.post("/admin/switch", json={"model_uri": 5}, headers=auth).status_code == 400
            slots = admin.get("/admin/slots", headers=auth).json()
            assert [h["operation"] for h in slots["history"]] == [
                "switch",
                "switch",
                "rollback",
                "canary",
                "clear_canary",
            ]
            metrics = admin.get("/metrics").text
            assert 'aidevops_model_slot{alias="champion",model="abc",slot="previous",version="2"} 1.0' in metrics
            assert 'aidevops_model_loads_total{result="refused"} 1.0' in metrics
    finally:
        stop.set()
        for w in workers:
            w.join(10)
        stop_server(srv)
    assert failures == []
    assert versions == {"1", "2"}


def test_alias_follower_switches_when_the_alias_moves(reg):
    from aidevops_ext import registry
    from aidevops_ext.serving.loader import parse_uri
    from aidevops_ext.serving.watch import AliasFollower

    slots = ModelSlots.from_uri("models:/abc@champion", reg.ws)
    follower = AliasFollower(parse_uri("models:/abc@champion"), reg.ws, 1.0, seen_version="1")
    assert follower.check(slots) is False
    slots.switch("models:/abc/2")
    slots.rollback()  # a manual rollback is not undone while the alias stays where it was
    assert follower.check(slots) is False and slots.active.version == "1"
    try:
        registry.set_alias(reg.ws, "abc", "champion", "2")
        assert follower.check(slots) is True
        assert slots.active.version == "2" and slots.history[-1].actor == "alias-follower"
        registry.set_alias(reg.ws, "abc", "champion", "3")  # a NaN version: refused once, serving goes on
        assert follower.check(slots) is False and slots.active.version == "2"
        assert follower.check(slots) is False
    finally:
        registry.set_alias(reg.ws, "abc", "champion", "1")


def test_requests_read_one_state(slots):
    """The request path reads `state` once: a switch between pick and predict cannot mix versions."""
    st = slots.state
    slots.switch("models:/abc/2")
    _, model = st.pick()
    X, _ = data(1, 5)
    assert model.version == "1" and len(model.predict(X)) == 5
