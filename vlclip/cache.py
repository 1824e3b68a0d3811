"""Per-product results kept across runs, keyed by what they were computed from.

A stage derives each product's key from the product's own inputs (image bytes, text fields) and
the stage's settings and code, looks all keys up, computes only the misses and stores them. The
store is one SQLite file (plus a folder for files such as crops) outside the stage's DVC outputs,
which DVC deletes before the stage runs; so a run after a catalog change computes only the products
that changed. At the end of a run the store keeps only this run's keys: it holds one catalog's
worth, not every version ever seen.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 500  # keys per SQL statement (SQLite allows 999 parameters by default)


def digest(*parts) -> str:
    """sha256 over parts: str, bytes, numbers, or JSON-able structures (dicts in sorted key order)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            data = part
        elif isinstance(part, str):
            data = part.encode()
        else:
            data = json.dumps(part, sort_keys=True, default=str, ensure_ascii=False).encode()
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def code_digest(*paths: str | Path) -> str:
    """A hash of source files and folders (every file under a folder, by relative path), so a cached
    result is recomputed when the code that made it changes."""
    h = hashlib.sha256()
    for root in map(Path, paths):
        files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
            if root.is_dir() else [root]
        for f in files:
            h.update(str(f.relative_to(root.parent)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


class RowCache:
    """key -> bytes in SQLite, and key -> file in `<path>.files/`. `None` as path: a cache that
    holds nothing (every lookup misses), for runs that ask for no cache."""

    def __init__(self, path: str | Path | None):
        self.path, self.hits, self.misses, self._used = path, 0, 0, set()
        self.db = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            self.files = Path(f"{path}.files")
            self.files.mkdir(exist_ok=True)

    def __enter__(self) -> RowCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        keys = list(dict.fromkeys(keys))
        self._used.update(keys)
        found: dict[str, bytes] = {}
        if self.db is not None:
            for i in range(0, len(keys), _CHUNK):
                part = keys[i:i + _CHUNK]
                marks = ",".join("?" * len(part))
                found.update(self.db.execute(f"SELECT key, value FROM rows WHERE key IN ({marks})", part))
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def present(self, keys: Iterable[str]) -> set[str]:
        """The keys the store holds (values are read later, batch by batch, with get_many)."""
        keys = list(dict.fromkeys(keys))
        found: set[str] = set()
        if self.db is not None:
            for i in range(0, len(keys), _CHUNK):
                part = keys[i:i + _CHUNK]
                marks = ",".join("?" * len(part))
                found.update(k for (k,) in self.db.execute(f"SELECT key FROM rows WHERE key IN ({marks})", part))
        self._used.update(keys)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, items: dict[str, bytes]) -> None:
        self._used.update(items)
        if self.db is not None and items:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?)", items.items())

    def file(self, key: str, suffix: str) -> Path | None:
        """Where the file for `key` is kept (None without a cache)."""
        return None if self.db is None else self.files / key[:2] / f"{key}{suffix}"

    def keep_file(self, key: str, suffix: str, made: Path) -> None:
        """Keep a copy of a file this run made (copies both ways: an output rewritten in place can
        never change the cache)."""
        target = self.file(key, suffix)
        if target is None or target.exists():
            return
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(made, tmp)
        os.replace(tmp, target)

    def place_file(self, key: str, suffix: str, dest: Path) -> bool:
        """Copy the kept file for `key` to `dest`; -> False when there is none."""
        src = self.file(key, suffix)
        if src is None or not src.exists():
            return False
        shutil.copyfile(src, dest)
        return True

    def retain_used(self) -> int:
        """Drop every entry this run did not look up or store; -> entries dropped."""
        if self.db is None:
            return 0
        stale = [k for (k,) in self.db.execute("SELECT key FROM rows") if k not in self._used]
        with self.db:
            self.db.executemany("DELETE FROM rows WHERE key = ?", ((k,) for k in stale))
        for sub in self.files.iterdir():
            for f in sub.iterdir() if sub.is_dir() else []:
                if f.name.split(".")[0] not in self._used:
                    f.unlink(missing_ok=True)
        return len(stale)

    def report(self) -> str:
        return f"{self.misses} computed, {self.hits} from cache"
