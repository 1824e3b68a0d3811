"""Receipts of the stages whose product lives outside DVC (MLflow registry, Feast online store, index).

A receipt states what the store holds and which inputs made it, never when or how fast, so redoing
the work on the same inputs writes the same bytes and DVC reruns nothing downstream. Such a stage
runs on every `dvc repro` (`always_changed`, which also keeps DVC's run cache from restoring the
receipt without the side effect): it verifies that the store still holds what its receipt claims and
redoes the work only when it does not. The receipt is cleared before the work starts and written
after it ends, so a receipt on disk always means finished work.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def read(path: str | Path) -> dict | None:
    """The receipt, or None when there is none or it cannot be read (a half-written one counts as none)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def clear(path: str | Path) -> None:
    Path(path).unlink(missing_ok=True)


def write(path: str | Path, receipt: dict) -> None:
    """Atomically: a kill leaves the old receipt or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer killed before its rename
        if owner_gone(stale.name.removeprefix(f".{path.name}.").removesuffix(".tmp")):
            stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(receipt, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (other users' count as alive). A zombie
    counts as gone: it can write nothing more, and in a container whose first process does not reap
    orphans a killed stage stays a zombie for good."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (macOS) or gone since
        return False
    return stat[stat.rindex(")") + 2:][:1] in ("Z", "X")


def owner_gone(pid: str) -> bool:
    """For temp files and dirs named after the process writing them: whether that process is gone (a
    name with no pid counts as gone), so the debris a killed writer left may be removed."""
    return not (pid.isdigit() and pid_alive(int(pid)))
