"""Pipeline specs, parameter parsing and cache keys: pure logic, no kernels."""

from __future__ import annotations

from pathlib import Path

import pytest

from aidevops_ext.errors import ConfigError
from aidevops_ext.pipeline.cache import step_key
from aidevops_ext.pipeline.notebook import read_notebook
from aidevops_ext.pipeline.params import apply_overrides, check_type, parse_assignments
from aidevops_ext.pipeline.spec import load_spec, resolve_spec_path, topological_order
from tests.conftest import REPO, write_notebook
from tests.support.refusals import refusal


def _spec(tmp_path: Path, text: str):
    (tmp_path / "pipelines").mkdir(exist_ok=True)
    write_notebook(tmp_path / "nb" / "a.ipynb", "x = 1\nrate = 0.1")
    write_notebook(tmp_path / "nb" / "b.ipynb", "y = 2")
    path = tmp_path / "pipelines" / "p.yaml"
    path.write_text(text)
    return load_spec(path, tmp_path)


def test_repo_specs_load_in_order():
    for name in ("default", "ci", "regression"):
        spec = load_spec(resolve_spec_path(name, REPO), REPO)
        serve = {"ci": (), "regression": ("deploy",), "default": ("deploy", "monitor")}[name]  # ci.yaml serves nothing
        assert spec.order == ("prepare", "train", "evaluate", "register", *serve)
        assert spec.gate, f"{name} has no gate section"
        assert spec.monitor["rules"], f"{name} has no monitor rules"


@pytest.mark.parametrize(
    "monitor,message",
    [
        (
            "{rules: [{name: d, metric: psy, op: '>', threshold: 0.25, any_feature: true}]}",
            "metric 'psy' is not known; did you mean 'psi'?",
        ),
        (
            "{rules: [{name: d, metric: psi, op: '>', threshold: 0.25}]}",
            "set exactly one of `any_feature: true` or `feature: NAME`",
        ),
        ("{window: 100, min_rows: 200}", "window (100 rows) is below min_rows (200)"),
        (
            "{rules: [{name: e, metric: error_rate, op: '>', threshold: 0.01, action: page}]}",
            "action 'page' is not valid",
        ),
        ("[1, 2]", "monitor: must be a mapping"),
    ],
)
def test_a_bad_monitor_section_fails_when_the_spec_loads(tmp_path, monitor, message):
    text = refusal(
        ConfigError, _spec, tmp_path, f"name: p\nmonitor: {monitor}\nsteps:\n  a: {{notebook: nb/a.ipynb}}\n"
    )
    assert text.startswith("p.yaml: ") and message in text


def test_topological_order_respects_needs_and_file_order():
    order = topological_order({"d": ("b", "c"), "b": ("a",), "c": ("a",), "a": ()})
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")
    assert order == ("a", "b", "c", "d")


def test_cycle_is_named():
    with pytest.raises(ConfigError, match=r"cycle \(a -> b -> a\)|cycle \(b -> a -> b\)"):
        topological_order({"a": ("b",), "b": ("a",)})


def test_unknown_need(tmp_path):
    with pytest.raises(ConfigError, match="needs 'nope'"):
        _spec(tmp_path, "steps:\n  a: {notebook: nb/a.ipynb, needs: [nope]}\n")


