"""Datasets for the trainer: bundled scikit-learn sets, a seeded synthetic generator, CSV/Parquet files,
deterministic train/validation/test splits, and splits saved as plain ``.npy`` files.

scikit-learn, pandas and pyarrow are imported inside the loaders that need them, so importing this
module stays cheap (the model server imports the trainer package).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from aidevops_ext import splitting
from aidevops_ext.errors import ConfigError, DataError

__all__ = [
    "BUILTIN_DATASETS",
    "Dataset",
    "FILE_SUFFIXES",
    "Split",
    "load_dataset",
    "load_split",
    "make_synthetic",
    "save_split",
    "train_val_test_split",
]

TASKS = ("classification", "regression")
FILE_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass
class Dataset:
    """Features (float32, 2-D), targets and their names."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target: str
    task: str
    name: str
    target_names: list | None = None

    @property
    def n_samples(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns."""
        return int(self.X.shape[1])


# --------------------------------------------------------------------------- bundled datasets


def _sklearn_loader(fn_name: str, task: str) -> Callable[..., Dataset]:
    def load(**options: object) -> Dataset:
        if options:
            raise ConfigError(
                f"the built-in dataset {fn_name[5:]!r} takes no options but got {sorted(options)}; remove them."
            )
        from sklearn import datasets  # lazy: scikit-learn is heavy and only needed here

        bunch = getattr(datasets, fn_name)()
        y = bunch.target.astype(np.int64 if task == "classification" else np.float32)
        names = getattr(bunch, "target_names", None) if task == "classification" else None
        return Dataset(
            X=np.ascontiguousarray(bunch.data, dtype=np.float32),
            y=y,
            feature_names=[str(f) for f in bunch.feature_names],
            target="target",
            task=task,
            name=fn_name[5:],
            target_names=None if names is None else [str(n) for n in names],
        )

    load.__doc__ = f"scikit-learn's bundled {fn_name[5:]} dataset as a Dataset."
    return load


# --------------------------------------------------------------------------- synthetic data

_SYNTHETIC_OPTIONS = ("n_samples", "n_features", "n_classes", "seed", "noise", "n_informative", "clusters_per_class")


def make_synthetic(
    n_samples: int = 10_000,
    n_features: int = 64,
    n_classes: int = 10,
    seed: int = 0,
    noise: float = 1.0,
    n_informative: int | None = None,
    clusters_per_class: int = 2,
) -> Dataset:
    """Seeded synthetic data: Gaussian clusters in a low-dim subspace, tanh-warped (n_classes=0: regression)."""
    n_samples, n_features, n_classes = int(n_samples), int(n_features), int(n_classes)
    if n_samples < 1 or n_features < 1:
        raise ConfigError(f"n_samples and n_features must be at least 1, got {n_samples} and {n_features}.")
    if n_classes < 0 or n_classes == 1:
        raise ConfigError(f"n_classes must be 0 (regression) or at least 2, got {n_classes}.")
    if not noise >= 0:
        raise ConfigError(f"noise must be a non-negative number, got {noise!r}.")
    if int(clusters_per_class) < 1:
        raise ConfigError(f"clusters_per_class must be at least 1, got {clusters_per_class!r}.")
    rng = np.random.default_rng(seed)
    n_clusters = max(n_classes, 1) * int(clusters_per_class)
    # Just enough latent dimensions for the clusters' hypercube vertices (plus one, so there is room
    # between them): the signal lives in a small subspace a model has to find.
    d = int(n_informative) if n_informative else int(np.ceil(np.log2(max(n_clusters, 2)))) + 1
    d = max(1, min(d, n_features, 16))

    z = rng.standard_normal((n_samples, d), dtype=np.float32)
    if n_classes:
        # Cluster centres on distinct vertices of a hypercube with side 4 (as in scikit-learn's
        # make_classification): neighbouring centres are 4 apart, so with unit noise a few percent of
        # points fall nearer another class -- high but not perfect accuracy. Several clusters per class on
        # random vertices make the classes XOR-like, so an MLP beats a linear model.
        vertices = rng.choice(2**d, size=n_clusters, replace=n_clusters > 2**d)
        bits = (vertices[:, None] >> np.arange(d)) & 1
        centers = (bits * 4.0 - 2.0).astype(np.float32)
        cluster = rng.integers(0, n_clusters, n_samples)
        y = (cluster % n_classes).astype(np.int64)
        z *= np.float32(noise)
        z += centers[cluster]
    else:
        w = rng.standard_normal((3, d)) / np.sqrt(d)
        zz = z.astype(np.float64)
        y = np.sin(2 * zz @ w[0]) + 0.5 * (zz @ w[1]) ** 2 + zz @ w[2]
        y += noise * 0.1 * rng.standard_normal(n_samples)
        y = y.astype(np.float32)

    # Project to n_features and warp with tanh (SIMD in NumPy, unlike sin).
    proj = (rng.standard_normal((d, n_features)) / np.sqrt(d)).astype(np.float32)
    h = z @ proj
    X = np.tanh(h * np.float32(1.5))
    X *= np.float32(0.8)
    X += h
    X += rng.standard_normal((n_samples, n_features), dtype=np.float32) * np.float32(0.1)
    task = "classification" if n_classes else "regression"
    return Dataset(
        X=X,
        y=y,
        feature_names=[f"x{i}" for i in range(n_features)],
        target="target",
        task=task,
        name="synthetic",
        target_names=[str(c) for c in range(n_classes)] if n_classes else None,
    )


def _load_synthetic(**options: object) -> Dataset:
    unknown = sorted(set(options) - set(_SYNTHETIC_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown synthetic option(s) {unknown}; valid options are {list(_SYNTHETIC_OPTIONS)}.")
    return make_synthetic(**options)  # type: ignore[arg-type]


def _parse_spec(spec: str) -> dict[str, object]:
    """Options from 'synthetic:n_samples=1000,n_classes=3' (ints, then floats)."""
    out: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, raw = part.partition("=")
        if not sep:
            raise ConfigError(f"synthetic option {part!r} has no value; write it as name=value.")
        try:
            value: object = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"synthetic option {key.strip()}={raw!r} is not a number.") from None
        out[key.strip()] = value
    return out


BUILTIN_DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": _sklearn_loader("load_digits", "classification"),
    "breast_cancer": _sklearn_loader("load_breast_cancer", "classification"),
    "wine": _sklearn_loader("load_wine", "classification"),
    "diabetes": _sklearn_loader("load_diabetes", "regression"),
    "synthetic": _load_synthetic,
}


# --------------------------------------------------------------------------- files


def _infer_task(y: np.ndarray) -> str:
    if y.dtype.kind in "OUSb":
        return "classification"
    # integer labels with few distinct values are classes; many distinct integers are a quantity
    if y.dtype.kind in "iu" and len(np.unique(y)) <= 50:
        return "classification"
    return "regression"


def _load_table(path: Path, target: str | None, task: str | None = None, features: list[str] | None = None) -> Dataset:
    import pandas as pd  # lazy: pandas (and pyarrow for Parquet) only when a file is read

    if target is None:
        raise ConfigError(f"loading {path.name} needs target=<column name>; name the column to predict.")
    if task is not None and task not in TASKS:
        raise ConfigError(f"task={task!r} is not valid; use one of {list(TASKS)} or None to infer it.")
    try:
        if path.suffix.lower() == ".csv":
            df = pd.read_csv(path)
        else:
            df = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; write a header row and data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__
        raise DataError(f"{path} cannot be read as {path.suffix.lstrip('.')} ({reason}); check the file.") from None
    columns = [str(c) for c in df.columns]
    df.columns = columns
    if target not in columns:
        raise DataError(f"target column {target!r} is not in {path.name}; its columns are {columns}.")
    if len(df) == 0:
        raise DataError(f"{path} has a header but no rows; add data rows.")
    feats = [c for c in columns if c != target] if features is None else [str(f) for f in features]
    missing = [f for f in feats if f not in columns or f == target]
    if missing:
        raise DataError(f"feature column(s) {missing} are not usable in {path.name}; its columns are {columns}.")
    if not feats:
        raise DataError(f"{path.name} has no feature columns besides the target {target!r}; add features.")
    bad = [c for c in feats if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]))]
    if bad:
        raise DataError(
            f"feature column(s) {bad[:10]} in {path.name} are not numeric; encode them as numbers or drop them."
        )
    yser = df[target]
    if yser.isna().any():
        n_missing = int(yser.isna().sum())
        raise DataError(f"target column {target!r} in {path.name} has {n_missing} missing values; drop those rows.")
    y = yser.to_numpy()
    if y.dtype.kind == "O":
        y = y.astype(str)  # unicode, not object: splits must save without pickle
    chosen = task or _infer_task(y)
    if chosen == "regression":
        if y.dtype.kind not in "iufb":
            raise DataError(f"target column {target!r} is not numeric, so it cannot be a regression target.")
        y = y.astype(np.float32)
    X = np.ascontiguousarray(df[feats].to_numpy(dtype=np.float32, na_value=np.nan))
    names = [str(v) for v in np.unique(y)] if chosen == "classification" else None
    return Dataset(X=X, y=y, feature_names=feats, target=target, task=chosen, name=path.stem, target_names=names)


def load_dataset(source: str | os.PathLike, target: str | None = None, **options: object) -> Dataset:
    """Load a built-in dataset by name, ``synthetic[:k=v,...]``, or a .csv/.parquet file with a named target."""
    if isinstance(source, str) and source in BUILTIN_DATASETS:
        ds = BUILTIN_DATASETS[source](**options)
        if target is not None and target != ds.target:
            raise ConfigError(f"the built-in dataset {source!r} has target {ds.target!r}; omit target= or use that.")
        return ds
    if isinstance(source, str) and source.startswith("synthetic:"):
        return _load_synthetic(**{**_parse_spec(source[len("synthetic:") :]), **options})
    path = Path(source)
    if path.suffix.lower() not in FILE_SUFFIXES:
        if path.is_file():
            raise DataError(f"{path} is not a supported file type; use one of {list(FILE_SUFFIXES)}.")
        raise DataError(
            f"unknown dataset {str(source)!r}; use one of {sorted(BUILTIN_DATASETS)} "
            f"or a path to a {'/'.join(FILE_SUFFIXES)} file."
        )
    if not path.exists():
        raise DataError(f"data file {path} does not exist; check the path.")
    if not path.is_file():
        raise DataError(f"{path} is not a file; pass the path of a {path.suffix} file.")
    unknown = sorted(set(options) - {"task", "features"})
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for a data file; valid options are ['features', 'task'].")
    return _load_table(path, target, **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- splits


@dataclass
class Split:
    """Train / validation / test partitions of one dataset, and each row's key when the split was keyed.

    The keys (uint64, from `aidevops_ext.splitting.row_keys`) are the split's lineage: a registered
    model stores the keys it trained on so a later gate can score on rows it never saw.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    keys_train: np.ndarray | None = None
    keys_val: np.ndarray | None = None
    keys_test: np.ndarray | None = None

    @property
    def keyed(self) -> bool:
        """Whether every part carries its row keys."""
        return self.keys_train is not None and self.keys_val is not None and self.keys_test is not None

    def seen_keys(self) -> np.ndarray:
        """Keys of the rows training saw: training rows and validation rows (validation picks the epoch)."""
        if not self.keyed:
            raise DataError("this split carries no row keys; split with keys=splitting.row_keys(X) to record lineage.")
        return np.unique(np.concatenate([self.keys_train, self.keys_val]))


_ARRAYS = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")
_KEYS = ("keys_train", "keys_val", "keys_test")


def train_val_test_split(
    X: np.ndarray,
    y: np.ndarray,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    stratify: bool | None = None,
    keys: np.ndarray | None = None,
) -> Split:
    """Deterministic shuffled split; stratified by label when stratify is True (None: for non-float labels).

    With `keys` (one `splitting.row_keys` value per row) the test rows are chosen by the fixed rule
    `splitting.test_mask` -- the same rows for every seed, ordered by key (a fixed pseudo-random order, so
    any prefix of the test rows, such as a replayed window of traffic, is a fair sample) -- and the seed only
    shuffles the other rows into training and validation. Without keys the seed shuffles all three
    parts (exact sizes, the old behaviour) and the Split carries the rows' content keys for lineage.
    """
    val_fraction = splitting.check_fraction("val_fraction", val_fraction)
    test_fraction = splitting.check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(
            f"val_fraction + test_fraction is {val_fraction + test_fraction:g}; "
            "keep it below 1 so rows remain for training."
        )
    X = np.asarray(X)
    y = np.asarray(y)
    n = len(X)
    if len(y) != n:
        raise DataError(f"X has {n} rows but y has {len(y)}; pass one label per row.")
    if stratify is None:
        stratify = y.ndim == 1 and y.dtype.kind in "iuOUSb"
    elif stratify and y.ndim != 1:
        raise ConfigError(f"stratify=True needs 1-D class labels, got y of shape {y.shape}; pass stratify=False.")
    rng = np.random.default_rng(seed)
    n_val = int(round(n * val_fraction))
    if keys is None:
        n_test = int(round(n * test_fraction))
        if n - n_test - n_val < 1:
            raise DataError(
                f"{n} rows are too few to split with these fractions; supply more data or smaller fractions."
            )
        perm = _shuffle(y, np.arange(n), rng, stratify)
        test, val, train = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
        k = splitting.row_keys(X)
        return Split(X[train], y[train], X[val], y[val], X[test], y[test], k[train], k[val], k[test])
    keys = np.asarray(keys)
    if keys.shape != (n,):
        raise DataError(f"keys has shape {keys.shape} but X has {n} rows; pass one splitting.row_keys value per row.")
    in_test = splitting.test_mask(keys, test_fraction)
    test = np.flatnonzero(in_test)
    test = test[np.argsort(keys[test], kind="stable")]
    rest = np.flatnonzero(~in_test)
    if test_fraction > 0 and len(test) == 0:
        raise DataError(
            f"no row of {n} falls into the test split by the fixed rule; supply more rows or a larger test_fraction."
        )
    if len(rest) - n_val < 1:
        raise DataError(f"{n} rows are too few to split with these fractions; supply more data or smaller fractions.")
    perm = _shuffle(y, rest, rng, stratify)
    val, train = perm[:n_val], perm[n_val:]
    return Split(X[train], y[train], X[val], y[val], X[test], y[test], keys[train], keys[val], keys[test])


def _shuffle(y: np.ndarray, rows: np.ndarray, rng: np.random.Generator, stratify: bool) -> np.ndarray:
    """`rows` in seeded random order; stratified, every prefix holds each class in proportion."""
    perm = rows[rng.permutation(len(rows))]
    if not stratify or len(perm) == 0:
        return perm
    # Give each row a key in [0, 1): its rank inside its class (in shuffled order) over the class size,
    # plus a random per-class offset. Sorting by the key interleaves the classes evenly, so every
    # prefix (test, then val) holds each class in proportion -- and the totals are exact.
    n = len(perm)
    _, cls = np.unique(y[perm], return_inverse=True)
    cls = cls.ravel()
    counts = np.bincount(cls)
    order = np.argsort(cls, kind="stable")
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.empty(n, dtype=np.float64)
    rank[order] = np.arange(n) - np.repeat(starts, counts)
    key = (rank + rng.random(len(counts))[cls]) / counts[cls]
    return perm[np.argsort(key, kind="stable")]


def save_split(split: Split, folder: str | os.PathLike) -> Path:
    """Write the six arrays of a split (and its row keys, when keyed) as .npy files (no pickle) into folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in _KEYS:
        keys = getattr(split, name)
        if keys is not None:
            splitting.save_keys(out / f"{name}.npy", np.asarray(keys))
    for f in fields(Split):
        if f.name in _KEYS:
            continue
        a = np.asarray(getattr(split, f.name))
        if a.dtype.kind == "O":
            if not all(isinstance(v, str) for v in a.ravel()):
                raise DataError(f"{f.name} holds Python objects that are not strings; use numbers or strings.")
            a = a.astype(str)  # string labels become a unicode array so they load without pickle
        np.save(out / f"{f.name}.npy", a, allow_pickle=False)
    return out


def load_split(folder: str | os.PathLike) -> Split:
    """Read a split written by save_split (allow_pickle=False)."""
    src = Path(folder)
    if not src.is_dir():
        raise DataError(f"split folder {src} does not exist; run save_split first or check the path.")
    arrays: dict[str, np.ndarray | None] = {}
    for name in _KEYS:  # absent in splits saved before row keys existed
        p = src / f"{name}.npy"
        arrays[name] = splitting.load_keys(p) if p.is_file() else None
    for name in _ARRAYS:
        p = src / f"{name}.npy"
        if not p.is_file():
            raise DataError(f"{p.name} is missing from {src}; the folder is not a complete saved split.")
        try:
            arrays[name] = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            reason = str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__
            raise DataError(
                f"{p} is not a readable .npy array without pickle ({reason}); recreate the split."
            ) from None
    return Split(**arrays)  # type: ignore[arg-type]  # every name in _ARRAYS was loaded above


# --------------------------------------------------------------------------- extra training rows


def save_rows(X: np.ndarray, y: np.ndarray, folder: str | os.PathLike, *, max_share: float | None = None) -> Path:
    """Write labelled rows (e.g. live traffic with its feedback labels) to `<folder>/<content hash>.npz`.

    The file name is the hash of the contents, so a pipeline param naming the file changes (and the
    step cache misses) exactly when the rows do. `max_share` (0 < x <= 1) travels in the file:
    `add_training_rows` adds at most that share of the training rows, the newest (last) rows first.
    """
    import hashlib  # noqa: PLC0415
    import io  # noqa: PLC0415

    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y)
    if y.dtype.kind == "O":
        y = y.astype(str)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise DataError(f"rows must be a 2-D X with one label per row, got X {X.shape} and y {y.shape}.")
    buf = io.BytesIO()
    if max_share is None:
        np.savez(buf, X=X, y=y)
    else:
        np.savez(buf, X=X, y=y, max_share=np.float64(max_share))
    payload = buf.getvalue()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"rows-{hashlib.sha256(payload).hexdigest()[:16]}.npz"
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    return path


def share_cap(own_rows: int, max_share: float | None) -> int:
    """How many added rows keep them at most `max_share` of own_rows + added (None or 1: no cap)."""
    if max_share is None or max_share >= 1:
        return 2**62
    return int(np.floor(max(float(max_share), 0.0) * own_rows / (1.0 - float(max_share)) + 1e-9))


def add_training_rows(split: Split, path: str | os.PathLike) -> tuple[Split, int]:
    """The split with the labelled rows of an `.npz` (X, y; written by save_rows) appended to its training part.

    A keyed split gets the rows' content keys appended to its training keys, so the retrained
    version's lineage names them (a live row that repeats a test row is then left out of its gate).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"extra training rows {p} do not exist; pass the .npz that `aidevops retrain` wrote, or none.")
    try:
        with np.load(p, allow_pickle=False) as f:
            X, y = f["X"], f["y"]
            max_share = float(f["max_share"]) if "max_share" in f.files else None
    except (ValueError, OSError, KeyError, EOFError) as exc:
        raise DataError(
            f"{p} is not an .npz with arrays X and y ({type(exc).__name__}); write it with data.save_rows."
        ) from None
    if X.ndim != 2 or X.shape[1] != split.X_train.shape[1] or len(y) != len(X):
        raise DataError(
            f"{p} holds X {X.shape} and y {y.shape}, but the dataset has {split.X_train.shape[1]} features; "
            "the extra rows must come from traffic to a model of this dataset."
        )
    kind = split.y_train.dtype.kind
    try:
        y = y.astype(split.y_train.dtype) if kind in "iuf" else y.astype(split.y_train.dtype, copy=False)
    except (ValueError, TypeError):
        raise DataError(
            f"the labels in {p} do not convert to the dataset's label type ({split.y_train.dtype})."
        ) from None
    if kind in "iu":
        known = np.unique(split.y_train)
        unknown = np.setdiff1d(np.unique(y), known)
        if len(unknown):
            raise DataError(
                f"{p} has labels {unknown[:5].tolist()} the training data never has; check the feedback labels."
            )
    X = X.astype(split.X_train.dtype, copy=False)
    cap = share_cap(len(split.y_train), max_share)
    X, y = X[len(X) - min(cap, len(X)) :], y[len(y) - min(cap, len(y)) :]  # the newest rows are last
    keys_train = split.keys_train
    if keys_train is not None:
        keys_train = np.concatenate([keys_train, splitting.row_keys(X)])
    out = Split(
        np.concatenate([split.X_train, X]),
        np.concatenate([split.y_train, y]),
        split.X_val,
        split.y_val,
        split.X_test,
        split.y_test,
        keys_train,
        split.keys_val,
        split.keys_test,
    )
    return out, int(len(X))
