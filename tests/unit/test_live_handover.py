"""The Parquet handover of labelled live rows to a retraining (aidevops_ext/steps/live.py, the split step) and
the simulator's drift of a table (numeric shift by stds, category frequency moves; aidevops_ext/traffic.py), and
how `aidevops monitor` shows a table's category columns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aidevops_ext import splitting, traffic
from aidevops_ext.datasection import DataSection
from aidevops_ext.errors import DataError
from aidevops_ext.steps.generic import split_table
from aidevops_ext.steps.live import live_table, write_live_table
from tests.support.summaries import drift_summary, numeric_drift

SECTION = DataSection(target="churned", id="customer_id", test_fraction=0.25)


def customers(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "age": rng.integers(18, 80, n).astype(np.float64),
            "calls": rng.integers(0, 5, n),
            "plan": rng.choice(["basic", "standard", "premium"], n, p=[0.6, 0.3, 0.1]),
            "churned": rng.integers(0, 2, n),
        }
    )


def logged(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows as the model server logs them: the model's inputs only (no id, no target)."""
    return frame.drop(columns=["customer_id", "churned"]).reset_index(drop=True)


def handover(tmp_path, inputs: pd.DataFrame, labels: list) -> str:
    ids = [f"req-{i}:0" for i in range(len(inputs))]
    return str(write_live_table(live_table(inputs, ids, labels, SECTION), tmp_path / "retrain"))


def test_live_rows_join_the_training_side_only_with_their_columns_categories_and_keys(tmp_path):
    table = customers()
    table.to_parquet(tmp_path / "table.parquet", index=False)
    plain = split_table(tmp_path / "table.parquet", SECTION, tmp_path / "plain")
    live_inputs = pd.DataFrame({"age": [101.5, 99.0, None], "calls": [1, 2, 3], "plan": ["premium", None, "gold"]})
    path = handover(tmp_path, live_inputs, [1, 0, 1])

    info = split_table(tmp_path / "table.parquet", SECTION, tmp_path / "live", live_data=path)

    assert info["live_rows"] == 3 and info["train_rows"] == plain["train_rows"] + 3
    assert info["test_rows"] == plain["test_rows"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "live" / "test.parquet"), pd.read_parquet(tmp_path / "plain" / "test.parquet")
    )
    train = pd.read_parquet(tmp_path / "live" / "train.parquet")
    added = train[train["customer_id"].str.startswith("live:")]
    assert list(train.columns) == list(table.columns)
    assert added["plan"].iloc[[0, 2]].tolist() == ["premium", "gold"] and pd.isna(added["plan"].iloc[1]), (
        "categories arrive as text, unseen and missing ones included"
    )
    assert added["churned"].tolist() == [1, 0, 1] and train["churned"].dtype == table["churned"].dtype
    assert train["calls"].dtype == table["calls"].dtype and np.isnan(added["age"].iloc[2])
    keys = splitting.load_keys(tmp_path / "live" / "train_keys.npy")
    assert len(keys) == len(train), "every training row, live ones included, has its key in the lineage"
    assert np.array_equal(keys[:-3], splitting.load_keys(tmp_path / "plain" / "train_keys.npy"))


def test_a_live_row_repeating_a_test_row_takes_its_key_so_the_gate_leaves_it_out(tmp_path):
    table = customers()
    table.to_parquet(tmp_path / "table.parquet", index=False)
    split_table(tmp_path / "table.parquet", SECTION, tmp_path / "plain")
    test = pd.read_parquet(tmp_path / "plain" / "test.parquet")
    path = handover(tmp_path, logged(test.head(2)), test["churned"].head(2).tolist())

    split_table(tmp_path / "table.parquet", SECTION, tmp_path / "live", live_data=path)

    test_keys = splitting.load_keys(tmp_path / "live" / "test_keys.npy")
    trained = ~splitting.unseen_mask(test_keys, splitting.load_keys(tmp_path / "live" / "train_keys.npy"))
    assert trained.tolist() == [True, True] + [False] * (len(test) - 2)


def test_the_handover_file_is_content_addressed(tmp_path):
    inputs = logged(customers(5))
    first = handover(tmp_path, inputs, [0, 1, 0, 1, 0])
    again = handover(tmp_path, inputs, [0, 1, 0, 1, 0])
    other = handover(tmp_path, inputs, [1, 1, 0, 1, 0])
    assert first == again != other
    frame = pd.read_parquet(first)
    assert frame["customer_id"].tolist()[0] == "live:req-0:0" and frame["churned"].tolist() == [0, 1, 0, 1, 0]


def test_live_rows_without_a_column_of_the_table_are_refused_with_the_column_named(tmp_path):
    customers().to_parquet(tmp_path / "table.parquet", index=False)
    path = handover(tmp_path, pd.DataFrame({"age": [30.0], "calls": [1]}), [1])
    with pytest.raises(DataError, match=r"lack the table's columns \['plan'\]"):
        split_table(tmp_path / "table.parquet", SECTION, tmp_path / "out", live_data=path)


def test_a_missing_handover_file_is_named(tmp_path):
    customers().to_parquet(tmp_path / "table.parquet", index=False)
    with pytest.raises(DataError, match="does not exist"):
        split_table(tmp_path / "table.parquet", SECTION, tmp_path / "out", live_data=str(tmp_path / "gone.parquet"))


def test_category_moves_mirror_the_frequency_ranks_and_keep_missing_values():
    values = pd.Series(["a"] * 6 + ["b"] * 3 + ["c"] + [None] * 2)
    moved = traffic.category_moves(values, 1.0, np.random.default_rng(0))
    assert pd.Series(moved).value_counts().to_dict() == {"c": 6, "b": 3, "a": 1}
    assert pd.isna(moved[-2:]).all()
    assert traffic.category_moves(values, 0.0, np.random.default_rng(0)).tolist() == values.tolist()


def test_category_moves_move_about_the_given_share():
    values = pd.Series(["a"] * 900 + ["b"] * 100)
    moved = pd.Series(traffic.category_moves(values, 0.5, np.random.default_rng(1)))
    assert 0.45 < (moved != values).mean() < 0.55
    assert moved.value_counts(normalize=True)["b"] > 0.4, "the rare category became common"


def test_shift_frame_moves_numbers_by_their_std_and_only_the_chosen_columns():
    frame = logged(customers())
    shifted = traffic.shift_frame(frame, 2.0, ["age", "plan"], seed=0)
    np.testing.assert_allclose(shifted["age"] - frame["age"], 2.0 * np.nanstd(frame["age"]))
    assert shifted["calls"].equals(frame["calls"])
    assert (shifted["plan"] != frame["plan"]).mean() > 0.4
    json.dumps(traffic._frame_rows(shifted.head(3)))  # rows go out as JSON


def test_the_monitor_view_lists_category_columns_with_their_top_category_shares():
    from aidevops_ext.cli_loop import render_summary

    plan = {
        "name": "plan",
        "kind": "category",
        "psi": 0.61,
        "chi2_pvalue": 0.0,
        "unseen_rate": 0.0,
        "drifted": True,
        "top_categories": [{"category": "basic", "reference": 0.5, "live": 0.2}],
    }
    summary = drift_summary("churn", "ci-churn", [numeric_drift("age", 0.02, 0.05, 0.5, 0.01), plan])
    text = render_summary(summary, [])
    (numeric,) = [line for line in text.splitlines() if line.strip().startswith("age")]
    (category,) = [line for line in text.splitlines() if line.strip().startswith("plan")]
    assert "0.020" in numeric
    assert "0.610" in category and "basic 0.50 → 0.20" in category and category.rstrip().endswith("yes")
