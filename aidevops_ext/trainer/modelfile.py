"""The model file: one zip (``.npz``) holding ``spec.json`` and one ``.npy`` per weight array.

A model file from a stranger must be safe to load, so nothing here unpickles: arrays are read with
``allow_pickle=False`` after their header has been checked (numeric/string dtypes only), every array's
bytes are checked against the SHA-256 recorded in the spec, and sizes are capped before reading so a
hostile archive cannot make us allocate more than its spec declares.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import os
import re
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from aidevops_ext.errors import AidevopsError, ModelFileError

__all__ = ["FORMAT", "FORMAT_VERSION", "load_model", "read_model_info", "save_model"]

FORMAT = "aidevops-model"
FORMAT_VERSION = 1
SPEC_NAME = "spec.json"
MAX_SPEC_BYTES = 32 * 1024 * 1024  # a profile of thousands of features fits; a zip bomb does not
MAX_MEMBERS = 10_000
_MAX_NPY_HEADER = 1 << 16  # generous: real .npy headers are ~128 bytes
_ALLOWED_KINDS = "biufcUS"  # never "O" (pickle) nor "V" (structured, may hide objects)
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_ENVELOPE = ("format", "format_version", "created", "aidevops_version", "arrays", "profile", "metadata")


# --------------------------------------------------------------------------- save


def _npy_bytes(name: str, value: object) -> bytes:
    a = np.asarray(value)
    if a.dtype.hasobject or a.dtype.kind not in _ALLOWED_KINDS:
        raise ModelFileError(
            f"array {name!r} has dtype {a.dtype}, which a model file cannot hold; store numbers or strings."
        )
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _json_bytes(spec: dict) -> bytes:
    try:
        return json.dumps(spec, allow_nan=False, sort_keys=False, indent=1).encode("utf-8")
    except (TypeError, ValueError) as exc:
        # strict JSON: NaN/inf or numpy scalars would make a file other tools cannot read
        raise ModelFileError(
            f"the model spec, profile or metadata is not plain JSON ({exc}); use str/int/float/list/dict values."
        ) from None


def save_model(
    estimator: Any, path: str | os.PathLike, *, profile: dict | None = None, metadata: dict | None = None
) -> Path:
    """Write a fitted estimator (plus optional data profile and metadata) to one file, atomically."""
    if not hasattr(estimator, "_get_state"):
        raise ModelFileError(
            f"{type(estimator).__name__} does not implement _get_state(); only aidevops estimators can be saved."
        )
    est_spec, arrays = estimator._get_state()
    clash = sorted(set(est_spec) & set(_ENVELOPE))
    if clash:
        raise ModelFileError(f"the estimator spec uses reserved key(s) {clash}; rename them in _get_state().")
    if metadata is not None and not isinstance(metadata, dict):
        raise ModelFileError(f"metadata must be a dict, got {type(metadata).__name__}.")

    from aidevops_ext import __version__  # late: avoids a cycle when the package imports the trainer

    members: dict[str, bytes] = {}
    table: dict[str, dict] = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ModelFileError(f"array name {name!r} is not a plain name; use letters, digits, '_', '.', '-'.")
        data = _npy_bytes(name, value)
        a = np.asarray(value)
        members[f"{name}.npy"] = data
        table[name] = {"sha256": hashlib.sha256(data).hexdigest(), "shape": list(a.shape), "dtype": a.dtype.str}
    spec = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "aidevops_version": __version__,
        **est_spec,
        "arrays": table,
        "profile": profile,
        "metadata": metadata or {},
    }
    spec_bytes = _json_bytes(spec)
    if len(spec_bytes) > MAX_SPEC_BYTES:
        raise ModelFileError(
            f"the spec is {len(spec_bytes)} bytes, over the {MAX_SPEC_BYTES}-byte limit; shrink the profile."
        )

    target = Path(path)
    if not target.suffix:
        target = target.with_suffix(".npz")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the target, then rename: readers (a server reloading the model) never see half a file.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(SPEC_NAME, spec_bytes)
                for member, data in members.items():
                    zf.writestr(member, data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------- load


def _bad(path: Path, problem: str) -> ModelFileError:
    return ModelFileError(f"{path} {problem}.")


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.exists():
        raise _bad(path, "does not exist; check the path")
    if not path.is_file():
        raise _bad(path, "is not a file; pass the path of a saved model (.npz)")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise _bad(
            path, "is not an aidevops model file (not a zip archive, or truncated); save the model again"
        ) from None


def _read_member(path: Path, zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        with zf.open(name) as fh:
            data = fh.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError, ValueError):
        raise _bad(path, f"is corrupt (member {name!r} cannot be read); save the model again") from None
    if len(data) > limit:
        raise _bad(path, f"has an oversize member {name!r} (over {limit} bytes); it is not a valid model file")
    return data


def _read_spec(path: Path, zf: zipfile.ZipFile) -> dict:
    names = zf.namelist()
    if len(names) > MAX_MEMBERS:
        raise _bad(path, f"holds {len(names)} members, more than any model file; it is not a valid model file")
    if len(set(names)) != len(names):  # a zip may repeat a name; different readers would pick different copies
        raise _bad(path, "repeats a member name; it is not a valid model file")
    if SPEC_NAME not in names:
        if names and all(n.endswith(".npy") for n in names):
            raise _bad(path, "is a plain NumPy .npz archive, not an aidevops model file; save it with save_model")
        raise _bad(path, f"is a zip archive without {SPEC_NAME}, not an aidevops model file")
    raw = _read_member(path, zf, SPEC_NAME, MAX_SPEC_BYTES)
    try:
        spec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad(path, f"has a {SPEC_NAME} that is not valid JSON; the file is corrupt") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise _bad(path, f"is not an aidevops model file ({SPEC_NAME} lacks format={FORMAT!r})")
    version = spec.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _bad(path, f"has an invalid format_version {version!r}; the file is corrupt")
    if version > FORMAT_VERSION:
        raise _bad(
            path,
            f"uses model format version {version}, newer than the {FORMAT_VERSION} this aidevops reads; "
            "upgrade aidevops",
        )
    if not isinstance(spec.get("arrays"), dict):
        raise _bad(path, f"has no array table in {SPEC_NAME}; the file is corrupt")
    if not isinstance(spec.get("estimator"), str):
        raise _bad(path, f"does not name its estimator in {SPEC_NAME}; the file is corrupt")
    return spec


def _expected(path: Path, name: str, entry: object) -> tuple[tuple[int, ...], np.dtype, str]:
    """Shape, dtype and checksum the spec declares for one array, validated."""
    if not _NAME_RE.match(name):
        raise _bad(path, f"declares an array named {name[:80]!r}, which is not a plain name; refusing to load it")
    if not isinstance(entry, dict):
        raise _bad(path, f"has a malformed entry for array {name!r}; the file is corrupt")
    shape, dtype, digest = entry.get("shape"), entry.get("dtype"), entry.get("sha256")
    if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
        raise _bad(path, f"declares an invalid shape for array {name!r}; the file is corrupt")
    try:
        dt = np.dtype(dtype) if isinstance(dtype, str) else None
    except (TypeError, ValueError, SyntaxError):
        dt = None
    if dt is None or dt.hasobject or dt.kind not in _ALLOWED_KINDS:
        raise _bad(
            path,
            f"declares array {name!r} with dtype {str(dtype)[:40]!r}, not a numeric or string type; "
            "refusing to load it",
        )
    if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        raise _bad(path, f"has no valid sha256 for array {name!r}; the file is corrupt")
    return tuple(shape), dt, digest


def _parse_npy(path: Path, name: str, data: bytes, shape: tuple[int, ...], dt: np.dtype) -> np.ndarray:
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        # read the header ourselves first: refuse object dtypes before NumPy sees the payload
        if version == (1, 0):
            h_shape, _, h_dtype = np.lib.format.read_array_header_1_0(buf)
        elif version == (2, 0):
            h_shape, _, h_dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise ValueError("unsupported .npy version")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError):
        raise _bad(path, f"has an unreadable .npy header for array {name!r}; the file is corrupt") from None
    if h_dtype.hasobject or h_dtype.kind not in _ALLOWED_KINDS:
        raise _bad(path, f"holds array {name!r} with dtype {h_dtype} (would need pickle); refusing to load it")
    if tuple(h_shape) != shape or h_dtype != dt:
        raise _bad(path, f"holds array {name!r} whose shape or dtype differs from its spec; the file is corrupt")
    buf.seek(0)
    try:
        a = np.lib.format.read_array(buf, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise _bad(path, f"has a truncated or corrupt array {name!r}; save the model again") from None
    return a


def _read_arrays(path: Path, zf: zipfile.ZipFile, table: dict) -> dict[str, np.ndarray]:
    wanted = {f"{n}.npy": n for n in table if isinstance(n, str)}
    extra = sorted(set(zf.namelist()) - set(wanted) - {SPEC_NAME})
    if extra:
        # also catches path-traversal names ("../x.npy", "/etc/x"): nothing outside the spec is accepted
        raise _bad(path, f"contains unexpected member {extra[0][:80]!r}; refusing to load it")
    arrays: dict[str, np.ndarray] = {}
    for name, entry in table.items():
        shape, dt, digest = _expected(path, name, entry)
        member = f"{name}.npy"
        if member not in zf.namelist():
            raise _bad(path, f"lacks the array {name!r} its spec declares; the file is truncated or corrupt")
        limit = math.prod(shape) * dt.itemsize + _MAX_NPY_HEADER
        if zf.getinfo(member).file_size > limit:  # checked before inflating anything
            raise _bad(path, f"has an oversize member {member!r} (larger than its declared shape); refusing to load it")
        data = _read_member(path, zf, member, limit)
        if hashlib.sha256(data).hexdigest() != digest:
            raise _bad(path, f"fails the checksum of array {name!r}; the file is corrupt or was altered")
        arrays[name] = _parse_npy(path, name, data, shape, dt)
    return arrays


def read_model_info(path: str | os.PathLike) -> dict:
    """The spec of a model file (format, estimator, params, arrays table, profile, metadata) without its weights."""
    p = Path(path)
    with _open_zip(p) as zf:
        return _read_spec(p, zf)


def load_model(path: str | os.PathLike, backend: str = "numpy") -> Any:
    """Rebuild a fitted estimator from a model file; sets ``profile_`` and ``metadata_`` on it."""
    p = Path(path)
    with _open_zip(p) as zf:
        spec = _read_spec(p, zf)
        arrays = _read_arrays(p, zf, spec["arrays"])
    from aidevops_ext.trainer.registry import estimator_class  # late: the registry imports every estimator

    cls = estimator_class(spec["estimator"])
    est_spec = {k: v for k, v in spec.items() if k not in _ENVELOPE}
    try:
        est = cls._from_state(est_spec, arrays, backend=backend)
    except AidevopsError:
        raise
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise _bad(p, f"cannot be rebuilt as {spec['estimator']} ({type(exc).__name__}: {str(exc)[:120]})") from None
    est.profile_ = spec.get("profile")
    est.metadata_ = spec.get("metadata") or {}
    return est
