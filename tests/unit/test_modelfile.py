"""aidevops_ext.trainer.modelfile: round trips, and hostile files that must fail with one clear sentence."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from aidevops_ext.errors import ModelFileError
from aidevops_ext.trainer import modelfile as mf
from tests.support.imports import modules_loaded_by


class FakeEstimator:
    """The smallest estimator speaking the model-file state protocol."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def fit(self, X: np.ndarray, y: np.ndarray) -> FakeEstimator:
        self.coef_ = np.linalg.lstsq(X, y, rcond=None)[0].astype(np.float32)
        self.intercept_ = np.array([0.5], dtype=np.float32)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (X @ self.coef_) * self.scale + self.intercept_[0]

    def _get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        fitted = {"n_features_in_": self.n_features_in_}
        spec = {"estimator": "FakeEstimator", "params": {"scale": self.scale}, "fitted": fitted}
        return spec, {"coef": self.coef_, "intercept": self.intercept_}

    @classmethod
    def _from_state(cls, spec: dict, arrays: dict, backend: str = "numpy") -> FakeEstimator:
        est = cls(**spec["params"])
        est.coef_, est.intercept_ = arrays["coef"], arrays["intercept"]
        est.n_features_in_ = spec["fitted"]["n_features_in_"]
        return est


@pytest.fixture
def registry(monkeypatch):
    """Register FakeEstimator in the real registry, or in a stand-in while the registry does not exist yet."""
    try:
        from aidevops_ext.trainer import registry as reg
    except ImportError:
        reg = types.ModuleType("aidevops_ext.trainer.registry")
        reg.ESTIMATORS = {}

        def estimator_class(name: str) -> type:
            if name not in reg.ESTIMATORS:
                raise ModelFileError(f"unknown estimator {name!r}; known: {sorted(reg.ESTIMATORS)}.")
            return reg.ESTIMATORS[name]

        reg.estimator_class = estimator_class
        monkeypatch.setitem(sys.modules, "aidevops_ext.trainer.registry", reg)
    monkeypatch.setitem(reg.ESTIMATORS, "FakeEstimator", FakeEstimator)
    return reg


@pytest.fixture
def fitted() -> FakeEstimator:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    return FakeEstimator(scale=2.0).fit(X, X @ np.arange(4.0, dtype=np.float32))


@pytest.fixture
def saved(tmp_path, fitted) -> Path:
    return mf.save_model(fitted, tmp_path / "model.npz", metadata={"run": "abc"})


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _rewrite(src: Path, dst: Path, spec_edit=None, members_edit=None) -> Path:
    members = _members(src)
    spec = json.loads(members["spec.json"])
    if spec_edit:
        spec_edit(spec)
    members["spec.json"] = json.dumps(spec).encode()
    if members_edit:
        members_edit(members, spec)
    return _write_zip(dst, members)


def _fails(path: Path, *needles: str) -> str:
    with pytest.raises(ModelFileError) as info:
        mf.load_model(path)
    msg = str(info.value)
    assert msg.endswith(".") and "\n" not in msg and msg.count(". ") == 0, msg
    for needle in needles:
        assert needle in msg, msg
    return msg


# --------------------------------------------------------------------------- round trips


def test_round_trip_with_profile_and_metadata(tmp_path, registry, fitted) -> None:
    profile = {"n_rows": 50, "features": [{"name": "a", "mean": 0.1}]}
    path = mf.save_model(fitted, tmp_path / "sub" / "m.npz", profile=profile, metadata={"run_id": "r1"})
    assert path == tmp_path / "sub" / "m.npz"
    back = mf.load_model(path)
    X = np.random.default_rng(1).normal(size=(7, 4)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(X), fitted.predict(X))
    assert back.scale == 2.0 and back.profile_ == profile and back.metadata_ == {"run_id": "r1"}
    info = mf.read_model_info(path)
    assert info["format"] == "aidevops-model" and info["format_version"] == 1
    assert info["estimator"] == "FakeEstimator" and info["params"] == {"scale": 2.0}
    assert set(info["arrays"]) == {"coef", "intercept"} and len(info["arrays"]["coef"]["sha256"]) == 64
    assert info["arrays"]["coef"]["shape"] == [4] and info["arrays"]["coef"]["dtype"] == "<f4"
    assert "created" in info and "aidevops_version" in info


def test_file_is_a_plain_npz_readable_without_pickle(saved, fitted) -> None:
    with np.load(saved, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["coef"], fitted.coef_)


