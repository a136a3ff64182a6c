"""Content hashes of files, memoised by a full stat signature.

The memo key includes ctime_ns and the inode, which a program cannot set back: rewriting a file
and restoring its mtime (os.utime) still changes ctime, so a changed file is always re-hashed,
while an untouched large data file is hashed once, not on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """SHA-256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _signature(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class HashMemo:
    """A JSON file mapping absolute path -> (stat signature, sha256)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._data: dict[str, list] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._data = {}
        self._dirty = False

    def hash(self, file: Path) -> str:
        """Content hash of `file`, re-read only when its stat signature changed."""
        file = Path(file)
        st = file.stat()
        key, sig = str(file.resolve()), _signature(st)
        hit = self._data.get(key)
        if hit and hit[0] == sig:
            return hit[1]
        value = sha256_file(file)
        self._data[key] = [sig, value]
        self._dirty = True
        return value

    def save(self) -> None:
        """Write the memo atomically if anything changed."""
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".hashes.")
        with os.fdopen(fd, "w") as fh:
            json.dump(self._data, fh)
        os.replace(tmp, self.path)
        self._dirty = False
