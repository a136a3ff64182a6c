"""The spec's `data:` section: checked once, with one sentence per mistake; the task inferred from the target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aidevops_ext.datasection import DataSection, infer_task, parse_data
from aidevops_ext.errors import ConfigError


def test_defaults_fill_what_the_section_leaves_out():
    assert parse_data({"target": "y"}) == DataSection(
        target="y", task=None, id=None, test_fraction=0.2, table="table.parquet", model=None
    )
    assert parse_data(None) is None


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"target": "y", "tagret": 1}, "unknown key(s) tagret"),
        ({}, "needs 'target'"),
        ({"target": "y", "task": "ranking"}, "classification or regression"),
        ({"target": "y", "test_fraction": 1.5}, "between 0 and 1"),
        ({"target": "y", "test_fraction": True}, "between 0 and 1"),
        ({"target": "y", "table": "table.xlsx"}, ".parquet or .csv"),
        ({"target": "y", "table": "../elsewhere.csv"}, ".parquet or .csv"),
        ({"target": "y", "id": "y"}, "both name 'y'"),
        ({"target": "y", "model": ""}, "name a model was logged under"),
        (["target", "y"], "must be a mapping"),
    ],
)
def test_each_mistake_is_one_sentence_naming_the_key(raw, words):
    with pytest.raises(ConfigError) as err:
        parse_data(raw, "default.yaml")
    assert words in str(err.value)
    assert str(err.value).count("\n") == 0


def test_task_is_inferred_from_the_target():
    assert infer_task(pd.Series(["yes", "no"])) == "classification"
    assert infer_task(pd.Series([0, 1, 1, 0])) == "classification"
    assert infer_task(pd.Series([True, False])) == "classification"
    assert infer_task(pd.Series(np.linspace(0, 1, 50))) == "regression"
    assert infer_task(pd.Series(np.arange(100))) == "regression", "many distinct integers are a quantity, not classes"


def test_a_spec_with_a_bad_data_section_fails_when_it_loads(tmp_path):
    from aidevops_ext.pipeline.spec import load_spec

    spec = tmp_path / "pipelines" / "default.yaml"
    spec.parent.mkdir()
    spec.write_text("data: {target: y, test_fraction: 2}\nsteps:\n  split: {notebook: 'aidevops:split'}\n")
    with pytest.raises(ConfigError, match=r"'data.test_fraction' in default.yaml must be a number between 0 and 1"):
        load_spec(spec, tmp_path)
    spec.write_text("data: {target: y}\nsteps:\n  split: {notebook: 'aidevops:split'}\n")
    assert load_spec(spec, tmp_path).data == {"target": "y"}, "steps receive the section as written"