def test_suffix_added_and_atomic_overwrite(tmp_path, registry, fitted) -> None:
    p = mf.save_model(fitted, tmp_path / "model")
    assert p.name == "model.npz" and p.is_file()
    fitted.scale = 3.0
    mf.save_model(fitted, p)
    assert mf.load_model(p).scale == 3.0
    assert sorted(f.name for f in tmp_path.iterdir()) == ["model.npz"]  # no temp files left behind


def test_failed_save_keeps_previous_file(tmp_path, registry, fitted) -> None:
    p = mf.save_model(fitted, tmp_path / "m.npz")
    before = p.read_bytes()
    with pytest.raises(ModelFileError):
        mf.save_model(fitted, p, metadata={"loss": float("nan")})  # strict JSON: NaN refused
    with pytest.raises(ModelFileError):
        mf.save_model(fitted, p, profile={"bad": np.float32(1)})  # numpy scalars are not JSON
    assert p.read_bytes() == before and sorted(f.name for f in tmp_path.iterdir()) == ["m.npz"]


class _BadState(FakeEstimator):
    def __init__(self, arrays: dict, spec: dict | None = None) -> None:
        self.arrays, self.spec = arrays, spec or {"estimator": "X"}

    def _get_state(self):
        return self.spec, self.arrays


@pytest.mark.parametrize(
    "est",
    [
        _BadState({"w": np.array([object()], dtype=object)}),
        _BadState({"../w": np.zeros(2)}),
        _BadState({"a/b": np.zeros(2)}),
        _BadState({"w": np.zeros(2)}, spec={"estimator": "X", "arrays": {}}),
        object(),
    ],
)
def test_save_refuses_bad_state(tmp_path, est) -> None:
    with pytest.raises(ModelFileError) as info:
        mf.save_model(est, tmp_path / "m.npz")
    assert str(info.value).endswith(".")
    assert not (tmp_path / "m.npz").exists()


def test_module_source_has_no_pickle() -> None:
    src = Path(mf.__file__).read_text()
    assert "import pickle" not in src and "allow_pickle=True" not in src
    assert src.count("allow_pickle=") == src.count("allow_pickle=False")


# --------------------------------------------------------------------------- hostile files


def test_missing_and_directory(tmp_path) -> None:
    _fails(tmp_path / "absent.npz", "does not exist")
    _fails(tmp_path, "not a file")


@pytest.mark.parametrize("content", [b"hello, I am a text file\n", os.urandom(2048), b""])
def test_not_a_zip(tmp_path, content: bytes) -> None:
    p = tmp_path / "m.npz"
    p.write_bytes(content)
    _fails(p, "not an aidevops model file")
    with pytest.raises(ModelFileError):
        mf.read_model_info(p)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated(tmp_path, saved, keep: float) -> None:
    data = saved.read_bytes()
    p = tmp_path / "cut.npz"
    p.write_bytes(data[: int(len(data) * keep)])
    _fails(p)


def test_corrupt_member_bytes(tmp_path, saved) -> None:
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("coef.npy")
    # local header: 30 fixed bytes, then the name and extra field, then the (deflated) data
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.compress_size // 2] ^= 0xFF
    p = tmp_path / "flipped.npz"
    p.write_bytes(bytes(data))
    _fails(p, "corrupt")


def test_plain_numpy_savez(tmp_path) -> None:
    p = tmp_path / "plain.npz"
    np.savez(p, w=np.zeros(3))
    _fails(p, "plain NumPy .npz")


def test_random_zip(tmp_path) -> None:
    p = _write_zip(tmp_path / "r.npz", {"readme.txt": b"hi", "data.bin": os.urandom(100)})
    _fails(p, "spec.json")


@pytest.mark.parametrize(
    "spec_bytes,needle",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1, 2]", "not an aidevops model file"),
        (json.dumps({"format": "other"}).encode(), "not an aidevops model file"),
        (json.dumps({"format": "aidevops-model", "format_version": "1"}).encode(), "format_version"),
        (json.dumps({"format": "aidevops-model", "format_version": 1, "estimator": "FakeEstimator"}).encode(), "array"),
        (json.dumps({"format": "aidevops-model", "format_version": 1, "arrays": {}}).encode(), "estimator"),
    ],
)
def test_foreign_or_broken_spec(tmp_path, spec_bytes: bytes, needle: str) -> None:
    _fails(_write_zip(tmp_path / "m.npz", {"spec.json": spec_bytes}), needle)


