"""The guards every refined query must pass, whatever wrote it: the word window, no non-visual terms
or codes, no word absent from the product's metadata, the product type present.

`check_guards` returns structured `Problem`s (kind + the offending detail); their text is what the
Evaluator says and the audit trail records. Non-visual terms, words absent from the metadata and a
missing product type are hard: a query that keeps one is not used. The word window is soft: a target
the Evaluator reports, never a reason to invent words. The validate stage rejects the same non-visual terms
(`non_visual_patterns`), so the refiner and validation never disagree.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from curation.refinement.lexicon import lines, words
from curation.refinement.text import stem, tokens

# Code-like tokens (SKUs, model numbers, sizes such as "XL-42"): anything holding a digit. Anchored
# at a token's start, so a long unbroken string costs linear, not quadratic, time.
CODE_PATTERN = r"(?<!\S)\S*\d\S*"

TOO_SHORT, TOO_LONG, NON_VISUAL, UNGROUNDED, TYPE_MISSING = (
    "too_short", "too_long", "non_visual", "ungrounded", "type_missing")


@dataclass(frozen=True)
class Window:
    min_words: int
    max_words: int


@dataclass(frozen=True)
class Problem:
    kind: str     # one of the kinds above
    detail: str   # the offending word or span, the word count, or the product type
    message: str  # what the Evaluator says

    def __str__(self) -> str:
        return self.message

    @property
    def hard(self) -> bool:
        return self.kind not in (TOO_SHORT, TOO_LONG)


def passes(problems: list[Problem]) -> bool:
    """No hard problem among `problems`."""
    return not any(p.hard for p in problems)


@functools.cache
def non_visual_patterns() -> tuple[str, ...]:
    """Case-insensitive, word-bounded regexes for text no image can show (lexicons/non_visual.txt)."""
    return tuple(rf"(?i)\b(?:{p})\b" for p in lines("non_visual"))


@functools.cache
def non_visual_regexes() -> tuple[re.Pattern, ...]:
    """The non-visual terms, compiled, then the code pattern last."""
    return tuple(re.compile(p) for p in non_visual_patterns()) + (re.compile(CODE_PATTERN),)


def non_visual_hits(text: str) -> list[str]:
    """Every non-visual or code-like span in `text`, in order."""
    return [m.group(0) for rx in non_visual_regexes() for m in rx.finditer(text)]


def grounded(word: str, index: frozenset[str]) -> bool:
    if word in words("template_words") or word in index or stem(word) in index:
        return True
    parts = word.split("-")
    return len(parts) > 1 and all(grounded(p, index) for p in parts)


def check_guards(query: str, product_type: str, index: frozenset[str], window: Window) -> list[Problem]:
    """Problems with `query` (empty list = passes). Word count is whitespace tokens, as in validation."""
    problems = []
    n = len(query.split())
    if n < window.min_words:
        problems.append(Problem(TOO_SHORT, str(n), f"too short: {n} words, need at least {window.min_words}"))
    if n > window.max_words:
        problems.append(Problem(TOO_LONG, str(n), f"too long: {n} words, allowed at most {window.max_words}"))
    problems += [Problem(NON_VISUAL, hit, f"non-visual term: {hit!r}") for hit in dict.fromkeys(non_visual_hits(query))]
    query_words = tokens(query)
    problems += [Problem(UNGROUNDED, w, f"word not in the product metadata: {w!r}")
                 for w in dict.fromkeys(query_words) if not grounded(w, index)]
    present = {stem(w) for w in query_words} | set(query_words)
    missing = [w for w in tokens(product_type) if w not in present and stem(w) not in present]
    if missing:
        problems.append(Problem(TYPE_MISSING, product_type, f"product type missing: {product_type!r}"))
    return problems
