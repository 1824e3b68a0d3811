"""Shopper queries for the demo catalog: short, lower-case, in the canonical vocabulary words."""
from __future__ import annotations

import numpy as np

from demo_catalog.draw import Look

NOUN_VARIANTS = {"boot", "sneaker", "tote", "backpack", "cap", "armchair", "stool", "desk"}
PATTERN_ADJ = {"striped": ("striped", "stripe"), "dotted": ("dotted", "polka dot"),
               "checked": ("checked", "check"), "solid": ("solid", "plain")}
PATTERN_NOUN = {"striped": ("stripes",), "dotted": ("dots", "polka dots"), "checked": ("checks",)}
QUERY_FORMS = {  # attribute sets a shopper states, with several phrasings each
    ("colour",): ("{c} {t}", "{t} in {c}", "{t} {c}"),
    ("colour", "pattern"): ("{c} {pa} {t}", "{pa} {c} {t}", "{c} {t} with {pn}", "{t} {c} {pa}"),
    ("colour", "pattern", "variant"): ("{v} {c} {pa} {t}", "{c} {pa} {v} {t}", "{v} {t} {c} with {pn}"),
    ("colour", "pattern", "accent"): ("{c} {t} with {a} {pn}", "{c} and {a} {pa} {t}", "{a} {pa} {c} {t}"),
    ("pattern", "variant", "accent"): ("{v} {t} with {a} {pn}", "{v} {t}, {a} {pn}"),
    ("colour", "variant"): ("{v} {c} {t}", "{c} {v} {t}"),
}


def _pick(rng: np.random.Generator, options):
    return options[rng.integers(len(options))]


def query_text(look: Look, attrs: tuple[str, ...], rng: np.random.Generator) -> str:
    """A lower-case user query stating exactly `attrs` (+ the type) of `look`."""
    t, v = look.product_type, look.variant
    if "variant" in attrs and v in NOUN_VARIANTS:  # "red striped boot", not "boot red striped shoe"
        t, v = ("desk lamp" if v == "desk" else v), ""
    pa = _pick(rng, PATTERN_ADJ[look.pattern])
    pn = _pick(rng, PATTERN_NOUN.get(look.pattern, ("",)))
    form = _pick(rng, QUERY_FORMS[attrs])
    if "with {pn}" in form and look.pattern == "solid":
        form = form.replace("with {pn}", "{pa}")
    text = form.format(c=look.colour, t=t, pa=pa, pn=pn, v=v, a=look.accent)
    return " ".join(text.split()).lower()
