"""aidevops_ext.trainer.data: datasets, files, splits and their hostile inputs."""

from __future__ import annotations

import numpy as np
import pytest

from aidevops_ext.errors import ConfigError, DataError
from aidevops_ext.trainer import data as d
from tests.support.imports import modules_loaded_by


def _one_sentence(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg.endswith(".") and "\n" not in msg, msg
    return msg


# --------------------------------------------------------------------------- built-ins


@pytest.mark.parametrize(
    "name,shape,task,n_classes",
    [
        ("digits", (1797, 64), "classification", 10),
        ("breast_cancer", (569, 30), "classification", 2),
        ("wine", (178, 13), "classification", 3),
        ("diabetes", (442, 10), "regression", None),
    ],
)
def test_builtin_datasets(name: str, shape: tuple[int, int], task: str, n_classes: int | None) -> None:
    ds = d.load_dataset(name)
    assert ds.X.shape == shape and ds.X.dtype == np.float32 and ds.X.flags.c_contiguous
    assert len(ds.y) == shape[0] and len(ds.feature_names) == shape[1]
    assert ds.task == task and ds.name == name and ds.target == "target"
    if n_classes:
        assert ds.y.dtype.kind == "i" and len(np.unique(ds.y)) == n_classes == len(ds.target_names)
    else:
        assert ds.y.dtype == np.float32 and ds.target_names is None


def test_builtin_registry_and_bad_options() -> None:
    assert set(d.BUILTIN_DATASETS) == {"digits", "breast_cancer", "wine", "diabetes", "synthetic"}
    with pytest.raises(ConfigError) as e:
        d.load_dataset("wine", n_samples=5)
    _one_sentence(e)
    with pytest.raises(ConfigError):
        d.load_dataset("wine", target="colour")


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(DataError) as e:
        d.load_dataset("mnist")
    msg = _one_sentence(e)
    for name in d.BUILTIN_DATASETS:
        assert name in msg


def test_module_import_is_light() -> None:
    assert modules_loaded_by("import aidevops_ext.trainer.data", ("sklearn", "pandas", "pyarrow", "mlflow")) == []


# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_seeded_and_shaped() -> None:
    a = d.make_synthetic(500, 12, n_classes=4, seed=3)
    b = d.load_dataset("synthetic", n_samples=500, n_features=12, n_classes=4, seed=3)
    c = d.make_synthetic(500, 12, n_classes=4, seed=4)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)
    assert a.X.shape == (500, 12) and a.X.dtype == np.float32 and a.task == "classification"
    assert set(np.unique(a.y)) == {0, 1, 2, 3} and a.target_names == ["0", "1", "2", "3"]
    assert np.isfinite(a.X).all()


def test_synthetic_regression_and_string_spec() -> None:
    r = d.load_dataset("synthetic:n_samples=300,n_features=5,n_classes=0,noise=0.5")
    assert r.task == "regression" and r.y.dtype == np.float32 and r.X.shape == (300, 5)
    assert r.y.std() > 0.1
    same = d.make_synthetic(300, 5, n_classes=0, noise=0.5)
    np.testing.assert_array_equal(r.X, same.X)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_samples": 0}, {"n_classes": 1}, {"n_classes": -2}, {"noise": -1.0}, {"clusters_per_class": 0}],
)
def test_synthetic_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ConfigError) as e:
        d.make_synthetic(**{"n_samples": 10, "n_features": 3, **kwargs})
    _one_sentence(e)


def test_synthetic_bad_options() -> None:
    with pytest.raises(ConfigError) as e:
        d.load_dataset("synthetic", n_rows=10)
    assert "n_samples" in _one_sentence(e)
    with pytest.raises(ConfigError):
        d.load_dataset("synthetic:n_samples=ten")
    with pytest.raises(ConfigError):
        d.load_dataset("synthetic:n_samples")


def test_synthetic_at_benchmark_size() -> None:
    ds = d.make_synthetic(120_000, 64, n_classes=10)
    assert ds.X.shape == (120_000, 64) and ds.X.dtype == np.float32
    assert set(np.unique(ds.y)) == set(range(10))