def test_missing_notebook(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        _spec(tmp_path, "steps:\n  a: {notebook: nb/missing.ipynb}\n")


def test_unknown_keys_listed(tmp_path):
    with pytest.raises(ConfigError, match="unknown key.*stepz"):
        _spec(tmp_path, "stepz: {}\nsteps:\n  a: {notebook: nb/a.ipynb}\n")
    with pytest.raises(ConfigError, match="unknown key.*output"):
        _spec(tmp_path, "steps:\n  a: {notebook: nb/a.ipynb, output: [x]}\n")


def test_invalid_yaml_and_escaping_output(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        _spec(tmp_path, "steps: [\n")
    with pytest.raises(ConfigError, match="relative path inside"):
        _spec(tmp_path, "steps:\n  a: {notebook: nb/a.ipynb, outputs: [../../etc/passwd]}\n")


def test_spec_not_found_lists_available(tmp_path):
    _spec(tmp_path, "steps:\n  a: {notebook: nb/a.ipynb}\n")
    with pytest.raises(ConfigError, match="available: p"):
        resolve_spec_path("nope", tmp_path)


def test_parse_assignments_typed():
    got = parse_assignments(["epochs=3", "rate=0.5", "flag=true", "hidden=[64, 32]", "name=abc", "empty="])
    assert got == {"epochs": 3, "rate": 0.5, "flag": True, "hidden": [64, 32], "name": "abc", "empty": ""}
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["epochs"])


def test_overrides_unknown_param_lists_valid(tmp_path):
    spec = _spec(tmp_path, "params: {x: 1, rate: 0.1}\nsteps:\n  a: {notebook: nb/a.ipynb, params: {k: 2}}\n")
    with pytest.raises(ConfigError, match=r"unknown parameter 'epochz'.*valid parameters: rate, x, a.k"):
        apply_overrides(spec, {"epochz": 3})
    pipeline, per_step = apply_overrides(spec, {"x": 5, "a.k": 7})
    assert pipeline["x"] == 5 and per_step["a"]["k"] == 7
    with pytest.raises(ConfigError, match="set by the runner"):
        apply_overrides(spec, {"step_dir": "/tmp"})


@pytest.mark.parametrize(
    "value,default,ok",
    [
        (3, 1, 3),
        (3.0, 1, 3),
        (2, 0.5, 2.0),
        (True, False, True),
        ("abc", "x", "abc"),
        ([1], [2], [1]),
        (64, [2], [64]),
    ],
)
def test_check_type_accepts(value, default, ok):
    assert check_type("p", value, default) == ok


@pytest.mark.parametrize(
    "value,default", [("abc", 1), (2.5, 1), ("yes", True), (True, 1), ("x", 0.1), ({"a": 1}, [1]), ([1], {"a": 1})]
)
def test_check_type_refuses(value, default):
    with pytest.raises(ConfigError, match="parameter 'p' expects"):
        check_type("p", value, default)


def test_notebook_parameters_and_code(tmp_path):
    path = write_notebook(tmp_path / "n.ipynb", "a = 1\nb: int = 2\nc = dict(x=1)", "print(a)")
    info = read_notebook(path)
    assert info.parameters == {"a": 1, "b": 2, "c": None}
    assert info.code_cells[-1] == "print(a)"


def test_notebook_without_parameters_cell(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text('{"cells": [{"cell_type": "code", "metadata": {}, "source": "x=1"}], "metadata": {}}')
    with pytest.raises(ConfigError, match="no cell tagged 'parameters'"):
        read_notebook(path)
    path.write_text("not json")
    with pytest.raises(ConfigError, match="not a readable Jupyter notebook"):
        read_notebook(path)


def test_cache_key_sensitivity():
    base = dict(code_cells=("a=1",), params={"x": 1}, kernel="python3", upstream={"p": {"f": "h1"}}, inputs={})
    key = step_key(**base)
    assert step_key(**base) == key
    assert step_key(**{**base, "code_cells": ("a=2",)}) != key
    assert step_key(**{**base, "params": {"x": 2}}) != key
    assert step_key(**{**base, "kernel": "other"}) != key
    assert step_key(**{**base, "upstream": {"p": {"f": "h2"}}}) != key
    assert step_key(**{**base, "inputs": {"d.csv": "h"}}) != key
    assert step_key(**base, version="9.9") != key


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "name: ../../../x\nsteps:\n  a: {notebook: nb/a.ipynb}\n",
            "pipeline name '../../../x' in p.yaml is not allowed",
        ),
        ("name: .hidden\nsteps:\n  a: {notebook: nb/a.ipynb}\n", "pipeline name '.hidden'"),
        ("name: p\nsteps:\n  ../up: {notebook: nb/a.ipynb}\n", "step name '../up' in p.yaml is not allowed"),
        ("name: p\nsteps:\n  a/b: {notebook: nb/a.ipynb}\n", "step name 'a/b'"),
    ],
)
def test_pipeline_and_step_names_that_would_leave_their_folder_are_refused(tmp_path, text, needle):
    assert needle in refusal(ConfigError, _spec, tmp_path, text)
    assert not (tmp_path / ".aidevops").exists(), "nothing written"
