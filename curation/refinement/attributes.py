"""Visual attributes (colours, accents, patterns, materials, shapes) found in a product's metadata
by the lexicons, field by field in trust order. The rules backend builds its queries from them."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from curation.refinement.guards import non_visual_hits, non_visual_regexes
from curation.refinement.lexicon import words
from curation.refinement.text import stem, tokens


@dataclass(frozen=True)
class Attributes:
    """Visual attributes found in one product's metadata, each list in priority order."""

    colours: tuple[str, ...] = ()    # main colour first
    accents: tuple[str, ...] = ()    # phrases: "white striped pattern", "white stripes", "gold trim"
    patterns: tuple[str, ...] = ()   # patterns not already inside an accent phrase
    materials: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()
    nouns: tuple[str, ...] = ()      # title words no list knows (the object: "violin", "lantern")


# Clauses: sentence ends, commas, colons and list separators (HTML often drops the full stops).
_CLAUSE = re.compile(r"[.!?;:,|()\[\]]\s+|[.!?;:,|()\[\]]$|\n+")


def _until_cue(toks: list[str]) -> list[str]:
    cut = next((i for i, t in enumerate(toks) if t in words("context_cues")), len(toks))
    return toks[:cut]


def _scan(toks: list[str], found: dict[str, list[str]], accent_source: bool) -> None:
    """One left-to-right pass over a token list, appending attributes to `found` (first wins)."""
    i = 0
    while i < len(toks):
        t, nxt = toks[i], toks[i + 1] if i + 1 < len(toks) else ""
        if t in words("colours") or (t in words("colour_modifiers") and nxt in words("colours")):
            colour = f"{t} {nxt}" if t in words("colour_modifiers") else t
            i += 2 if t in words("colour_modifiers") else 1
            after = toks[i] if i < len(toks) else ""
            then = toks[i + 1] if i + 1 < len(toks) else ""
            if after in words("patterns") and after not in ("solid", "plain") and not _not_a_pattern(after, then):
                pattern, i = _pattern_at(toks, i)
                found["accents"].append(f"{colour} {pattern}")
            elif after in words("accent_nouns"):
                found["accents"].append(f"{colour} {after}")
                i += 1
            elif after in words("materials") and then in words("accent_nouns"):  # "tan leather trim"
                found["accents"].append(f"{colour} {after} {then}")
                i += 2
            else:
                found["accent_colours" if accent_source else "colours"].append(colour)
            continue
        if t in words("patterns") and not _not_a_pattern(t, nxt):
            pattern, i = _pattern_at(toks, i)
            # "stripes in white" / "striped (white on red)" -> an accent phrase, like "white stripes"
            if i + 1 < len(toks) and toks[i] == "in" and toks[i + 1] in words("colours"):
                found["accents"].append(f"{toks[i + 1]} {pattern}")
                i += 2
            elif i + 1 < len(toks) and toks[i] in words("colours") and toks[i + 1] == "on":
                found["accents"].append(f"{toks[i]} {pattern}")
                i += 2
            else:
                found["patterns"].append(pattern)
            continue
        for key in ("materials", "shapes"):
            if t in words(key):
                found[key].append(t)
                break
        i += 1


def _pattern_at(toks: list[str], i: int) -> tuple[str, int]:
    """The pattern phrase starting at toks[i], as the text words it, and the index after it."""
    start, i = i, i + 1
    if toks[start] == "polka" and i < len(toks) and toks[i] in ("dots", "dot", "dotted"):
        i += 1
    if i < len(toks) and toks[i] in ("pattern", "print"):  # "checked pattern in beige", "gingham print"
        i += 1
    return " ".join(toks[start:i]), i


def _not_a_pattern(word: str, nxt: str) -> bool:
    """"solid oak" / "plain glass" name a material, "check out" is a verb."""
    return (word in ("solid", "plain") and nxt in words("materials")) or (word == "check" and nxt == "out")


