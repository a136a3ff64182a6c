"""Pieces of the closed loop in isolation: the alert store, the traffic simulator's checks, extra training rows."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from aidevops_ext import traffic
from aidevops_ext.errors import ConfigError, DataError
from aidevops_ext.monitoring.alertstore import AlertStore
from aidevops_ext.trainer import data


def _event(rule: str, kind: str = "fired", action: str = "retrain") -> dict:
    return {
        "rule": rule,
        "event": kind,
        "at": 100.0,
        "metric": "psi",
        "value": 0.5,
        "threshold": 0.25,
        "features": ["a"],
        "action": action,
        "message": f"{rule} {kind}",
    }


def test_alert_store_keeps_state_events_and_lets_one_claimant_win(tmp_path):
    store = AlertStore(tmp_path / "deploy.db")
    assert store.load_state("d") == {} and store.events() == [] and store.event(1) is None
    state = {"drift": {"state": "firing", "since": 100.0, "value": 0.5, "features": ["a"], "breaches": 2}}
    ids = store.save("d", state, [_event("drift"), _event("errors", action="notify")], model="m", version="3")
    other = store.save("e", {}, [_event("drift")])
    assert store.load_state("d") == state
    assert [e["id"] for e in store.events("d")] == ids and store.events("e")[0]["id"] == other[0]
    assert store.event(ids[1])["rule"] == "errors", "an event is found by its id, not by position"
    assert [e["rule"] for e in store.events("d", action="retrain", unhandled=True)] == ["drift"]
    results = []
    barrier = threading.Barrier(4)

    def claim(who):
        barrier.wait()
        results.append((who, store.claim(ids[0], who)))

    threads = [threading.Thread(target=claim, args=(f"c{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [who for who, ok in results if ok]
    assert len(winners) == 1
    assert store.event(ids[0])["handled_by"] == winners[0]
    assert store.events("d", action="retrain", unhandled=True) == []
    store.save("d", {}, [])  # every rule removed from the spec: its state goes too
    assert store.load_state("d") == {} and store.states("d") == []


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"rate": 0}, "--rate must be requests per second"),
        ({"rate": float("nan")}, "--rate must be"),
        ({"duration": -1}, "--duration must be seconds"),
        ({"feedback": 1.5}, "--feedback must be the share"),
        ({"drift": "big"}, "--drift must be a shift"),
        ({"batch": 0}, "--batch must be an integer"),
    ],
)
def test_simulator_refuses_bad_settings_before_sending(kwargs, message):
    rows = traffic.ReplayRows(np.zeros((3, 2), np.float32), np.zeros(3), "zeros")
    args = {"rate": 10.0, "duration": 1.0, **kwargs}
    with pytest.raises(ConfigError, match=message):
        traffic.simulate("http://127.0.0.1:9", rows, **args)


def test_simulator_counts_an_unreachable_server_as_failures():
    rows = traffic.ReplayRows(np.zeros((3, 2), np.float32), None, "zeros")
    result = traffic.simulate("http://127.0.0.1:9", rows, rate=50.0, duration=0.1)
    assert result.sent == 5 and result.failed == 5 and result.ok == 0 and result.errors
    with pytest.raises(ConfigError, match="needs true labels"):
        traffic.simulate("http://127.0.0.1:9", rows, rate=50.0, duration=0.1, feedback=0.5)
    with pytest.raises(ConfigError, match="is not a server address"):
        traffic.simulate("ftp://x", rows, rate=50.0, duration=0.1)


def test_shift_moves_each_feature_by_its_std_and_leaves_constant_ones():
    X = np.array([[0, 1, 5], [2, 1, 5], [4, 1, 5]], np.float32)
    np.testing.assert_allclose(traffic.shift_for(X, 2.0), [2 * X[:, 0].std(), 0, 0], rtol=1e-6)
    np.testing.assert_allclose(traffic.shift_for(X, 1.0, features=[1, 2]), [0, 0, 0])


def test_extra_training_rows_join_the_training_split_only(tmp_path):
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.arange(20) % 2
    split = data.train_val_test_split(X, y, seed=0)
    path = data.save_rows(np.ones((3, 2)), np.array([1, 0, 1]), tmp_path)
    assert path == data.save_rows(np.ones((3, 2)), np.array([1, 0, 1]), tmp_path), (
        "same rows, same content-addressed file"
    )
    assert path != data.save_rows(np.ones((3, 2)), np.array([1, 1, 1]), tmp_path)
    out, n = data.add_training_rows(split, path)
    assert n == 3 and len(out.X_train) == len(split.X_train) + 3 and out.y_train.dtype == split.y_train.dtype
    np.testing.assert_array_equal(out.X_test, split.X_test)
    np.testing.assert_array_equal(out.X_val, split.X_val)


def test_extra_training_rows_that_do_not_fit_are_refused(tmp_path):
    split = data.train_val_test_split(np.zeros((20, 2), np.float32), np.arange(20) % 2, seed=0)
    with pytest.raises(DataError, match="do not exist"):
        data.add_training_rows(split, tmp_path / "none.npz")
    wide = data.save_rows(np.ones((3, 5)), np.array([1, 0, 1]), tmp_path)
    with pytest.raises(DataError, match="the dataset has 2 features"):
        data.add_training_rows(split, wide)
    unseen = data.save_rows(np.ones((2, 2)), np.array([7, 1]), tmp_path)
    with pytest.raises(DataError, match=r"labels \[7\] the training data never has"):
        data.add_training_rows(split, unseen)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="is not an .npz with arrays X and y"):
        data.add_training_rows(split, tmp_path / "junk.npz")
    with pytest.raises(DataError, match="one label per row"):
        data.save_rows(np.ones((3, 2)), np.array([1, 0]), tmp_path)
