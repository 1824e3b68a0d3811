"""The demo catalog's own product-text vocabulary: surface names of every visual attribute, title and
description filler, brands and misspellings. Written as real marketplace text reads, and kept apart
from every pipeline word list: nothing here is shared with, or taken from, the code it tests.

Rule of the lists: no filler, noise, brand or marketing word is (or contains as a word) any attribute
surface, so an attribute is stated exactly where the generator puts one of its surfaces.
"""
from __future__ import annotations

import re

WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")  # a word; hyphen / apostrophe compounds stay one word


def tokens(text: str) -> list[str]:
    return WORD.findall(str(text).lower())


def has_phrase(words: list[str], phrase: str) -> bool:
    """Whether `phrase`'s words occur contiguously in `words` (already lower-case tokens)."""
    p = tokens(phrase)
    return bool(p) and any(words[i:i + len(p)] == p for i in range(len(words) - len(p) + 1))


# Canonical colour first; the others are shade names sellers use for the same swatch.
COLOUR_NAMES = {
    "red": ("red", "crimson", "scarlet", "cherry red", "brick red", "ruby", "tomato red"),
    "blue": ("blue", "cobalt", "royal blue", "navy", "sapphire", "ocean blue"),
    "green": ("green", "emerald", "forest green", "kelly green", "jade", "grass green"),
    "yellow": ("yellow", "mustard", "lemon", "sunflower", "golden yellow", "canary"),
    "black": ("black", "jet black", "onyx", "ebony", "noir", "coal black"),
    "white": ("white", "ivory", "snow white", "off-white", "cream", "pearl"),
    "pink": ("pink", "blush", "rose", "bubblegum", "candy pink", "flamingo pink"),
    "orange": ("orange", "tangerine", "pumpkin", "burnt orange", "mandarin", "marigold"),
    "purple": ("purple", "violet", "plum", "grape", "amethyst", "royal purple"),
    "brown": ("brown", "chocolate", "chestnut", "mocha", "walnut", "cognac", "caramel"),
}
# Canonical pattern first. Adjectives go before a noun ("plaid dress"); nouns after "with" ("with stripes").
PATTERN_ADJ = {
    "striped": ("striped", "stripe", "pinstripe", "banded", "stripy"),
    "dotted": ("dotted", "polka dot", "spotted", "polka-dot"),
    "checked": ("checked", "plaid", "gingham", "check", "checkered", "tartan"),
    "solid": ("solid", "plain", "single-colour", "solid-color"),
}
PATTERN_NOUNS = {"striped": ("stripes", "pinstripes"), "dotted": ("polka dots", "dots", "spots"),
                 "checked": ("checks", "plaid", "gingham"), "solid": ()}
# Canonical variant first. For these (type, variant) pairs the phrase is the noun itself ("ankle boots").
VARIANT_NAMES = {
    ("dress", "long"): ("long", "maxi", "floor-length", "ankle-length"),
    ("dress", "short"): ("short", "mini", "above-the-knee"),
    ("shirt", "sleeveless"): ("sleeveless", "tank", "strappy", "halter"),
    ("shirt", "sleeved"): ("sleeved", "short-sleeve", "short-sleeved", "half-sleeve"),
    ("shoe", "boot"): ("boot", "boots", "ankle boots", "chelsea boots", "booties"),
    ("shoe", "sneaker"): ("sneaker", "sneakers", "trainers", "low-top sneakers"),
    ("bag", "tote"): ("tote", "tote bag", "carryall", "market tote"),
    ("bag", "backpack"): ("backpack", "rucksack", "daypack", "knapsack"),
    ("hat", "cap"): ("cap", "baseball cap", "ball cap", "snapback"),
    ("hat", "brimmed"): ("brimmed", "wide-brim", "wide-brimmed", "floppy"),
    ("lamp", "tall"): ("tall", "floor", "standing", "torchiere"),
    ("lamp", "desk"): ("desk", "table", "bedside", "task"),
    ("chair", "armchair"): ("armchair", "lounge chair", "club chair", "wingback chair"),
    ("chair", "stool"): ("stool", "bar stool", "counter stool", "step stool"),
    ("vase", "round"): ("round", "globe", "bubble", "spherical"),
    ("vase", "slim"): ("slim", "bud", "skinny", "narrow"),
    ("mug", "tall"): ("tall", "latte", "extra-tall"),
    ("mug", "wide"): ("wide", "wide-mouth", "squat", "cappuccino"),
    ("pillow", "square"): ("square", "squared"),
    ("pillow", "round"): ("round", "circular"),
}
NOUN_VARIANTS = {("shoe", "boot"), ("shoe", "sneaker"), ("bag", "tote"), ("bag", "backpack"), ("hat", "cap"),
                 ("chair", "armchair"), ("chair", "stool")}
