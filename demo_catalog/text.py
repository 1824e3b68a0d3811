"""Noisy demo catalog text (titles, HTML descriptions) and user-style queries built from clean attributes.

Every visual attribute of a product (colour, pattern, accent, variant) is stated at least once across
title + description + colour column, in varied wording; the rest is non-visual marketing noise that
uses no vocabulary colour or pattern word, so the ground truth stays unambiguous.
"""
from __future__ import annotations

import numpy as np

from demo_catalog.draw import Look

BRANDS = ("Nordvik", "Luma & Co", "Bellrose", "Atelier Nove", "Kestrel", "Oakline", "Maison Trelle", "Vantra",
          "Hollis Home", "Brightwell", "Sorrento Living", "Quill & Fern", "Ardent", "Tamsin", "Corvo",
          "Marlowe", "Pinecrest", "Elsworth", "Juniper Lane", "Ostara")
FASHION = {"dress", "shirt", "shoe", "bag", "hat"}
NOUN = {"dress": ("Dress",), "shirt": ("Shirt", "Top", "Tee Shirt"), "shoe": ("Shoe", "Shoes", "Footwear"),
        "bag": ("Bag", "Handbag"), "hat": ("Hat", "Headwear Hat"), "lamp": ("Lamp", "Light Lamp"),
        "chair": ("Chair", "Seat Chair"), "vase": ("Vase", "Flower Vase"), "mug": ("Mug", "Coffee Mug"),
        "pillow": ("Pillow", "Throw Pillow", "Cushion Pillow")}
# Each phrase contains the vocabulary variant word itself, so a rules refiner can find it.
VARIANT_PHRASE = {
    "long": ("long", "long maxi-length", "floor-length long"), "short": ("short", "short mini-length"),
    "sleeveless": ("sleeveless", "sleeveless tank-style"), "sleeved": ("sleeved", "short-sleeved"),
    "boot": ("boot", "ankle boot", "lace-up boot"), "sneaker": ("sneaker", "low-top sneaker"),
    "tote": ("tote", "open-top tote"), "backpack": ("backpack", "zip backpack"),
    "cap": ("cap", "baseball cap", "curved-visor cap"), "brimmed": ("brimmed", "wide-brimmed"),
    "tall": ("tall", "extra tall"), "desk": ("desk", "adjustable desk"), "armchair": ("armchair", "lounge armchair"),
    "stool": ("stool", "three-leg stool"), "round": ("round", "round bulb-shaped"), "slim": ("slim", "slim bud"),
    "wide": ("wide", "wide low"), "square": ("square", "square throw"),
}
PATTERN_ADJ = {"striped": ("striped", "stripe"), "dotted": ("dotted", "polka dot"),
               "checked": ("checked", "check"), "solid": ("solid", "plain")}
PATTERN_NOUN = {"striped": ("stripes",), "dotted": ("dots", "polka dots"), "checked": ("checks",)}

NOISE_FASHION = (
    "Soft, breathable fabric that feels great all day.", "Quick-drying &amp; lightweight for travel.",
    "Machine wash cold, tumble dry low, do not bleach.", "Hand wash only. Do not tumble dry.",
    "True to size; see the size chart: S (4-6), M (8-10), L (12-14), XL (16).", "Model is 5'9\" and wears a size S.",
    "Stretchy waistband for a comfortable fit.", "Made with 60% cotton, 40% recycled polyester.",
    "Cushioned insole for all-day comfort.", "Wrinkle resistant &amp; easy care.",
)
NOISE_HOME = (
    "Dishwasher &amp; microwave safe.", "Wipe clean with a damp cloth.", "Assembly required; tools included.",
    "Bulb not included. Compatible with E26 LED bulbs up to 60W.", "Spot clean only. Removable insert.",
    "Holds up to 250 lb.", "Capacity: 12 oz (350 ml).", "Dimensions: 18 x 18 in (45 x 45 cm).",
    "Hand-finished; slight variations make each piece unique.", "Lead-free &amp; food safe glaze.",
)
NOISE_ANY = (
    "FREE SHIPPING on orders over $35!", "30-day hassle-free returns.", "1-year limited warranty.",
    "Ships in 1-2 business days.", "#1 Best Seller in its category.", "Perfect gift for any occasion.",
    "Limited stock - order today!", "Satisfaction guaranteed or your money back.", "Imported.",
    "Rated 4.7/5 by 2,310 customers.", "Part of our {year} collection.", "SKU: {sku}", "Item no. {sku}",
    "Questions? Contact our support team 24/7.", "Price match guarantee &amp; secure checkout.",
)


def _pick(rng: np.random.Generator, options):
    return options[rng.integers(len(options))]


def _sku(rng: np.random.Generator) -> str:
    letters = "".join(chr(65 + int(i)) for i in rng.integers(0, 26, 2))
    return f"{letters}-{int(rng.integers(10000, 99999))}"


