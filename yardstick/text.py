"""Noisy catalog text for an icon product: invented brands (non-ASCII too), ALL-CAPS titles, bracketed
promotions, model codes, tag lists, misspellings, thin or empty descriptions, and visual words mixed
into marketing sentences."""
from __future__ import annotations

import numpy as np

from yardstick.objects import BRANDS, MARKETING, MIXED, PLAIN, PROMOS, TAGS


def _pick(seq, rng: np.random.Generator):
    return seq[int(rng.integers(len(seq)))]


def _code(rng: np.random.Generator) -> str:
    letters = "".join(chr(int(c)) for c in rng.integers(65, 91, size=2))
    return f"{letters}-{int(rng.integers(100, 9999))}"


def _misspell(word: str, rng: np.random.Generator) -> str:
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 2))
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def title(obj: str, colour: str, rng: np.random.Generator) -> tuple[str, str]:
    """-> (title, brand). The object's name is always there, possibly misspelt or upper-cased."""
    brand = _pick(BRANDS, rng)
    name = obj.title()
    style = int(rng.integers(5))
    if style == 0:
        return f"{_pick(PROMOS, rng)} {brand} {name} ({_code(rng)})", brand
    if style == 1:
        return f"{brand} {name} {_code(rng)}".upper(), brand
    if style == 2:
        words = name.split()
        words[-1] = _misspell(words[-1], rng)
        return f"{brand} {' '.join(words)} - {colour.title()}", brand
    if style == 3:
        tags = " | ".join(str(t) for t in rng.choice(TAGS, size=3, replace=False))
        return f"{brand} {name} | {tags}", brand
    return f"{name} by {brand}, {colour}", brand


def description(obj: str, colour: str, rng: np.random.Generator) -> str:
    """Empty (10%), marketing only (15%), else marketing with one sentence naming colour and object."""
    u = rng.random()
    if u < 0.10:
        return ""
    marketing = [str(s) for s in rng.choice(MARKETING, size=2, replace=False)]
    if u < 0.25:
        return marketing[0]
    visual = _pick(MIXED if rng.random() < 0.5 else PLAIN, rng).format(colour=colour, object=obj,
                                                                        Object=obj.capitalize())
    sentences = [marketing[0], visual, marketing[1]]
    if rng.random() < 0.4:
        return "<p>" + "</p><p>".join(sentences) + "</p>"
    return " ".join(sentences)
