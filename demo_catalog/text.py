"""Noisy demo catalog text (brand, title, HTML description, colour column) from clean attributes.

Each product gets one surface name per attribute from the demo's own lexicon ("crimson", "plaid",
"floor-length"), a description kind (normal, thin, empty, mixed) and a home for every attribute:
title, description, the colour column only, or nowhere (the image alone shows it). All mentions in
title and description use the product's one surface; the colour column may use another name.
The text truth is read back from the finished text, so a blanked title cannot leave a stale truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demo_catalog import lexicon as lex
from demo_catalog.draw import Look

ATTRS = ("colour", "accent", "pattern", "variant")
KINDS = {"normal": 0.8, "thin": 0.1, "empty": 0.05, "mixed": 0.05}
IMAGE_ONLY = {"colour": 0.1, "pattern": 0.1, "variant": 0.05}  # attribute stated nowhere in the text
COLUMN_ONLY = 0.1           # colour stated in the structured colour column alone
ACCENT_UNSAID = 0.15        # a stated pattern whose second colour goes unmentioned
IN_TITLE = {"colour": 0.55, "pattern": 0.35, "variant": 0.6}
CANONICAL = 0.4             # share of surfaces that are the vocabulary word itself


@dataclass(frozen=True)
class Wording:
    kind: str                   # description kind
    surface: dict               # attr -> lower-case phrase, for attributes title / description state
    pattern_noun: bool          # the pattern surface is a noun ("stripes"), not an adjective ("striped")
    variant_noun: bool          # the variant surface replaces the product noun ("ankle boots")
    title: frozenset            # attributes the title names (accent goes with pattern)
    desc: frozenset             # attributes the description names
    column: str                 # colour column value


def _pick(rng: np.random.Generator, options):
    return options[rng.integers(len(options))]


def _cap(text: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))


def _surface(rng: np.random.Generator, names: tuple) -> str:
    return names[0] if rng.uniform() < CANONICAL else _pick(rng, names[1:])


def _homes(kind: str, said: list[str], rng: np.random.Generator) -> tuple[set, set]:
    """Split the stated attributes between title and description, as the description kind allows."""
    title = {a for a in said if rng.uniform() < IN_TITLE[a]}
    desc = {a for a in said if a not in title or rng.uniform() < 0.5}
    if kind in ("thin", "empty"):  # a thin line carries at most one attribute, an empty one none
        one = {_pick(rng, said)} if said and kind == "thin" and rng.uniform() < 0.5 else set()
        title, desc = title | (set(said) - one), one
    if kind == "mixed" and not desc:  # every mixed sentence carries a visual word
        desc = {_pick(rng, said)}
    return title, desc


def plan_wording(look: Look, rng: np.random.Generator) -> Wording:
    """Description kind, surface names and where each attribute is stated."""
    kind = list(KINDS)[rng.choice(len(KINDS), p=list(KINDS.values()))]
    u = rng.uniform() - IMAGE_ONLY["colour"]
    colour_home = "image" if u < 0 else "column" if u < COLUMN_ONLY else "text"
    said = [a for a in ("pattern", "variant") if rng.uniform() >= IMAGE_ONLY[a]]
    said = ["colour"] * (colour_home == "text") + said
    if kind == "mixed" and not said:  # every mixed sentence carries a visual word
        said = ["variant"]
    key = (look.product_type, look.variant)
    forms = [(s, False) for s in lex.PATTERN_ADJ[look.pattern]] + \
        [(s, True) for s in lex.PATTERN_NOUNS[look.pattern]]
    pattern, pattern_noun = forms[0] if rng.uniform() < CANONICAL else _pick(rng, forms[1:])
    surface = {"colour": _surface(rng, lex.COLOUR_NAMES[look.colour]), "pattern": pattern,
               "variant": _surface(rng, lex.VARIANT_NAMES[key])}
    column_name = surface["colour"] if rng.uniform() < 0.5 else look.colour
    column = {"image": "", "column": column_name, "text": column_name if rng.uniform() < 0.5 else ""}[colour_home]
    column = _pick(rng, (_cap, str.upper, str.lower, _cap))(column)
    if "pattern" in said and look.accent and rng.uniform() >= ACCENT_UNSAID:
        surface["accent"] = _surface(rng, lex.COLOUR_NAMES[look.accent])
    surface = {a: s for a, s in surface.items() if a in said or (a == "accent" and "pattern" in said)}
    title, desc = _homes(kind, said, rng)
    return Wording(kind, surface, pattern_noun, key in lex.NOUN_VARIANTS, frozenset(title), frozenset(desc), column)


def look_phrase(w: Wording, attrs, noun: str, rng: np.random.Generator) -> str:
    """Lower-case noun phrase naming `attrs` of the product: 'crimson and white gingham maxi dress'."""
    s = w.surface
    c = s["colour"] if "colour" in attrs else ""
    v = s["variant"] if "variant" in attrs else ""
    head = v if v and w.variant_noun else f"{v} {noun}"
    if "pattern" not in attrs:
        options = [f"{c} {head}"]
    elif w.pattern_noun:
        p = f"{s['accent']} {s['pattern']}" if "accent" in s else s["pattern"]
        options = [f"{c} {head} with {p}", f"{head} in {c} with {p}"] if c else [f"{head} with {p}"]
    elif "accent" in s:
        p, a = s["pattern"], s["accent"]
        options = [f"{c} and {a} {p} {head}", f"{c} & {a} {p} {head}", f"{p} {head}, {a} on {c}"] if c else \
            [f"{p} {head} with {a} accents", f"{p} {head} with {a} detailing"]
    elif s["pattern"] in lex.PATTERN_ADJ["solid"]:
        options = [f"{s['pattern']} {c} {head}", f"{c} {head}, {s['pattern']}"] if c else [f"{s['pattern']} {head}"]
    else:
        options = [f"{c} {s['pattern']} {head}", f"{s['pattern']} {c} {head}"]
    return " ".join(_pick(rng, options).split()).lower()


def pattern_phrase(w: Wording, with_colour: bool, rng: np.random.Generator) -> str:
    """Noun phrase for the pattern (with its accent, and the main colour when asked): 'white stripes on navy'."""
    s = w.surface
    p, a, c = s["pattern"], s.get("accent", ""), s["colour"] if with_colour else ""
    if w.pattern_noun:
        base = f"{a} {p}".strip()
        options = [f"{base} on {c}", f"{c} with {base}"] if c else [base]
    elif a:
        options = [f"{c} and {a} {p}", f"{p} print ({a} on {c})"] if c else [f"{a} {p} print", f"{p} print in {a}"]
    elif p in lex.PATTERN_ADJ["solid"]:
        options = [f"{p} {c}", f"{p} {c} finish"] if c else [f"{p} finish", f"{p} look", f"{p} design"]
    else:
        options = [f"{c} {p} print", f"{p} {c} finish"] if c else [f"{p} print", f"{p} pattern", f"{p} design"]
    return " ".join(_pick(rng, options).split()).lower()


def misspell(text: str, rng: np.random.Generator, rate: float) -> str:
    """Misspell some marketing words (never an attribute surface: none is a MISSPELL key), keeping the case."""
    def swap(m):
        word = m.group(0)
        if word.lower() not in lex.MISSPELL or rng.uniform() >= rate:
            return word
        bad = _pick(rng, lex.MISSPELL[word.lower()])
        return bad.upper() if word.isupper() else bad.capitalize() if word[0].isupper() else bad
    return lex.WORD.sub(swap, text)


def _code(rng: np.random.Generator, digits: int = 4) -> str:
    letters = "".join(chr(65 + int(i)) for i in rng.integers(0, 26, 2))
    return f"{letters}-{int(rng.integers(10 ** (digits - 1), 10 ** digits))}"


def title(look: Look, w: Wording, brand: str, noun: str, rng: np.random.Generator) -> str:
    """Marketplace title: brand, audience, promotions, model codes, tag lists, caps and typos around the look."""
    fashion = look.product_type in lex.FASHION
    attrs, suffix = set(w.title), ""
    if "colour" in attrs and rng.uniform() < 0.3:  # "... Dress - Crimson"
        attrs.discard("colour")
        suffix = _pick(rng, (" - {C}", " ({c})", ", {C}")).format(C=_cap(w.surface["colour"]), c=w.surface["colour"])
    phrase = _cap(look_phrase(w, attrs, noun.lower(), rng)) + suffix
    who = _pick(rng, lex.WHO if fashion else lex.HOME_STYLE)
    size = _pick(rng, lex.SIZES_FASHION if fashion else lex.SIZES_HOME)
    mkt, code, year = _pick(rng, lex.MARKETING), _code(rng), int(rng.integers(2019, 2026))
    text = _pick(rng, (f"{brand} {who} {phrase} - {size}", f"{mkt} {phrase} by {brand}, {size}",
                       f"{brand} {phrase} {code}", f"{phrase} | {brand} | {year} New Arrival",
                       f"{who} {mkt} {phrase} {size} Model {code}", f"{brand}® {phrase} - Free Shipping",
                       f"{mkt} {who} {phrase}"))
    if rng.uniform() < 0.2:
        text = _pick(rng, lex.PROMOS).format(year=year) + " " + text
    if rng.uniform() < 0.12:
        tags = [lex.TAGS_FASHION, lex.TAGS_HOME][not fashion]
        text += ", " + ", ".join([look.product_type, *(tags[i] for i in rng.choice(len(tags), 3, replace=False))])
    text = misspell(text, rng, 0.35)
    return text.upper() if rng.uniform() < 0.1 else text


def _fragments(look: Look, w: Wording, noun: str, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(sentence kind, phrase) pairs covering every attribute the description states."""
    here = w.desc
    if len(here) >= 2 and rng.uniform() < 0.35:
        return [("look", look_phrase(w, here, noun, rng))]
    out = []
    joined = "colour" in here and "pattern" in here and rng.uniform() < 0.5  # "white stripes on navy"
    if "colour" in here and not joined:
        out.append(("colour", w.surface["colour"]))
    if "pattern" in here:
        out.append(("pattern", pattern_phrase(w, joined, rng)))
    if "variant" in here:
        v = w.surface["variant"]
        out.append(("variant", v if w.variant_noun else f"{v} {noun}"))
    return out