def test_synthetic_is_learnable_but_not_trivially() -> None:
    from sklearn.neighbors import KNeighborsClassifier

    ds = d.make_synthetic(6000, 32, n_classes=5, seed=1)
    s = d.train_val_test_split(ds.X, ds.y, seed=1)
    acc = KNeighborsClassifier(15).fit(s.X_train, s.y_train).score(s.X_test, s.y_test)
    assert 0.85 < acc < 0.995, acc  # the clusters overlap a little: high, not perfect


# --------------------------------------------------------------------------- files


@pytest.fixture
def table_csv(tmp_path):
    p = tmp_path / "iris_like.csv"
    p.write_text("a,b,flag,label\n1.0,2,true,cat\n3.5,,false,dog\n0.1,4,true,cat\n2,2,false,bird\n")
    return p


def test_csv_with_string_target(table_csv) -> None:
    ds = d.load_dataset(table_csv, target="label")
    assert ds.feature_names == ["a", "b", "flag"] and ds.target == "label" and ds.name == "iris_like"
    assert ds.X.dtype == np.float32 and ds.X.shape == (4, 3) and np.isnan(ds.X[1, 1])
    assert ds.task == "classification" and ds.y.dtype.kind == "U" and ds.target_names == ["bird", "cat", "dog"]
    sub = d.load_dataset(str(table_csv), target="a", features=["b"], task="regression")
    assert sub.task == "regression" and sub.X.shape == (4, 1) and sub.y.dtype == np.float32


def test_parquet_roundtrip(tmp_path) -> None:
    import pandas as pd

    p = tmp_path / "t.parquet"
    pd.DataFrame({"x1": np.arange(100.0), "x2": np.ones(100), "y": np.linspace(0, 1, 100)}).to_parquet(p)
    ds = d.load_dataset(p, target="y")
    assert ds.task == "regression" and ds.X.shape == (100, 2)
    np.testing.assert_allclose(ds.y, np.linspace(0, 1, 100), rtol=1e-6)


def test_missing_target_column_lists_columns(table_csv) -> None:
    with pytest.raises(DataError) as e:
        d.load_dataset(table_csv, target="species")
    msg = _one_sentence(e)
    assert "species" in msg and "'a'" in msg and "'label'" in msg


def test_no_target_given(table_csv) -> None:
    with pytest.raises(ConfigError) as e:
        d.load_dataset(table_csv)
    _one_sentence(e)


def test_non_numeric_feature(tmp_path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("colour,size,y\nred,1,0\nblue,2,1\n")
    with pytest.raises(DataError) as e:
        d.load_dataset(p, target="y")
    assert "colour" in _one_sentence(e)


@pytest.mark.parametrize("content", ["", "a,b,y\n"])
def test_empty_files(tmp_path, content: str) -> None:
    p = tmp_path / "empty.csv"
    p.write_text(content)
    with pytest.raises(DataError) as e:
        d.load_dataset(p, target="y")
    _one_sentence(e)


def test_missing_and_odd_paths(tmp_path) -> None:
    with pytest.raises(DataError) as e:
        d.load_dataset(tmp_path / "nope.csv", target="y")
    assert "does not exist" in _one_sentence(e)
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError):
        d.load_dataset(tmp_path / "dir.csv", target="y")
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(DataError) as e:
        d.load_dataset(txt, target="y")
    assert ".csv" in _one_sentence(e)
    bad = tmp_path / "garbage.parquet"
    bad.write_bytes(b"\x00\x01not parquet at all")
    with pytest.raises(DataError) as e:
        d.load_dataset(bad, target="y")
    _one_sentence(e)


def test_file_options_and_missing_target_values(tmp_path, table_csv) -> None:
    with pytest.raises(ConfigError):
        d.load_dataset(table_csv, target="label", sep=";")
    with pytest.raises(ConfigError):
        d.load_dataset(table_csv, target="label", task="ranking")
    with pytest.raises(DataError):
        d.load_dataset(table_csv, target="label", features=["zzz"])
    p = tmp_path / "holes.csv"
    p.write_text("x,y\n1,0\n2,\n")
    with pytest.raises(DataError) as e:
        d.load_dataset(p, target="y")
    assert "missing" in _one_sentence(e)


# --------------------------------------------------------------------------- splits