def test_newer_format_version(tmp_path, saved) -> None:
    p = _rewrite(saved, tmp_path / "new.npz", spec_edit=lambda s: s.update(format_version=2))
    msg = _fails(p, "newer", "upgrade")
    with pytest.raises(ModelFileError):
        mf.read_model_info(p)
    assert "version 2" in msg


def test_checksum_mismatch(tmp_path, saved, registry) -> None:
    def tamper(members, spec):
        buf = io.BytesIO()
        np.save(buf, np.full(4, 1e6, dtype=np.float32))  # same shape/dtype, different weights
        members["coef.npy"] = buf.getvalue()

    _fails(_rewrite(saved, tmp_path / "t.npz", members_edit=tamper), "checksum", "'coef'")


def _touch(path: str) -> None:  # pragma: no cover - must never run
    Path(path).write_text("unpickled!")


class _Payload:
    """Unpickling this calls _touch: proof that a loader unpickled it."""

    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (_touch, (self.sentinel,))


@pytest.mark.parametrize("declare", ["|O", "<f4"])
def test_pickled_object_array_is_refused_without_unpickling(tmp_path, saved, registry, declare: str) -> None:
    sentinel = tmp_path / "pwned"
    evil = np.empty(4, dtype=object)
    evil[:] = [_Payload(str(sentinel))] * 4
    buf = io.BytesIO()
    np.lib.format.write_array(buf, evil, allow_pickle=True)
    blob = buf.getvalue()
    np.load(io.BytesIO(blob), allow_pickle=True)  # prove the payload is live: unpickling it touches the sentinel
    assert sentinel.exists()
    sentinel.unlink()

    def plant(members, spec):
        members["coef.npy"] = blob
        spec["arrays"]["coef"].update(dtype=declare, sha256=hashlib.sha256(blob).hexdigest())
        members["spec.json"] = json.dumps(spec).encode()

    _fails(_rewrite(saved, tmp_path / "evil.npz", members_edit=plant), "refusing", "'coef'")
    assert not sentinel.exists()


@pytest.mark.parametrize("evil_name", ["../evil", "/etc/evil", "a/../../b", "..", "x\\y"])
def test_path_traversal_array_names(tmp_path, saved, evil_name: str) -> None:
    def plant(members, spec):
        entry = spec["arrays"].pop("coef")
        spec["arrays"][evil_name] = entry
        members[f"{evil_name}.npy"] = members.pop("coef.npy")
        members["spec.json"] = json.dumps(spec).encode()

    _fails(_rewrite(saved, tmp_path / "trav.npz", members_edit=plant), "refusing")


def test_unexpected_member(tmp_path, saved) -> None:
    def plant(members, spec):
        members["../../outside.npy"] = members["coef.npy"]

    _fails(_rewrite(saved, tmp_path / "extra.npz", members_edit=plant), "unexpected member")


def test_duplicate_member(tmp_path, saved) -> None:
    p = tmp_path / "dup.npz"
    p.write_bytes(saved.read_bytes())
    with zipfile.ZipFile(p, "a") as zf, pytest.warns(UserWarning):  # zipfile warns about the duplicate
        zf.writestr("coef.npy", b"shadow copy")
    _fails(p, "repeats a member")


def test_missing_array_member(tmp_path, saved) -> None:
    _fails(_rewrite(saved, tmp_path / "m.npz", members_edit=lambda m, s: m.pop("coef.npy")), "lacks the array")


def test_declared_shape_or_dtype_mismatch(tmp_path, saved) -> None:
    def edit(members, spec):
        spec["arrays"]["coef"]["shape"] = [2, 2]
        members["spec.json"] = json.dumps(spec).encode()

    _fails(_rewrite(saved, tmp_path / "s.npz", members_edit=edit), "differs from its spec")
    bad_dtype = _rewrite(saved, tmp_path / "d.npz", spec_edit=lambda s: s["arrays"]["coef"].update(dtype="nonsense"))
    _fails(bad_dtype, "dtype")


def test_oversize_array_member(tmp_path, saved) -> None:
    def edit(members, spec):
        big = np.zeros(100_000, dtype=np.float32)
        buf = io.BytesIO()
        np.save(buf, big)
        members["coef.npy"] = buf.getvalue()  # the spec still says shape [4]

    _fails(_rewrite(saved, tmp_path / "big.npz", members_edit=edit), "oversize")


