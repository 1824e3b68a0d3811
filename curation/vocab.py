"""Visual and non-visual vocabularies, and the guards every refined query must pass.

The vocabularies are generic (real catalogs, not only the demo): the rules refiner keeps only words
that name something a camera can see (colour, pattern, material look, shape) and the guards reject
words no image can show (shipping, warranty, fit, softness, SKUs). `validation` builds its regex
list from NON_VISUAL_PATTERNS, so the refiner and the validate stage reject the same things.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


COLOURS = _words("""
red blue green yellow black white pink orange purple brown navy beige grey gray teal turquoise
maroon burgundy olive cream ivory tan khaki gold golden silver charcoal lavender lilac mint coral
salmon peach mustard magenta fuchsia violet indigo cyan aqua crimson scarlet rust copper bronze
taupe camel sand chocolate wine plum emerald sage mauve blush nude ochre cobalt azure amber
champagne pewter ecru lime jade rose off-white multicolour multicolor multicoloured multicolored
""")
# Words that only shade a following colour ("dark green"), never used alone.
COLOUR_MODIFIERS = _words("light dark pale bright deep pastel neon muted dusty")

PATTERNS = _words("""
solid plain striped stripes stripe pinstriped pinstripe dotted dots dot polka spotted spots
checked check checks checkered checkerboard plaid tartan gingham houndstooth herringbone floral florals
flowered geometric paisley chevron argyle camo camouflage leopard zebra tie-dye ombre gradient
abstract printed graphic embroidered colourblock colorblock colour-block color-block marbled
speckled textured ribbed quilted woven patterned mosaic damask ikat lattice zigzag diamond
""")
# Pattern words that are already nouns: "with white stripes", not "with white stripes pattern".
PATTERN_NOUNS = _words("stripes dots spots checks florals")

MATERIALS = _words("""
leather faux-leather suede denim wooden wood oak walnut pine teak bamboo rattan wicker metal
metallic steel chrome brass iron aluminium aluminum glass crystal ceramic porcelain stoneware
earthenware terracotta marble stone concrete knit knitted crochet velvet satin silk linen wool
woollen cashmere tweed corduroy canvas jute straw felt fleece fur faux-fur sherpa lace mesh sheer
sequin sequined glossy matte shiny polished brushed lacquered enamel plastic acrylic rubber
chiffon tulle jersey
""")

SHAPES = _words("""
long short round square tall slim wide sleeveless sleeved long-sleeved short-sleeved boot boots
sneaker sneakers tote backpack cap brimmed wide-brimmed desk armchair stool oval rectangular
circular triangular cylindrical curved angular narrow flat mini midi maxi cropped
oversized a-line wrap pleated flared straight tapered v-neck crew-neck round-neck hooded collared
strapless off-shoulder halter button-down high-top low-top ankle knee-length floor-length heeled
high-heeled platform lace-up slip-on chunky crossbody clutch shoulder bucket beanie fedora
baseball pendant floor tripod arched wingback swivel rocking folding lumbar bolster bulbous squat
handled lidded
""")

# Shape words that are nouns for a kind of the product: they go right before the type ("red desk lamp").
SHAPE_NOUNS = _words("""
boot boots sneaker sneakers tote backpack cap beanie fedora armchair stool clutch pendant desk floor
crossbody bucket baseball wingback bolster lumbar
""")

# Accent nouns after a colour: "white trim", "gold accents".
ACCENT_NOUNS = _words("trim accents accent details detailing piping stitching border edging")

# After these cues a sentence talks about something else ("goes with black jeans") or negates
# ("no print"), so the rest of that sentence does not describe the product.
CONTEXT_CUES = _words("pair pairs paired goes complements complement team not no without never unlike")
# Title words that carry no visual content; kept out of the last-resort padding.
STOPWORDS = _words("""
for to your our you we it its this that by from at as or is are be set pack piece pieces pcs item
items women men womens mens kids unisex collection edition classic modern home brand
""")

BRAND_FIELDS = ("brand", "vendor", "manufacturer", "seller", "maker")

# Connective and template words a query may use although the product's metadata lacks them.
TEMPLATE_WORDS = _words("""
a an the with and in of on featuring pattern trim accents colour color style look finish shape
silhouette design detail details
""")

# Regexes (case-insensitive, word-bounded) for text no image can show; also used by validation.
NON_VISUAL_PATTERNS: tuple[str, ...] = tuple(rf"(?i)\b(?:{p})\b" for p in (
    r"free", r"ship(?:s|ped|ping)?", r"warrant(?:y|ies|ied)", r"guarantee[sd]?", r"skus?",
    r"quick[-\s]?dry(?:ing)?", r"breathable", r"(?:machine[-\s]?)?washable", r"soft(?:ness)?",
    r"comfort(?:able|ably)?", r"comfy", r"durab(?:le|ility)", r"sale", r"discount(?:s|ed)?",
    r"returns?", r"sizes?", r"sizing", r"fit(?:s|ting)?", r"cotton[-\s]?feel", r"price[sd]?",
    r"deals?", r"offers?", r"lightweight", r"waterproof", r"water[-\s]?resistant", r"stretch(?:y)?",
    r"cozy", r"gift(?:s)?", r"premium", r"quality", r"best(?:seller|selling)?", r"new",
    r"hypoallergenic", r"eco[-\s]?friendly", r"sustainabl[ey]", r"easy", r"care",
    r"dishwasher(?:[-\s]?safe)?", r"microwave(?:[-\s]?safe)?", r"authentic", r"genuine",
    r"certified", r"in[-\s]stock", r"order(?:s)?", r"delivery", r"buy", r"limited", r"exclusive",
    r"reviews?", r"money[-\s]?back", r"refunds?", r"moisture[-\s]?wicking", r"wrinkle[-\s]?free",
    r"perfect", r"ideal", r"great", r"sellers?", r"arrivals?", r"(?:machine|hand)[-\s]?wash(?:ed)?",
    r"tumble", r"bleach", r"dry[-\s]?clean(?:ing)?",
))
# Code-like tokens (SKUs, model numbers, sizes such as "XL-42"): anything holding a digit.
CODE_PATTERN = r"\S*\d\S*"
NON_VISUAL_REGEXES = tuple(re.compile(p) for p in NON_VISUAL_PATTERNS) + (re.compile(CODE_PATTERN),)

_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_TAG = re.compile(r"<[^>]*>")
_BLOCK_TAG = re.compile(r"(?i)<\s*/?\s*(?:br|p|li|ul|ol|div|tr|h[1-6])\b[^>]*>")
_SYNONYMS = {"gray": "grey", "color": "colour", "colored": "coloured", "multicolor": "multicolour"}


def clean_text(value: object, keep_lines: bool = False) -> str:
    """Metadata value -> plain text: NaN/None -> "", HTML tags and entities removed, spaces collapsed.

    With keep_lines, block tags (<br>, <li>, <p>, ...) and " | " separators become line breaks, so
    sentence splitting later sees the boundaries the HTML had.
    """
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = str(value)
    if keep_lines:
        text = _BLOCK_TAG.sub("\n", text).replace(" | ", "\n")
    text = html.unescape(_TAG.sub(" ", text))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return ("\n" if keep_lines else " ").join(line for line in lines if line)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def stem(word: str) -> str:
    """Crude suffix folding so "stripes", "striped" and "stripe" ground one another."""
    word = _SYNONYMS.get(word, word)
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and not word.endswith("ss") and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]  # "dott" -> "dot"
    return word.rstrip("e") if len(word) > 3 else word


def non_visual_hits(text: str) -> list[str]:
    """Every non-visual or code-like span in `text`, in order."""
    return [m.group(0) for rx in NON_VISUAL_REGEXES for m in rx.finditer(text)]


def grounding_index(texts: list[str]) -> frozenset[str]:
    """The words (and their stems) a query about this product may use."""
    toks = {t for text in texts for t in tokens(text)}
    parts = {p for t in toks for p in t.split("-")}
    return frozenset(toks | parts | {stem(t) for t in toks | parts})


def _grounded(word: str, index: frozenset[str]) -> bool:
    if word in TEMPLATE_WORDS or word in index or stem(word) in index:
        return True
    parts = word.split("-")
    return len(parts) > 1 and all(_grounded(p, index) for p in parts)


UNGROUNDED = "word not in the product metadata"


@dataclass(frozen=True)
class Window:
    min_words: int
    max_words: int


def check_guards(query: str, product_type: str, index: frozenset[str], window: Window) -> list[str]:
    """Problems with `query` (empty list = passes). Word count is whitespace tokens, as in validation."""
    problems = []
    n = len(query.split())
    if n < window.min_words:
        problems.append(f"too short: {n} words, need at least {window.min_words}")
    if n > window.max_words:
        problems.append(f"too long: {n} words, allowed at most {window.max_words}")
    problems += [f"non-visual term: {hit!r}" for hit in dict.fromkeys(non_visual_hits(query))]
    words = tokens(query)
    ungrounded = [w for w in dict.fromkeys(words) if not _grounded(w, index)]
    problems += [f"{UNGROUNDED}: {w!r}" for w in ungrounded]
    present = {stem(w) for w in words} | set(words)
    missing = [w for w in tokens(product_type) if w not in present and stem(w) not in present]
    if missing:
        problems.append(f"product type missing: {product_type!r}")
    return problems


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
    cut = next((i for i, t in enumerate(toks) if t in CONTEXT_CUES), len(toks))
    return toks[:cut]


def _scan(toks: list[str], found: dict[str, list[str]], accent_source: bool) -> None:
    """One left-to-right pass over a token list, appending attributes to `found` (first wins)."""
    i = 0
    while i < len(toks):
        t, nxt = toks[i], toks[i + 1] if i + 1 < len(toks) else ""
        if t in COLOURS or (t in COLOUR_MODIFIERS and nxt in COLOURS):
            colour = f"{t} {nxt}" if t in COLOUR_MODIFIERS else t
            i += 2 if t in COLOUR_MODIFIERS else 1
            after = toks[i] if i < len(toks) else ""
            then = toks[i + 1] if i + 1 < len(toks) else ""
            if after in PATTERNS and after not in ("solid", "plain") and not _not_a_pattern(after, then):
                pattern, i = _pattern_at(toks, i)
                found["accents"].append(f"{colour} {pattern}")
            elif after in ACCENT_NOUNS:
                found["accents"].append(f"{colour} {after}")
                i += 1
            elif after in MATERIALS and then in ACCENT_NOUNS:  # "tan leather trim"
                found["accents"].append(f"{colour} {after} {then}")
                i += 2
            else:
                found["accent_colours" if accent_source else "colours"].append(colour)
            continue
        if t in PATTERNS and not _not_a_pattern(t, nxt):
            pattern, i = _pattern_at(toks, i)
            # "stripes in white" / "striped (white on red)" -> an accent phrase, like "white stripes"
            if i + 1 < len(toks) and toks[i] == "in" and toks[i + 1] in COLOURS:
                found["accents"].append(f"{toks[i + 1]} {pattern}")
                i += 2
            elif i + 1 < len(toks) and toks[i] in COLOURS and toks[i + 1] == "on":
                found["accents"].append(f"{toks[i]} {pattern}")
                i += 2
            else:
                found["patterns"].append(pattern.removesuffix(" pattern"))
            continue
        for key, vocab in (("materials", MATERIALS), ("shapes", SHAPES)):
            if t in vocab:
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
    return (word if word in PATTERN_NOUNS or word == "polka dots" else f"{word} pattern"), i


def _not_a_pattern(word: str, nxt: str) -> bool:
    """"solid oak" / "plain glass" name a material, "check out" is a verb."""
    return (word in ("solid", "plain") and nxt in MATERIALS) or (word == "check" and nxt == "out")


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
                if any(rx.search(part) for rx in NON_VISUAL_REGEXES[:-1]):  # codes alone don't taint a clause
                    continue
                toks = _until_cue(toks)
            _scan(toks, found, accent_source="accent" in name.lower())
            if name == "title":
                leftovers += [t for t in toks if _is_leftover(t)]
    brandish = {t for name, text in sources if any(b in name.lower() for b in BRAND_FIELDS) for t in tokens(text)}
    return _assemble(found, [t for t in leftovers if t not in brandish])


def _is_leftover(word: str) -> bool:
    known = COLOURS | COLOUR_MODIFIERS | PATTERNS | MATERIALS | SHAPES | TEMPLATE_WORDS | STOPWORDS
    return re.fullmatch(r"[a-z]{3,}", word) is not None and word not in known and not non_visual_hits(word)


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
            accents.append(f"{colour} {p if p in PATTERN_NOUNS or p == 'polka dots' else p + ' pattern'}")
        else:
            accents.append(f"{colour} accents")
    in_accents = {stem(w) for a in accents for w in a.split()}
    colours = [c for c in dict.fromkeys(found["colours"]) if stem(c) not in in_accents or c == found["colours"][0]]
    return Attributes(
        colours=tuple(colours), accents=tuple(accents),
        patterns=tuple(p for p in patterns if not {stem(w) for w in p.split()} <= in_accents),
        materials=tuple(dict.fromkeys(found["materials"])), shapes=tuple(dict.fromkeys(found["shapes"])),
        leftovers=tuple(dict.fromkeys(leftovers)))