@pytest.mark.parametrize(
    "val,test",
    [(-0.1, 0.2), (0.1, 1.0), (1.2, 0.0), (0.5, 0.5), (0.7, 0.4), ("a", 0.1), (float("nan"), 0.1)],
)
def test_bad_fractions(val, test) -> None:
    with pytest.raises(ConfigError) as e:
        d.train_val_test_split(np.zeros((10, 2)), np.zeros(10), val_fraction=val, test_fraction=test)
    _one_sentence(e)


def test_split_partitions_rows_deterministically() -> None:
    n = 1003
    X = np.arange(n, dtype=np.float32).reshape(-1, 1)
    y = np.random.default_rng(0).integers(0, 3, n)
    s1 = d.train_val_test_split(X, y, val_fraction=0.1, test_fraction=0.2, seed=7)
    s2 = d.train_val_test_split(X, y, val_fraction=0.1, test_fraction=0.2, seed=7)
    s3 = d.train_val_test_split(X, y, val_fraction=0.1, test_fraction=0.2, seed=8)
    for a, b in zip(vars(s1).values(), vars(s2).values()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(s1.X_test, s3.X_test)
    ids = np.concatenate([s1.X_train[:, 0], s1.X_val[:, 0], s1.X_test[:, 0]])
    np.testing.assert_array_equal(np.sort(ids), X[:, 0])  # every row exactly once
    assert (len(s1.X_test), len(s1.X_val)) == (round(n * 0.2), round(n * 0.1))
    np.testing.assert_array_equal(y[s1.X_test[:, 0].astype(int)], s1.y_test)  # rows and labels stay paired


def test_stratified_split_keeps_class_proportions() -> None:
    rng = np.random.default_rng(1)
    y = np.array(["a"] * 700 + ["b"] * 250 + ["c"] * 50)[rng.permutation(1000)]
    X = rng.normal(size=(1000, 3))
    s = d.train_val_test_split(X, y, val_fraction=0.1, test_fraction=0.2)
    for part, size in ((s.y_test, 200), (s.y_val, 100)):
        labels, counts = np.unique(part, return_counts=True)
        assert labels.tolist() == ["a", "b", "c"]
        np.testing.assert_allclose(counts, np.array([0.7, 0.25, 0.05]) * size, atol=1)


def test_regression_split_and_tiny_data() -> None:
    X = np.zeros((10, 1))
    s = d.train_val_test_split(X, np.linspace(0, 1, 10), val_fraction=0.0, test_fraction=0.3)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (7, 0, 3) and s.X_val.shape == (0, 1)
    with pytest.raises(DataError):
        d.train_val_test_split(X[:2], np.zeros(2), val_fraction=0.4, test_fraction=0.5)
    with pytest.raises(DataError):
        d.train_val_test_split(X, np.zeros(9))
    multi = d.train_val_test_split(X, np.arange(20).reshape(10, 2), test_fraction=0.2)  # 2-D y: not stratified
    assert multi.y_test.shape == (2, 2)
    with pytest.raises(ConfigError):
        d.train_val_test_split(X, np.arange(20).reshape(10, 2), stratify=True)


def test_save_and_load_split(tmp_path) -> None:
    ds = d.make_synthetic(200, 4, n_classes=3)
    y = np.array(["x", "yy", "zzz"], dtype=object)[ds.y]  # object strings are stored as unicode
    s = d.train_val_test_split(ds.X, y)
    d.save_split(s, tmp_path / "split")
    back = d.load_split(tmp_path / "split")
    for name, a in vars(s).items():
        b = getattr(back, name)
        assert b.dtype.kind != "O"
        np.testing.assert_array_equal(a, b)


def test_load_split_hostile(tmp_path) -> None:
    with pytest.raises(DataError):
        d.load_split(tmp_path / "absent")
    s = d.train_val_test_split(np.zeros((20, 2)), np.arange(20) % 2)
    folder = d.save_split(s, tmp_path / "s")
    (folder / "y_val.npy").unlink()
    with pytest.raises(DataError) as e:
        d.load_split(folder)
    assert "y_val.npy" in _one_sentence(e)
    np.save(folder / "y_val.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError) as e:
        d.load_split(folder)  # refused: loading it would need pickle
    _one_sentence(e)
    bad = d.Split(*(np.array([object()], dtype=object),) * 6)
    with pytest.raises(DataError):
        d.save_split(bad, tmp_path / "bad")