NOUN = {"dress": ("Dress", "Frock"), "shirt": ("Shirt", "Top", "Tee", "Blouse"), "shoe": ("Shoes", "Footwear"),
        "bag": ("Bag", "Handbag", "Purse"), "hat": ("Hat",), "lamp": ("Lamp", "Light"), "chair": ("Chair", "Seat"),
        "vase": ("Vase", "Flower Vase"), "mug": ("Mug", "Cup"), "pillow": ("Pillow", "Cushion", "Throw Pillow")}
FASHION = {"dress", "shirt", "shoe", "bag", "hat"}

BRANDS = ("Nordvik", "Luma & Co", "Bellrose", "Atelier Nove", "Kestrel", "Oakline", "Maison Trelle", "Vantra",
          "Hollis Home", "Brightwell", "Sorrento Living", "Quill & Fern", "Ardent", "Tamsin", "Corvo",
          "Marlowe", "Pinecrest", "Elsworth", "Juniper Lane", "Ostara", "Mösta", "Ñandú Home", "Bjørnholm",
          "Élan Atelier", "Søren & Vale", "Zoë Lane", "Åkerby", "Lumière & Fils", "Dûne Living", "Çelik Home",
          "Tövé", "Aurélie", "Kōji Goods", "Brisa Niño")
WHO = ("Women's", "Men's", "Unisex", "Kids'", "Girls'", "Ladies")
HOME_STYLE = ("Modern", "Nordic", "Boho", "Farmhouse", "Mid-Century", "Scandi", "Home Decor")
SIZES_FASHION = ("S-XL", "XS-XXL", "Sizes 6-16", "One Size", "US 5-11", "EU 36-42")
SIZES_HOME = ("12 in", "45 cm", "Set of 1", "Set of 2", "Large", "18 x 18 in")
MARKETING = ("Elegant", "Stylish", "Premium", "Luxury", "Cozy", "Trendy", "Festive", "Beautiful", "Chic",
             "Vintage", "Gorgeous", "Comfortable", "Durable")
PROMOS = ("[BEST SELLER]", "【NEW】", "【{year} NEW】", "[HOT SALE]", "(Limited Edition)", "*FREE SHIPPING*",
          "NEW ARRIVAL!", "【Upgraded】", "[Top Rated]")
TAGS_FASHION = ("summer", "party", "women", "casual", "holiday", "gift", "trendy", "office", "weekend", "beach")
TAGS_HOME = ("decor", "living room", "gift", "housewarming", "bedroom", "cozy", "nordic", "office", "farmhouse")
# Misspellings only of marketing / commerce words, never of an attribute surface.
MISSPELL = {"beautiful": ("beautful", "beatiful"), "festive": ("fetsive", "festve"), "elegant": ("elegent", "elagant"),
            "comfortable": ("comfortible", "confortable"), "premium": ("premuim",), "quality": ("qualty", "quallity"),
            "luxury": ("luxary", "luxery"), "stylish": ("stylsh", "stlyish"), "perfect": ("prefect", "perfact"),
            "gorgeous": ("gorgous",), "durable": ("durible",), "shipping": ("shiping",),
            "customers": ("custmers",), "everything": ("everyting",), "guaranteed": ("guarenteed",),
            "collection": ("colection",), "delivery": ("delivry",)}

