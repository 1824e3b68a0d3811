"""The refiner's word lists, read from the data files in lexicons/ (one file per list).

Lists are generic, written for real catalogs: edit or extend the files to suit a catalog's language
without touching code. Each file is read once per process, on first use, never at import.
"""
from __future__ import annotations

import functools
from pathlib import Path

LEXICON_DIR = Path(__file__).parent / "lexicons"


@functools.cache
def lines(name: str) -> tuple[str, ...]:
    """The non-empty, non-comment lines of lexicons/<name>.txt, stripped."""
    path = LEXICON_DIR / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"no lexicon {name!r} at {path}")
    text = path.read_text(encoding="utf-8").splitlines()
    return tuple(s for s in (line.strip() for line in text) if s and not s.startswith("#"))


@functools.cache
def words(name: str) -> frozenset[str]:
    """Every whitespace-separated word of lexicons/<name>.txt."""
    return frozenset(w for line in lines(name) for w in line.split())


@functools.cache
def pairs(name: str) -> dict[str, str]:
    """lexicons/<name>.txt lines `<word> <replacement>` as a dict."""
    out = {}
    for line in lines(name):
        key, value = line.split()
        out[key] = value
    return out
