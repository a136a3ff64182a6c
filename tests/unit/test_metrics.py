"""aidevops_ext.trainer.metrics against scikit-learn on random inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from aidevops_ext.errors import DataError
from aidevops_ext.trainer import metrics as m
from tests.support.imports import modules_loaded_by

SEEDS = range(6)
CLASS_COUNTS = (2, 3, 7)


def _labels(rng: np.random.Generator, n: int, k: int, kind: str) -> np.ndarray:
    y = rng.integers(0, k, size=n)
    if kind == "str":
        return np.array([f"class_{v}" for v in y])
    if kind == "neg":
        return y * 3 - 4  # non-contiguous, negative integers
    return y


def _cases():
    for seed in SEEDS:
        for k in CLASS_COUNTS:
            for kind in ("int", "str", "neg"):
                yield seed, k, kind


@pytest.mark.parametrize("seed,k,kind", list(_cases()))
def test_classification_scores_match_sklearn(seed: int, k: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    y_true = _labels(rng, n, k, kind)
    y_pred = _labels(rng, n, k + 1, kind)  # an extra label never in y_true; some labels never predicted
    if seed % 2:
        y_pred = y_pred.copy()
        y_pred[:] = y_pred[0]  # a degenerate classifier: precision undefined for most classes
    assert m.accuracy_score(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    np.testing.assert_array_equal(m.confusion_matrix(y_true, y_pred), skm.confusion_matrix(y_true, y_pred))
    for average in (None, "macro", "micro", "weighted"):
        ours = m.precision_recall_fscore(y_true, y_pred, average=average)
        theirs = skm.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)[:3]
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    kw = {"average": "macro", "zero_division": 0}
    assert m.precision_score(y_true, y_pred) == pytest.approx(skm.precision_score(y_true, y_pred, **kw))
    assert m.recall_score(y_true, y_pred) == pytest.approx(skm.recall_score(y_true, y_pred, **kw))
    assert m.f1_score(y_true, y_pred) == pytest.approx(skm.f1_score(y_true, y_pred, **kw))


def test_confusion_matrix_with_explicit_labels_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 5, 200)
    y_pred = rng.integers(0, 5, 200)
    labels = [3, 0, 4]  # unsorted subset: order respected, other labels ignored
    np.testing.assert_array_equal(
        m.confusion_matrix(y_true, y_pred, labels=labels), skm.confusion_matrix(y_true, y_pred, labels=labels)
    )
    ours = m.precision_recall_fscore(y_true, y_pred, average=None, labels=labels)
    theirs = skm.precision_recall_fscore_support(y_true, y_pred, average=None, labels=labels, zero_division=0)
    for a, b in zip(ours, theirs[:3]):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", CLASS_COUNTS)
def test_log_loss_matches_sklearn(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    y_true = rng.integers(0, k, n)
    y_true[:k] = np.arange(k)  # every class present so sklearn can infer the labels
    logits = rng.normal(size=(n, k)) * 3
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba[0] = 0.0
    proba[0, (y_true[0] + 1) % k] = 1.0  # a confident mistake exercises the eps clipping
    assert m.log_loss(y_true, proba) == pytest.approx(skm.log_loss(y_true, proba), rel=1e-10)
    names = np.array(["a", "b", "c", "d", "e", "f", "g"])[:k]
    assert m.log_loss(names[y_true], proba, labels=names) == pytest.approx(
        skm.log_loss(names[y_true], proba, labels=names), rel=1e-10
    )
    if k == 2:  # 1-D proba means P(positive class)
        assert m.log_loss(y_true, proba[:, 1]) == pytest.approx(skm.log_loss(y_true, proba[:, 1]), rel=1e-10)


def test_log_loss_labels_absent_from_y_true() -> None:
    y_true = np.array([0, 0, 2, 2])
    proba = np.full((4, 3), 1 / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = skm.log_loss(y_true, proba, labels=[0, 1, 2])
    assert m.log_loss(y_true, proba, labels=[0, 1, 2]) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(10))
def test_roc_auc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 300))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    score = rng.integers(0, 5, n) / 4.0  # few distinct values: many ties
    assert m.roc_auc_score(y, score) == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    cont = rng.normal(size=n) + y
    assert m.roc_auc_score(y, cont) == pytest.approx(skm.roc_auc_score(y, cont), abs=1e-12)
    labels = np.array(["neg", "pos"])[y]  # string labels: greater label ("pos") is the positive class
    assert m.roc_auc_score(labels, cont) == pytest.approx(skm.roc_auc_score(labels, cont), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 200))
    y = rng.normal(size=n) * 10
    p = y + rng.normal(size=n)
    got = m.regression_metrics(y, p)
    assert got["mse"] == pytest.approx(skm.mean_squared_error(y, p), rel=1e-12)
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(y, p), rel=1e-12)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert got["max_error"] == pytest.approx(skm.max_error(y, p), rel=1e-12)
    assert got["r2"] == pytest.approx(skm.r2_score(y, p), rel=1e-12)
    assert set(got) == {"mse", "rmse", "mae", "max_error", "r2"}
    y2, p2 = y.reshape(-1, 1).repeat(2, 1), np.c_[p, p * 2]  # multi-output: uniform average
    assert m.r2_score(y2, p2) == pytest.approx(skm.r2_score(y2, p2), rel=1e-12)
    assert m.root_mean_squared_error(y2, p2) == pytest.approx(skm.root_mean_squared_error(y2, p2), rel=1e-12)


def test_r2_constant_target_matches_sklearn() -> None:
    y = np.ones(5)
    assert m.r2_score(y, y) == skm.r2_score(y, y) == 1.0
    assert m.r2_score(y, y + 1) == skm.r2_score(y, y + 1) == 0.0


def test_classification_metrics_dict() -> None:
    rng = np.random.default_rng(0)
    y = np.array(["cat", "dog"])[rng.integers(0, 2, 100)]
    proba = rng.uniform(size=(100, 1))
    proba = np.c_[1 - proba, proba]
    pred = np.array(["cat", "dog"])[proba.argmax(1)]
    out = m.classification_metrics(y, pred, proba=proba)
    assert set(out) == {"accuracy", "precision_macro", "recall_macro", "f1_macro", "log_loss", "roc_auc"}
    assert all(type(v) is float for v in out.values())
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert out["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    multi = m.classification_metrics([0, 1, 2], [0, 1, 1], proba=np.full((3, 3), 1 / 3))
    assert "roc_auc" not in multi and "log_loss" in multi
    assert "proba" not in m.classification_metrics([0, 1], [0, 0])


@pytest.mark.parametrize(
    "call",
    [
        lambda: m.accuracy_score([1, 2, 3], [1, 2]),
        lambda: m.accuracy_score([], []),
        lambda: m.f1_score([0, 1], [0, 1], average="bogus"),
        lambda: m.mean_squared_error([1.0, 2.0], [1.0]),
        lambda: m.r2_score([], []),
        lambda: m.roc_auc_score([1, 1, 1], [0.1, 0.2, 0.3]),
        lambda: m.roc_auc_score([0, 1], [0.1]),
        lambda: m.log_loss([0, 1, 1], [[0.5, 0.5]] * 2),
        lambda: m.log_loss([0, 1, 2], [[0.5, 0.5]] * 3),
        lambda: m.log_loss([0, 0], [[0.5, 0.5]] * 2),
        lambda: m.log_loss([0, 5], [[0.5, 0.5]] * 2, labels=[0, 1]),
        lambda: m.log_loss([0, 1], [[1.5, -0.5]] * 2),
        lambda: m.confusion_matrix(np.ones((2, 2)), np.ones((2, 2))),
    ],
)
def test_bad_inputs_raise_one_clear_error(call) -> None:
    with pytest.raises(DataError) as info:
        call()
    msg = str(info.value)
    assert msg.endswith(".") and "\n" not in msg


def test_module_import_is_light() -> None:
    assert modules_loaded_by("import aidevops_ext.trainer.metrics", ("sklearn", "pandas", "mlflow")) == []


try:  # hypothesis widens the search beyond the seeded loops when it is installed
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    pass
else:

    @settings(max_examples=60, deadline=None)
    @given(
        pairs=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5)), min_size=1, max_size=40),
        scores=st.lists(st.integers(0, 3), min_size=40, max_size=40),
    )
    def test_hypothesis_f1_and_auc(pairs, scores) -> None:
        y_true = np.array([a for a, _ in pairs])
        y_pred = np.array([b for _, b in pairs])
        assert m.f1_score(y_true, y_pred) == pytest.approx(
            skm.f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12
        )
        yb = y_true % 2
        if len(np.unique(yb)) == 2:
            s = np.array(scores[: len(yb)], dtype=float)
            assert m.roc_auc_score(yb, s) == pytest.approx(skm.roc_auc_score(yb, s), abs=1e-12)
