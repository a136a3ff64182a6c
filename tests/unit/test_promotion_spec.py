"""The spec's `retrain:` and `promote:` sections, and the live-share cap where live rows join training data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from aidevops_ext.datasection import parse_data
from aidevops_ext.errors import ConfigError
from aidevops_ext.pipeline.spec import PROMOTE_AUTO, PROMOTE_MANUAL, RetrainSettings, load_spec
from aidevops_ext.steps.live import append_live_rows, live_share, write_live_table
from aidevops_ext.trainer import data
from tests.conftest import REPO, write_notebook
from tests.support.refusals import refusal

TEMPLATES = REPO / "aidevops_ext" / "templates"


def _spec(tmp_path: Path, extra: str):
    write_notebook(tmp_path / "nb" / "a.ipynb", "x = 1")
    path = tmp_path / "pipelines" / "p.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"name: p\n{extra}\nsteps:\n  a: {{notebook: nb/a.ipynb}}\n")
    return load_spec(path, tmp_path)


def test_a_spec_that_says_nothing_holds_retrained_versions_and_uses_no_live_labels(tmp_path):
    spec = _spec(tmp_path, "")
    assert spec.promote == PROMOTE_MANUAL
    assert spec.retrain == RetrainSettings(live_labels=False, max_live_share=0.3, min_live_rows=100)


def test_the_opt_in_and_auto_promotion_are_read_as_written(tmp_path):
    spec = _spec(tmp_path, "promote: auto\nretrain: {live_labels: true, max_live_share: 0.25, min_live_rows: 7}")
    assert spec.promote == PROMOTE_AUTO
    assert spec.retrain == RetrainSettings(live_labels=True, max_live_share=0.25, min_live_rows=7)
    assert _spec(tmp_path, "retrain: {max_live_share: 1}").retrain.max_live_share == 1.0


@pytest.mark.parametrize(
    "extra,message",
    [
        ("promote: yes", "'promote' in p.yaml must be auto"),
        ("promote: Manual", "must be auto (switch a retrained version that passes the gate in) or manual"),
        ("retrain: true", "'retrain' in p.yaml must be a mapping"),
        ("retrain: {live_labels: 'yes'}", "retrain.live_labels in p.yaml must be true or false"),
        ("retrain: {max_live_share: 0}", "retrain.max_live_share in p.yaml must be a number above 0 and at most 1"),
        ("retrain: {max_live_share: 1.5}", "must be a number above 0 and at most 1"),
        ("retrain: {max_live_share: true}", "must be a number above 0 and at most 1"),
        ("retrain: {min_live_rows: 0}", "retrain.min_live_rows in p.yaml must be a whole number of at least 1"),
        ("retrain: {min_live_rows: 2.5}", "must be a whole number of at least 1"),
        ("retrain: {live_label: true}", "unknown key(s) live_label in 'retrain' in p.yaml"),
    ],
)
def test_a_bad_retrain_or_promote_section_is_one_sentence_at_load(tmp_path, extra, message):
    text = refusal(ConfigError, _spec, tmp_path, extra)
    assert message in text and text.count(". ") == 0 and text.endswith("."), text


def test_every_shipped_pipeline_holds_retrained_versions_and_keeps_live_labels_off():
    """New projects (`aidevops new`: the repository's pipelines are the digits template) ask a person first."""
    specs = [*(REPO / "pipelines").glob("*.yaml"), *TEMPLATES.glob("*/pipelines/*.yaml")]
    assert len(specs) >= 7
    for path in specs:
        raw = yaml.safe_load(path.read_text())
        assert raw.get("promote") == "manual", path
        assert raw.get("retrain", {}).get("live_labels") is False, path
        spec = load_spec(path, REPO if path.is_relative_to(REPO / "pipelines") else path.parent.parent)
        assert spec.promote == "manual" and not spec.retrain.live_labels


@pytest.mark.parametrize("own,share,cap", [(1000, 0.3, 428), (10, 0.5, 10), (7, 1.0, 2**62), (100, 0.01, 1)])
def test_the_share_cap_keeps_live_rows_at_most_that_share_of_the_training_rows(own, share, cap):
    assert data.share_cap(own, share) == cap
    if share < 1:
        assert cap / (own + cap) <= share < (cap + 1) / (own + cap + 1)


def _split(n: int) -> data.Split:
    X = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n) % 2
    return data.Split(X, y, X[:2], y[:2], X[:2], y[:2])


def test_added_npz_rows_are_capped_to_their_share_keeping_the_newest(tmp_path):
    split = _split(70)
    X = np.full((100, 2), 5.0, np.float32)
    X[:, 0] = np.arange(100)  # row i is the i-th oldest
    y = np.arange(100) % 2
    capped, added = data.add_training_rows(split, data.save_rows(X, y, tmp_path / "a", max_share=0.3))
    assert added == 30 and len(capped.y_train) == 100, "30 live rows are 0.3 of 100 training rows"
    assert capped.X_train[70:, 0].tolist() == list(range(70, 100)), "the newest rows are the ones kept"
    _, uncapped = data.add_training_rows(split, data.save_rows(X, y, tmp_path / "b"))
    assert uncapped == 100, "a file without a cap adds every row"


def test_added_parquet_rows_are_capped_to_their_share_keeping_the_newest(tmp_path):
    section = parse_data({"target": "t", "test_fraction": 0.2, "table": "t.parquet"})
    table = pd.DataFrame({"a": np.arange(200.0), "t": np.arange(200) % 2})
    train = table.iloc[:140].reset_index(drop=True)
    live = pd.DataFrame({"a": 1000.0 + np.arange(100), "t": np.arange(100) % 2})
    path = write_live_table(live, tmp_path, max_share=0.3)
    assert live_share(path) == pytest.approx(0.3)
    keys = np.arange(200, dtype=np.uint64)
    merged, merged_keys, added = append_live_rows(train, keys[:140], table, keys, path, section)
    assert added == 60 and len(merged) == 200 and len(merged_keys) == 200, "60 live rows are 0.3 of 200"
    assert merged["a"].iloc[140:].tolist() == (1040.0 + np.arange(60)).tolist(), "the newest 60 are kept"
    assert live_share(write_live_table(live, tmp_path)) is None