def test_oversize_spec(tmp_path, saved, monkeypatch) -> None:
    p = _rewrite(saved, tmp_path / "fat.npz", spec_edit=lambda s: s.update(metadata={"pad": "x" * 5000}))
    monkeypatch.setattr(mf, "MAX_SPEC_BYTES", 4096)
    _fails(p, "oversize", "spec.json")


def test_huge_declared_spec_is_not_inflated(tmp_path) -> None:
    # 40 MB of spaces deflate to ~40 kB: the reader must stop at the cap, not inflate it all
    spec = b'{"format": "aidevops-model"' + b" " * (40 * 1024 * 1024) + b"}"
    p = tmp_path / "bomb.npz"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("spec.json", spec)
    assert p.stat().st_size < 1_000_000
    _fails(p, "oversize")


def test_unknown_estimator(tmp_path, saved, registry) -> None:
    p = _rewrite(saved, tmp_path / "u.npz", spec_edit=lambda s: s.update(estimator="NoSuchModel"))
    _fails(p, "NoSuchModel")


def test_rebuild_failure_is_a_model_file_error(tmp_path, saved, registry) -> None:
    p = _rewrite(saved, tmp_path / "r.npz", spec_edit=lambda s: s.pop("params"))
    _fails(p, "cannot be rebuilt", "FakeEstimator")


# --------------------------------------------------------------------------- real estimators


def _trainer():
    from aidevops_ext import trainer

    return trainer


def _xy(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    labels = np.array(["ant", "bee", "cat"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)]
    return X, labels, X @ np.arange(6.0) + 1.0


def test_real_estimators_round_trip(tmp_path) -> None:
    trainer = _trainer()
    X, labels, target = _xy()
    small = {"hidden_layer_sizes": (16,), "epochs": 3, "batch_size": 32, "backend": "numpy"}
    fitted = [
        trainer.MLPClassifier(**small).fit(X, labels, progress=False),
        trainer.MLPRegressor(**small).fit(X, target, progress=False),
        trainer.LinearRegression(backend="numpy").fit(X, target),
        trainer.LogisticRegression(epochs=3, backend="numpy").fit(X, labels, progress=False),
    ]
    for est in fitted:
        path = mf.save_model(est, tmp_path / f"{type(est).__name__}.npz", profile={"n_rows": 300})
        back = mf.load_model(path)
        assert type(back) is type(est) and back.profile_ == {"n_rows": 300}
        np.testing.assert_array_equal(back.predict(X), est.predict(X))
        assert back.get_params() == est.get_params()
        if hasattr(est, "predict_proba"):
            np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
            np.testing.assert_array_equal(back.classes_, est.classes_)
        assert mf.read_model_info(path)["estimator"] == type(est).__name__


def test_scaled_wrapper_round_trip(tmp_path) -> None:
    trainer = _trainer()
    X, labels, _ = _xy(2)
    X = X * 100 + 5  # raw, unscaled features: the wrapper's scaler must survive the file
    inner = trainer.MLPClassifier(hidden_layer_sizes=(8,), epochs=2, backend="numpy")
    est = trainer.Scaled(inner).fit(X, labels, progress=False)
    back = mf.load_model(mf.save_model(est, tmp_path / "scaled.npz"))
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))


def test_real_model_carries_its_data_profile(tmp_path) -> None:
    from aidevops_ext.monitoring.profile import build_profile, profile_from_dict

    trainer = _trainer()
    X, labels, _ = _xy(1)
    X[::7, 2] = np.nan  # missing values must survive as JSON (null-free counts, no NaN literals)
    clf = trainer.MLPClassifier(hidden_layer_sizes=(8,), epochs=1, backend="numpy").fit(
        np.nan_to_num(X), labels, progress=False
    )
    profile = build_profile(X, predictions=clf.predict(np.nan_to_num(X)))
    path = mf.save_model(clf, tmp_path / "clf.npz", profile=profile, metadata={"dataset": "toy"})
    back = mf.load_model(path)
    assert profile_from_dict(back.profile_) == profile and back.metadata_ == {"dataset": "toy"}
    assert mf.read_model_info(path)["profile"]["features"][2]["missing_rate"] == pytest.approx(43 / 300)


def test_module_import_is_light() -> None:
    assert modules_loaded_by("import aidevops_ext.trainer.modelfile", ("sklearn", "pandas", "mlflow")) == []
