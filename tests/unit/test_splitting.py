"""Row keys and the fixed test rule: stable across processes, seeds and input types; lineage files without pickle."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from aidevops_ext import splitting
from aidevops_ext.errors import AidevopsError, ConfigError, DataError
from aidevops_ext.trainer import data
from tests.conftest import REPO


def _one_sentence(excinfo: pytest.ExceptionInfo) -> str:
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, AidevopsError) and "\n" not in msg and msg.endswith("."), msg
    return msg


def _mixed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a-1", "a-2", "a-3", "a-4"],
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "x": [1.5, np.nan, 3.0, -0.0],
            "s": ["x", None, "zé", "x"],
            "t": pd.to_datetime(["2020-01-01", None, "2021-01-01", "2020-01-01"]),
            "c": pd.Categorical(["u", "v", None, "u"]),
        }
    )


def test_keys_are_the_same_in_another_process_with_another_hash_seed() -> None:
    code = (
        "import numpy as np, pandas as pd; from aidevops_ext import splitting;"
        "from tests.unit.test_splitting import _mixed;"
        "print(splitting.row_keys(_mixed()).tolist(), splitting.row_keys(_mixed(), 'id').tolist())"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]
    here = f"{splitting.row_keys(_mixed()).tolist()} {splitting.row_keys(_mixed(), 'id').tolist()}\n"
    assert runs[0] == runs[1] == here


def test_keys_are_pinned_so_a_code_change_cannot_silently_move_rows_between_splits() -> None:
    # Changing these values re-draws every workspace's test split: bump them only on purpose.
    keys = splitting.row_keys(np.array([[0.0, 1.0], [2.5, -3.0]]))
    ids = splitting.row_keys(pd.DataFrame({"id": ["row-1", 7]}), "id")
    assert keys.dtype == np.uint64 and ids.dtype == np.uint64
    assert keys.tolist() == PINNED_CONTENT and ids.tolist() == PINNED_IDS


PINNED_CONTENT = [10219202718372082066, 1605386250143744192]
PINNED_IDS = [15928688268765656629, 14666447397667493461]


def test_equal_values_get_equal_keys_whatever_the_container_or_dtype() -> None:
    X = np.arange(12, dtype=np.float64).reshape(4, 3) - 2
    k = splitting.row_keys(X)
    assert len(set(k.tolist())) == 4
    np.testing.assert_array_equal(splitting.row_keys(X.astype(np.float32)), k)
    np.testing.assert_array_equal(splitting.row_keys(X.astype(np.int16)), k)
    np.testing.assert_array_equal(splitting.row_keys(pd.DataFrame(X, columns=list("abc"))), k)
    np.testing.assert_array_equal(splitting.row_keys(pd.DataFrame(X.astype(int))), k)
    np.testing.assert_array_equal(splitting.row_keys(X.astype(object)), k)
    assert splitting.row_keys(np.array([[0.0]]))[0] == splitting.row_keys(np.array([[-0.0]]))[0]
    # column order is part of the row
    assert splitting.row_keys(X[:, ::-1])[0] != k[0]


def test_mixed_frame_rows_get_distinct_keys_and_all_missing_values_hash_alike() -> None:
    df = _mixed()
    keys = splitting.row_keys(df)
    assert keys.dtype == np.uint64 and len(set(keys.tolist())) == 4
    assert splitting.row_keys(df.iloc[[3, 0]]).tolist() == [keys[3], keys[0]], (
        "a row's key does not depend on its neighbours"
    )
    nones = pd.DataFrame({"a": [None, np.nan, pd.NA, pd.NaT]}, dtype=object)
    assert len(set(splitting.row_keys(nones).tolist())) == 1
    assert splitting.row_keys(pd.DataFrame({"a": ["1"]}))[0] != splitting.row_keys(pd.DataFrame({"a": [1]}))[0]
    big = pd.DataFrame({"a": [2**60, 2**60 + 1]})
    assert len(set(splitting.row_keys(big).tolist())) == 2, "integers beyond float64's precision stay apart"
    nullable = pd.DataFrame({"a": pd.array([2**60, 2**60 + 1, None], dtype="Int64")})
    assert splitting.row_keys(nullable)[:2].tolist() == splitting.row_keys(big).tolist(), "Int64 and int64 agree"


def test_id_keys_follow_the_id_alone() -> None:
    df = _mixed()
    by_id = splitting.row_keys(df, "id")
    changed = df.assign(x=[9.0, 9.0, 9.0, 9.0])
    np.testing.assert_array_equal(splitting.row_keys(changed, "id"), by_id)
    assert not np.array_equal(splitting.row_keys(changed), splitting.row_keys(df))
    with pytest.raises(DataError) as e:
        splitting.row_keys(df, "row_id")
    assert "'row_id'" in _one_sentence(e)
    with pytest.raises(ConfigError) as e:
        splitting.row_keys(np.zeros((2, 2)), "id")
    assert "DataFrame" in _one_sentence(e)


def test_test_rule_is_a_fixed_fraction_of_keys_and_nested_in_larger_fractions() -> None:
    keys = splitting.row_keys(np.arange(20_000, dtype=np.float64))
    m20, m30 = splitting.test_mask(keys, 0.2), splitting.test_mask(keys, 0.3)
    assert 0.19 < m20.mean() < 0.21 and 0.29 < m30.mean() < 0.31
    assert not (m20 & ~m30).any(), "a test row stays a test row when the fraction grows"
    np.testing.assert_array_equal(m20, (keys % 10_000) < 2000)
    assert not splitting.test_mask(keys, 0.0).any()
    for bad in (1.0, -0.1, "a lot"):
        with pytest.raises(ConfigError):
            splitting.test_mask(keys, bad)
    with pytest.raises(DataError) as e:
        splitting.test_mask(np.arange(3), 0.2)
    assert "uint64" in _one_sentence(e)


def test_unseen_mask_marks_test_rows_outside_the_champions_training_keys() -> None:
    keys = splitting.row_keys(np.arange(10, dtype=np.float64))
    mask = splitting.unseen_mask(keys[:6], keys[4:])
    assert mask.tolist() == [True, True, True, True, False, False]


def test_keys_files_round_trip_and_refuse_pickle_or_other_dtypes(tmp_path) -> None:
    keys = splitting.row_keys(np.arange(50, dtype=np.float64))
    path = splitting.save_keys(tmp_path / "sub" / "train_keys.npy", keys)
    np.testing.assert_array_equal(splitting.load_keys(path), keys)
    np.save(tmp_path / "evil.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError) as e:
        splitting.load_keys(tmp_path / "evil.npy")
    assert "pickle" in _one_sentence(e)
    np.save(tmp_path / "floats.npy", np.zeros(3))
    with pytest.raises(DataError):
        splitting.load_keys(tmp_path / "floats.npy")
    with pytest.raises(DataError) as e:
        splitting.load_keys(tmp_path / "absent.npy")
    _one_sentence(e)


def test_keyed_split_keeps_the_test_rows_for_every_seed_and_shuffles_the_rest() -> None:
    n = 1000
    X = np.arange(n, dtype=np.float32).reshape(-1, 1)
    y = np.random.default_rng(0).integers(0, 3, n)
    keys = splitting.row_keys(X)
    s1 = data.train_val_test_split(X, y, seed=1, keys=keys)
    s2 = data.train_val_test_split(X, y, seed=2, keys=keys)
    np.testing.assert_array_equal(s1.X_test, s2.X_test)
    np.testing.assert_array_equal(s1.keys_test, s2.keys_test)
    assert not np.array_equal(s1.X_val, s2.X_val)
    mask = splitting.test_mask(keys, 0.2)
    np.testing.assert_array_equal(np.sort(s1.X_test[:, 0]), X[mask, 0])
    assert (np.diff(s1.keys_test.astype(np.uint64)) > 0).all(), "test rows in key order: any prefix is a fair sample"
    ids = np.concatenate([s1.X_train[:, 0], s1.X_val[:, 0], s1.X_test[:, 0]])
    np.testing.assert_array_equal(np.sort(ids), X[:, 0])
    np.testing.assert_array_equal(splitting.row_keys(s1.X_train), s1.keys_train)
    assert len(s1.X_val) == 100
    assert not np.isin(s1.keys_test, s1.seen_keys()).any()
    with pytest.raises(DataError) as e:
        data.train_val_test_split(X, y, keys=keys[:10])
    _one_sentence(e)


def test_live_rows_added_to_training_join_its_keys(tmp_path) -> None:
    X = np.arange(400, dtype=np.float32).reshape(-1, 2)
    y = np.arange(200) % 2
    split = data.train_val_test_split(X, y, seed=0, keys=splitting.row_keys(X))
    live = split.X_test[:5]  # traffic that repeats test rows
    out, n = data.add_training_rows(split, data.save_rows(live, split.y_test[:5], tmp_path))
    assert n == 5 and len(out.keys_train) == len(out.X_train)
    assert np.isin(split.keys_test[:5], out.seen_keys()).all()
    back = data.load_split(data.save_split(out, tmp_path / "split"))
    np.testing.assert_array_equal(back.keys_train, out.keys_train)
