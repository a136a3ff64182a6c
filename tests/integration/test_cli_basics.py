"""`aidevops --version`, `info` and `train` as a user runs them."""

from __future__ import annotations

import json

import numpy as np

from aidevops_ext import __version__
from aidevops_ext.trainer import data, load_model
from aidevops_ext.trainer.backend import cupy_available
from tests.support.cli import run_cli


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"aidevops, version {__version__}"


def test_info_reports_backend_gpu_and_workspace(tmp_path):
    out = run_cli("info", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    gpu = cupy_available()  # a GPU machine reports it and picks CuPy; a CPU machine neither
    assert info["gpu"] is gpu and info["backend"] == ("cupy" if gpu else "numpy")
    assert info["workspace"] == str(tmp_path)
    assert info["tracking_uri"] == f"sqlite:///{tmp_path / '.aidevops' / 'mlflow.db'}"
    assert info["versions"]["aidevops"] == __version__
    assert not (tmp_path / ".aidevops").exists(), "info must not write anything"
    if not gpu:
        out = run_cli("info", cwd=tmp_path, env={"AIDEVOPS_BACKEND": "cupy"})
        assert out.returncode == 0 and "unavailable" in out.stdout


def test_train_writes_a_model_that_predicts_like_it_scored(tmp_path):
    model = tmp_path / "digits.npz"
    out = run_cli("train", "--dataset", "digits", "--epochs", "15", "--hidden", "64", "--no-progress", "-o", str(model))
    assert out.returncode == 0, out.stderr
    accuracy = float(next(line.split()[-1] for line in out.stdout.splitlines() if "test accuracy" in line))
    assert accuracy >= 0.93
    est = load_model(model)
    ds = data.load_dataset("digits")
    split = data.train_val_test_split(ds.X, ds.y, seed=0)
    assert abs(float(np.mean(est.predict(split.X_test) == split.y_test)) - accuracy) < 1e-4
    assert est.profile_["n_rows"] == len(split.y_train) and est.metadata_["dataset"] == "digits"


def test_train_regression_from_a_csv(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X @ np.array([2.0, -1.0, 0.5]) + 0.1 * rng.normal(size=400)
    rows = ["a,b,c,price"] + [f"{a},{b},{c},{t}" for (a, b, c), t in zip(X, y)]
    (tmp_path / "houses.csv").write_text("\n".join(rows))
    out = run_cli(
        "train",
        "--dataset",
        str(tmp_path / "houses.csv"),
        "--target",
        "price",
        "--model",
        "linear",
        "-o",
        str(tmp_path / "m.npz"),
    )
    assert out.returncode == 0, out.stderr
    r2 = float(next(line.split()[-1] for line in out.stdout.splitlines() if "test r2" in line))
    assert r2 > 0.99


def test_train_bad_inputs_are_one_sentence(tmp_path):
    cases = [
        (["--dataset", "nope"], "nope"),
        (["--dataset", str(tmp_path / "missing.csv"), "--target", "y"], "missing.csv"),
        (["--model", "linear", "--dataset", "digits"], "no model kind 'linear' for a classification task"),
        (["--hidden", "a,b"], "--hidden"),
        (["--backend", "cupy"], "cupy"),
    ]
    for args, needle in cases:
        out = run_cli("train", *args, "-o", str(tmp_path / "x.npz"))
        assert out.returncode == 2, (args, out.stderr)
        assert needle in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
        assert not (tmp_path / "x.npz").exists()
