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
    leftovers: tuple[str, ...] = ()  # other title words, the last resort for padding


# Description clauses: sentence ends, commas, colons and list separators (HTML often drops the full stops).
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
                found["patterns"].append(pattern.removesuffix(" pattern"))
            continue
        for key in ("materials", "shapes"):
            if t in words(key):
                found[key].append(t)
                break
        i += 1


def _pattern_at(toks: list[str], i: int) -> tuple[str, int]:
    """The pattern phrase starting at toks[i] and the index after it ("polka dots" is one phrase)."""
    word, i = toks[i], i + 1
    if word == "polka" and i < len(toks) and toks[i] in ("dots", "dot", "dotted"):
        word, i = "polka dots", i + 1
    if i < len(toks) and toks[i] in ("pattern", "print"):  # "checked pattern in beige"
        i += 1
    return (word if word in words("pattern_nouns") or word == "polka dots" else f"{word} pattern"), i


def _not_a_pattern(word: str, nxt: str) -> bool:
    """"solid oak" / "plain glass" name a material, "check out" is a verb."""
    return (word in ("solid", "plain") and nxt in words("materials")) or (word == "check" and nxt == "out")


def extract_attributes(sources: list[tuple[str, str]]) -> Attributes:
    """Attributes from (field name, clean text) pairs, highest-priority field first.

    Description clauses with a non-visual term are skipped, and a context cue cuts the rest of its
    clause; a field whose name mentions "accent" gives accent colours that pair with the first free
    pattern; words of brand-like fields never pad a query.
    """
    found: dict[str, list[str]] = {k: [] for k in
                                   ("colours", "accent_colours", "accents", "patterns", "materials", "shapes")}
    leftovers: list[str] = []
    for name, text in sources:
        parts = _CLAUSE.split(text) if name == "description" else [text]
        for part in parts:
            toks = tokens(part)
            if name == "description":
                if any(rx.search(part) for rx in non_visual_regexes()[:-1]):  # codes alone don't taint a clause
                    continue
                toks = _until_cue(toks)
            _scan(toks, found, accent_source="accent" in name.lower())
            if name == "title":
                leftovers += [t for t in toks if _is_leftover(t)]
    brandish = {t for name, text in sources if any(b in name.lower() for b in words("brand_fields"))
                for t in tokens(text)}
    return _assemble(found, [t for t in leftovers if t not in brandish])


@functools.cache
def _known() -> frozenset[str]:
    """Every listed word: what is left of a title besides them is the last resort for padding."""
    return frozenset().union(*(words(name) for name in ("colours", "colour_modifiers", "patterns", "materials",
                                                        "shapes", "template_words", "stopwords")))


def _is_leftover(word: str) -> bool:
    return re.fullmatch(r"[a-z]{3,}", word) is not None and word not in _known() and not non_visual_hits(word)


def _dedup(phrases: list[str]) -> list[str]:
    """Keep the first of phrases that say the same ("white stripes" ~ "white striped pattern")."""
    seen, out = set(), []
    for phrase in phrases:
        key = tuple(stem(w) for w in phrase.split() if w != "pattern")
        if key not in seen:
            seen.add(key)
            out.append(phrase)
    return out


def _assemble(found: dict[str, list[str]], leftovers: list[str]) -> Attributes:
    accents, patterns = _dedup(found["accents"]), list(dict.fromkeys(found["patterns"]))
    for colour in dict.fromkeys(found["accent_colours"]):
        if patterns:  # an accent colour given in its own field pairs with the first free pattern
            p = patterns.pop(0)
            noun = p in words("pattern_nouns") or p == "polka dots"
            accents.append(f"{colour} {p if noun else p + ' pattern'}")
        else:
            accents.append(f"{colour} accents")
    in_accents = {stem(w) for a in accents for w in a.split()}
    colours = [c for c in dict.fromkeys(found["colours"]) if stem(c) not in in_accents or c == found["colours"][0]]
    return Attributes(
        colours=tuple(colours), accents=tuple(accents),
        patterns=tuple(p for p in patterns if not {stem(w) for w in p.split()} <= in_accents),
        materials=tuple(dict.fromkeys(found["materials"])), shapes=tuple(dict.fromkeys(found["shapes"])),
        leftovers=tuple(dict.fromkeys(leftovers)))