NOISE_FASHION = (
    "Soft, breathable fabric that feels great all day.", "Quick-drying &amp; lightweight for travel.",
    "Machine wash cold, tumble dry low, do not bleach.", "Hand wash only. Do not tumble dry.",
    "True to size; see the size chart: S (4-6), M (8-10), L (12-14), XL (16).", "Model is 5'9\" and wears a size S.",
    "Stretchy waistband for a comfortable fit.", "Made with 60% cotton, 40% recycled polyester.",
    "Cushioned insole for all-day comfort.", "Wrinkle resistant &amp; easy care.",
)
NOISE_HOME = (
    "Dishwasher &amp; microwave safe.", "Wipe clean with a damp cloth.", "Assembly required; tools included.",
    "Compatible with E26 LED bulbs up to 60W, not included.", "Spot clean only. Removable insert.",
    "Holds up to 250 lb.", "Capacity: 12 oz (350 ml).", "Dimensions: 18 x 18 in (45 x 45 cm).",
    "Hand-finished; slight variations make each piece unique.", "Lead-free &amp; food safe glaze.",
)
NOISE_ANY = (
    "FREE SHIPPING on orders over $35!", "30-day hassle-free returns.", "1-year limited warranty.",
    "Ships in 1-2 business days.", "#1 Best Seller in its category.", "Perfect gift for any occasion.",
    "Limited stock - order today!", "Satisfaction guaranteed or your money back.", "Imported.",
    "Rated 4.7/5 by 2,310 customers.", "Part of our {year} collection.", "SKU: {sku}", "Item no. {sku}",
    "Questions? Contact our support team 24/7.", "Price match guarantee &amp; secure checkout.",
    "Colours may look slightly different on your screen.", "Pattern placement may vary from piece to piece.",
)
THIN_LINES = ("As pictured.", "Great quality, fast shipping!", "See photos.", "New with tags.", "100% authentic.",
              "Brand new.", "Perfect gift.", "No returns on sale items.")
THIN_WITH = ("{X}.", "{X}, as pictured.", "Lovely {x}!", "Brand new, {x}.", "{X} - see photos.")
# Visual sentences by how they speak: spec lines, plain prose, and marketing that carries the visual word.
SPEC = {"colour": ("Colour: {X}.", "Color: {X}.", "Main colour - {x}.", "Shade: {X}."),
        "pattern": ("Pattern: {X}.", "Print: {X}.", "Design: {X}."),
        "variant": ("Style: {X}.", "Type: {X}.", "Shape: {X}."),
        "look": ("Item: {X}.", "Product: {X}.")}
PROSE = {"colour": ("Shown in {x}.", "Finished in a rich {x}.", "Comes in {x}."),
         "pattern": ("Features {x}.", "Look: {x}.", "Designed with {x}."),
         "variant": ("The {x} that goes with everything.", "A {x} you will reach for again and again.",
                     "Classic {x}."),
         "look": ("The {x} that goes with everything.", "A timeless {x}.")}
MIXED = {"colour": ("This {x} beauty ships free and feels soft all day.",
                    "Available in {x} - grab yours before it sells out!",
                    "Customers can't stop raving about this {x} shade, order now!",
                    "Go bold in {x}: free returns, no questions asked."),
         "pattern": ("Loved by {k} customers, the {x} never goes out of style!",
                     "Turn heads with {x} - limited stock!", "Trending now: {x}, with free shipping over $35."),
         "variant": ("Our bestselling {x} is back for {year}!",
                     "The {x} everyone is talking about ships in 24 hours.",
                     "Upgrade your collection with this {x}, a perfect gift."),
         "look": ("Loved by {k} customers, this {x} never goes out of style!",
                  "Meet the {x}: premium quality, fast delivery.",
                  "Don't miss the {x} - only a few left in stock!")}