def extract_attributes(sources: list[tuple[str, str]], ignore: frozenset[str] = frozenset(),
                       max_nouns: int = 4, product_type: str = "") -> Attributes:
    """Attributes from (field name, clean text) pairs, highest-priority field first.

    Every field is cut into fragments at clause marks and around non-visual spans, so a marketing
    phrase costs only itself, never the visual words beside it (phrase by phrase); in the description
    a context cue cuts the rest of its clause. A field whose name mentions "accent" gives accent
    colours that pair with the first free pattern. Title words no list knows are kept as nouns (the
    object: "violin", "lantern") unless brand-like fields or `ignore` (words common across the
    catalog's product types) name them; so is a description word right after a listed visual word
    (the head of "red printer") or right before the type or a title noun ("cappuccino cup"). A
    colour column's value is a colour even when no list has it ("canary").
    """
    found: dict[str, list[str]] = {k: [] for k in
                                   ("colours", "accent_colours", "accents", "patterns", "materials", "shapes")}
    skip = set(ignore) | {t for name, text in sources if _is_brand_field(name) for t in tokens(text)}
    nouns: list[str] = []
    objects = set(tokens(product_type))
    for name, text in sources:
        if _is_brand_field(name):
            continue
        if _is_colour_field(name) and text and not any(t in words("colours") for t in tokens(text)):
            found["colours"].append(" ".join(tokens(text)[:3]))  # a colour column names a colour, listed or not
            continue
        for toks in fragments(text, description=name == "description"):
            _scan(toks, found, accent_source="accent" in name.lower())
            if name == "title":
                nouns += [t for t in toks if _is_noun(t) and t not in skip]
                objects |= set(nouns)
            elif name == "description":  # "red printer", "brass lantern"; "cappuccino cup" of a cup
                nouns += [t for prev, t in zip(toks, toks[1:]) if prev in _visual() and _is_noun(t) and t not in skip]
                nouns += [prev for prev, t in zip(toks, toks[1:])
                          if t in objects and _is_noun(prev) and prev not in skip]
    return _assemble(found, list(dict.fromkeys(nouns))[:max_nouns])


def fragments(text: str, description: bool = False) -> list[list[str]]:
    """Token lists of `text` between clause marks and non-visual or code-like spans."""
    out = []
    for clause in _CLAUSE.split(text):
        pieces = [clause]
        for rx in non_visual_regexes():
            pieces = [q for piece in pieces for q in rx.split(piece)]
        cut = False
        for piece in pieces:
            toks = tokens(piece)
            if description:
                kept = _until_cue(toks)
                cut, toks = len(kept) < len(toks), kept
            if toks:
                out.append(toks)
            if cut:
                break
    return out


@functools.cache
def _listed() -> frozenset[str]:
    """Every listed word: a title word outside them that survives the deny-lists is a noun to keep."""
    return frozenset().union(*(words(name) for name in ("colours", "colour_modifiers", "patterns", "materials",
                                                        "shapes", "template_words", "stopwords", "marketing")))


@functools.cache
def _visual() -> frozenset[str]:
    return frozenset().union(*(words(name) for name in ("colours", "patterns", "materials", "shapes")))


def _is_brand_field(name: str) -> bool:
    return any(b in name.lower() for b in words("brand_fields"))


def _is_colour_field(name: str) -> bool:
    return any(c in name.lower() for c in ("colour", "color")) and "accent" not in name.lower()


def _is_noun(word: str) -> bool:
    letters = word.replace("-", "").replace("'", "")
    return 3 <= len(letters) <= 30 and letters.isalpha() and word not in _listed() and not non_visual_hits(word)


def _dedup(phrases: list[str]) -> list[str]:
    """Keep the first of phrases that say the same ("white stripes" ~ "white striped pattern")."""
    seen, out = set(), []
    for phrase in phrases:
        key = tuple(stem(w) for w in phrase.split() if w != "pattern")
        if key not in seen:
            seen.add(key)
            out.append(phrase)
    return out


def _assemble(found: dict[str, list[str]], nouns: list[str]) -> Attributes:
    accents, patterns = _dedup(found["accents"]), list(dict.fromkeys(found["patterns"]))
    for colour in dict.fromkeys(found["accent_colours"]):
        if patterns:  # an accent colour given in its own field pairs with the first free pattern
            accents.append(f"{colour} {patterns.pop(0)}")
        else:
            found["colours"].append(colour)
    in_accents = {stem(w) for a in accents for w in a.split()}
    first = found["colours"][:1]
    colours = [c for c in dict.fromkeys(found["colours"]) if stem(c) not in in_accents or c in first]
    return Attributes(
        colours=tuple(colours), accents=tuple(accents),
        patterns=tuple(p for p in patterns if not {stem(w) for w in p.split()} <= in_accents),
        materials=tuple(dict.fromkeys(found["materials"])), shapes=tuple(dict.fromkeys(found["shapes"])),
        nouns=tuple(nouns))