def _sentence(kind: str, phrase: str, voice: dict, rng: np.random.Generator) -> str:
    k = _pick(rng, ("2,000", "12,400", "500+", "3k", "1,250"))
    return _pick(rng, voice[kind]).format(x=phrase, X=_cap(phrase), k=k, year=int(rng.integers(2019, 2026)))


def _noise(look: Look, rng: np.random.Generator) -> list[str]:
    # care / feel / specs of the kind of product, then commerce boilerplate
    own = lex.NOISE_FASHION if look.product_type in lex.FASHION else lex.NOISE_HOME
    picks = [own[i] for i in rng.choice(len(own), int(rng.integers(1, 4)), replace=False)] + \
        [lex.NOISE_ANY[i] for i in rng.choice(len(lex.NOISE_ANY), int(rng.integers(2, 5)), replace=False)]
    return [s.format(year=int(rng.integers(2019, 2026)), sku=_code(rng, 5)) for s in picks]


def _html(parts: list[str], rng: np.random.Generator) -> str:
    style = int(rng.integers(4))
    if style == 0 and len(parts) > 1:
        half = len(parts) // 2
        return "<p>" + " ".join(parts[:half]) + "</p><ul>" + "".join(f"<li>{p}</li>" for p in parts[half:]) + "</ul>"
    if style == 1:
        return " | ".join(parts)
    if style == 2:
        return "<br>".join(parts) + "<br>"
    return "<div><b>Details</b>: " + " ".join(parts) + "&nbsp;</div>"