def pattern_phrase(look: Look, rng: np.random.Generator) -> str:
    """Pattern + accent in varied wording: 'with white stripes', 'red and white striped', 'solid colour'."""
    c, a, p = look.colour, look.accent, look.pattern
    if p == "solid":
        return _pick(rng, (f"solid {c}", f"plain {c} finish", f"solid colour ({c})", f"{c}, solid, no print"))
    adj, noun = _pick(rng, PATTERN_ADJ[p]), _pick(rng, PATTERN_NOUN[p])
    return _pick(rng, (f"{c} with {a} {noun}", f"{c} and {a} {adj}", f"{a} {noun} on a {c} base",
                       f"{adj} pattern in {a} over {c}", f"{p} ({a} on {c})"))


def title(look: Look, brand: str, rng: np.random.Generator) -> tuple[str, bool]:
    """A marketplace-style title and whether it names the colour."""
    noun = _pick(rng, NOUN[look.product_type])
    who = _pick(rng, ("Women's", "Men's", "Unisex", "Kids'")) if look.product_type in FASHION else \
        _pick(rng, ("Home Decor", "Living Room", "Modern", "Nordic"))
    size = _pick(rng, ("S-XL", "XS-XXL", "Sizes 6-16", "One Size")) if look.product_type in FASHION else \
        _pick(rng, ("12 in", "45 cm", "Set of 1", "Large"))
    var = _pick(rng, VARIANT_PHRASE[look.variant]).title()
    year, sku = int(rng.integers(2019, 2026)), _sku(rng)
    templates = (
        (f"{brand} {who} {var} {noun} - {look.colour.title()}", True),
        (f"#1 Best Seller | {brand} {noun} {year} Collection, {size}", False),
        (f"{who} {_pick(rng, PATTERN_ADJ[look.pattern]).title()} {noun} {size} {sku}", False),
        (f"{brand} {var} {noun} ({look.colour}) [{sku}]", True),
        (f"{noun} by {brand} - {year} New Arrival - Free Shipping", False),
        (f"{brand.upper()} {var.upper()} {noun.upper()}", False),
        (f"{look.colour.title()} {var} {noun} - {who} {year}", True),
    )
    return templates[rng.integers(len(templates))]


def description(look: Look, need_colour: bool, rng: np.random.Generator) -> str:
    """HTML-ish description mixing visual statements with care, shipping, warranty and SKU noise."""
    t = look.product_type
    var = _pick(rng, VARIANT_PHRASE[look.variant])
    visual = [_pick(rng, (f"The {var} {t} that goes with everything.", f"Style: {var} {t}.", f"Shape: {var}.",
                          f"This {var} design is a wardrobe staple." if t in FASHION else f"Classic {var} {t}.")),
              _pick(rng, ("Look: {}.", "Pattern: {}.", "Finished in {}.", "Features {}."))
              .format(pattern_phrase(look, rng))]
    if need_colour or rng.uniform() < 0.4:
        visual.append(_pick(rng, (f"Colour: {look.colour.title()}.", f"Color: {look.colour.upper()}.",
                                  f"Shown in {look.colour}.", f"Main colour - {look.colour}.")))
    own = NOISE_FASHION if t in FASHION else NOISE_HOME  # care / feel / specs, then commerce boilerplate
    picks = [own[i] for i in rng.choice(len(own), int(rng.integers(1, 4)), replace=False)] + \
        [NOISE_ANY[i] for i in rng.choice(len(NOISE_ANY), int(rng.integers(2, 5)), replace=False)]
    noise = [s.format(year=int(rng.integers(2019, 2026)), sku=_sku(rng)) for s in picks]
    parts = visual + noise
    order = rng.permutation(len(parts))
    parts = [parts[i] for i in order]
    style = int(rng.integers(4))
    if style == 0:
        half = len(parts) // 2
        return "<p>" + " ".join(parts[:half]) + "</p><ul>" + "".join(f"<li>{p}</li>" for p in parts[half:]) + "</ul>"
    if style == 1:
        return " | ".join(parts)
    if style == 2:
        return "<br>".join(parts) + "<br>"
    return "<div><b>Details</b>: " + " ".join(parts) + "&nbsp;</div>"


NOUN_VARIANTS = {"boot", "sneaker", "tote", "backpack", "cap", "armchair", "stool", "desk"}
QUERY_FORMS = {  # attribute sets a shopper states, with several phrasings each
    ("colour",): ("{c} {t}", "{t} in {c}", "{t} {c}"),
    ("colour", "pattern"): ("{c} {pa} {t}", "{pa} {c} {t}", "{c} {t} with {pn}", "{t} {c} {pa}"),
    ("colour", "pattern", "variant"): ("{v} {c} {pa} {t}", "{c} {pa} {v} {t}", "{v} {t} {c} with {pn}"),
    ("colour", "pattern", "accent"): ("{c} {t} with {a} {pn}", "{c} and {a} {pa} {t}", "{a} {pa} {c} {t}"),
    ("pattern", "variant", "accent"): ("{v} {t} with {a} {pn}", "{v} {t}, {a} {pn}"),
    ("colour", "variant"): ("{v} {c} {t}", "{c} {v} {t}"),
}


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
