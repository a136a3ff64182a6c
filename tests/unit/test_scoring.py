"""scoring.score: the same metrics for any model on a table, whatever its predict returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from aidevops_ext.errors import DataError
from aidevops_ext.scoring import predictions, score


def _table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "colour": rng.choice(["red", "green", "blue"], n).astype(object),
        }
    )
    frame.loc[rng.random(n) < 0.05, "x"] = np.nan
    frame.loc[rng.random(n) < 0.05, "colour"] = None
    y = ((frame["x"].fillna(0) + (frame["colour"] == "red")) > 0.3).astype(int).to_numpy()
    return frame, y


class Fixed:
    """A model whose predict returns a given output, as a pyfunc of any flavor might."""

    def __init__(self, output):
        self.output = output

    def predict(self, frame):
        return self.output


def test_sklearn_pipeline_gets_accuracy_f1_log_loss_and_auc_from_its_probabilities():
    frame, y = _table()
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", SimpleImputer(), ["x"]),
                        (
                            "cat",
                            Pipeline(
                                [
                                    ("imp", SimpleImputer(strategy="most_frequent")),
                                    ("oh", OneHotEncoder(handle_unknown="ignore")),
                                ]
                            ),
                            ["colour"],
                        ),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(frame, y)
    got = score(pipe, frame, y, "classification")
    proba = pipe.predict_proba(frame)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y, pipe.predict(frame)))
    assert got["f1_macro"] == pytest.approx(metrics.f1_score(y, pipe.predict(frame), average="macro"))
    assert got["log_loss"] == pytest.approx(metrics.log_loss(y, proba))
    assert got["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, proba[:, 1]))


def test_label_only_output_scores_accuracy_and_f1_but_no_probability_metrics():
    y = np.array(["a", "b", "a", "c"])
    got = score(Fixed(pd.Series(["a", "b", "c", "c"])), pd.DataFrame({"f": range(4)}), y, "classification")
    assert got == {
        "accuracy": 0.75,
        "f1_macro": pytest.approx(metrics.f1_score(y, ["a", "b", "c", "c"], average="macro")),
    }


def test_probability_columns_give_argmax_labels_and_log_loss():
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    y = np.array([0, 1, 2, 2])
    got = score(Fixed(proba), pd.DataFrame({"f": range(4)}), y, "classification")
    assert got["accuracy"] == 0.75
    assert got["log_loss"] == pytest.approx(metrics.log_loss(y, proba, labels=[0, 1, 2]))
    assert "roc_auc" not in got, "ROC AUC is reported for binary targets only"


def test_logits_go_through_softmax():
    logits = np.array([[2.0, -1.0], [-3.0, 4.0], [0.5, 0.0]])
    y = np.array([0, 1, 1])
    got = score(Fixed(logits), pd.DataFrame({"f": range(3)}), y, "classification")
    soft = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert got["log_loss"] == pytest.approx(metrics.log_loss(y, soft))
    assert got["accuracy"] == pytest.approx(2 / 3)
    assert got["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, soft[:, 1]))


def test_one_probability_column_is_the_positive_class_of_a_binary_target():
    p = np.array([[0.9], [0.2], [0.6], [0.4]], dtype=np.float32)
    y = np.array([1, 0, 0, 0])
    got = score(Fixed(p), pd.DataFrame({"f": range(4)}), y, "classification")
    assert got["accuracy"] == 0.75
    assert got["roc_auc"] == 1.0
    assert got["log_loss"] == pytest.approx(metrics.log_loss(y, p[:, 0].astype(np.float64)), rel=1e-6)


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
    y = 3 * frame["a"] - frame["b"] + rng.normal(scale=0.1, size=50)
    model = LinearRegression().fit(frame, y)
    pred = model.predict(frame)
    got = score(model, frame, y, "regression")
    assert got == pytest.approx(
        {
            "mse": metrics.mean_squared_error(y, pred),
            "mae": metrics.mean_absolute_error(y, pred),
            "max_error": metrics.max_error(y, pred),
            "r2": metrics.r2_score(y, pred),
        }
    )


def test_a_model_returning_the_wrong_number_of_rows_is_one_sentence():
    with pytest.raises(DataError, match="returned 2 predictions for 3 rows"):
        score(Fixed(np.array([1, 0])), pd.DataFrame({"f": range(3)}), np.array([1, 0, 1]), "classification")


def test_a_regression_model_must_return_one_value_per_row():
    with pytest.raises(DataError, match="one value per row, not 2"):
        score(Fixed(np.zeros((3, 2))), pd.DataFrame({"f": range(3)}), np.zeros(3), "regression")


def test_an_unknown_task_is_refused():
    with pytest.raises(DataError, match="classification or regression"):
        score(Fixed(np.zeros(3)), pd.DataFrame({"f": range(3)}), np.zeros(3), "ranking")


def test_predictions_are_one_label_per_row_even_from_logits():
    logits = np.array([[2.0, -1.0], [-3.0, 4.0], [0.5, 0.0]])
    got = predictions(Fixed(logits), pd.DataFrame({"f": range(3)}), np.array([0, 1, 1]), "classification")
    assert got.tolist() == [0, 1, 0]
    values = predictions(Fixed(np.array([[1.5], [2.5]])), pd.DataFrame({"f": range(2)}), np.zeros(2), "regression")
    assert values.tolist() == [1.5, 2.5]