def description(look: Look, w: Wording, noun: str, rng: np.random.Generator) -> str:
    """Empty, one thin line, all-marketing-with-visual-words (mixed), or visual lines among care,
    shipping, warranty and SKU noise in HTML (normal)."""
    if w.kind == "empty":
        return ""
    frags = _fragments(look, w, noun, rng)
    if w.kind == "thin":
        line = _pick(rng, lex.THIN_WITH).format(x=frags[0][1], X=_cap(frags[0][1])) if frags else \
            _pick(rng, lex.THIN_LINES)
        return misspell(line, rng, 0.3)
    voices = [lex.MIXED] if w.kind == "mixed" else [lex.SPEC, lex.PROSE, lex.PROSE, lex.MIXED]
    parts = [_sentence(kind, phrase, _pick(rng, voices), rng) for kind, phrase in frags]
    if w.kind == "normal":
        parts += _noise(look, rng)
    parts = [parts[i] for i in rng.permutation(len(parts))]
    return misspell(_html(parts, rng), rng, 0.15)


def product_text(look: Look, rng: np.random.Generator) -> tuple[dict, Wording]:
    """{'brand', 'title', 'description', 'colour'} of one product, and how it was worded."""
    brand = _pick(rng, lex.BRANDS)
    w = plan_wording(look, rng)
    noun = _pick(rng, lex.NOUN[look.product_type])
    text = {"brand": brand, "title": title(look, w, brand, noun, rng)}
    text["description"] = description(look, w, noun.lower(), rng)
    return {**text, "colour": w.column}, w


def text_truth(w: Wording, title_text: str, desc: str, column: str) -> dict:
    """Per attribute, the first surface the finished text uses (title, then description, then the colour
    column), '' when it is stated nowhere; plus the description kind."""
    words = lex.tokens(title_text) + ["|"] + lex.tokens(desc)  # '|' is no token, so no phrase spans the two
    out = {f"{a}_text": w.surface[a] if a in w.surface and lex.has_phrase(words, w.surface[a]) else ""
           for a in ATTRS}
    if not out["colour_text"] and column:
        out["colour_text"] = column.lower()
    return {**out, "description_kind": w.kind}
