"""The yardstick's own lexicon: which freedesktop icon names show a physical object, what a shopper
calls it, and its product type; plus brand names, promotions and colour names for the noisy text.
Nothing here is shared with curation."""
from __future__ import annotations

# icon name -> (object name, product type)
OBJECTS = {
    "computer": ("desktop computer", "computer"), "computer-laptop": ("laptop", "computer"),
    "video-display": ("monitor", "computer"), "input-keyboard": ("keyboard", "computer accessory"),
    "input-mouse": ("mouse", "computer accessory"), "input-tablet": ("drawing tablet", "computer accessory"),
    "audio-card": ("sound card", "computer accessory"), "modem": ("modem", "computer accessory"),
    "pda": ("handheld organizer", "phone"), "phone": ("telephone", "phone"),
    "drive-harddisk": ("hard drive", "storage"), "drive-optical": ("disc drive", "storage"),
    "drive-removable-media": ("usb stick", "storage"), "media-optical": ("compact disc", "storage"),
    "media-flash": ("memory card", "storage"), "media-floppy": ("floppy disk", "storage"),
    "media-tape": ("cassette tape", "storage"),
    "camera-photo": ("camera", "camera"), "camera-video": ("camcorder", "camera"), "camera-web": ("webcam", "camera"),
    "audio-headphones": ("headphones", "audio"), "audio-input-microphone": ("microphone", "audio"),
    "audio-speakers": ("loudspeakers", "audio"), "multimedia-player": ("music player", "audio"),
    "printer": ("printer", "office equipment"), "scanner": ("scanner", "office equipment"),
    "accessories-calculator": ("calculator", "office equipment"),
    "edit-cut": ("scissors", "stationery"), "edit-paste": ("clipboard", "stationery"),
    "x-office-calendar": ("desk calendar", "stationery"), "mail-unread": ("envelope", "stationery"),
    "accessories-dictionary": ("dictionary", "book"), "accessories-text-editor": ("notepad", "stationery"),
    "folder": ("file folder", "stationery"), "package-x-generic": ("cardboard box", "packaging"),
    "user-trash": ("wastebasket", "household"), "go-home": ("house", "household"),
    "system-lock-screen": ("padlock", "hardware store"), "dialog-password": ("key", "hardware store"),
    "preferences-system": ("wrench", "hardware store"), "system-search": ("magnifying glass", "hardware store"),
    "clock": ("wall clock", "clock"), "alarm-clock": ("alarm clock", "clock"),
    "input-gaming": ("gamepad", "toy game"), "face-smile": ("smiley face badge", "toy game"),
    "applications-internet": ("globe", "decor"), "emblem-favorite": ("heart ornament", "decor"),
    "starred": ("star ornament", "decor"),
    "weather-clear": ("sun sticker", "weather sticker"), "weather-overcast": ("cloud sticker", "weather sticker"),
    "weather-snow": ("snow cloud sticker", "weather sticker"),
    "weather-storm": ("storm cloud sticker", "weather sticker"),
    "weather-showers": ("rain cloud sticker", "weather sticker"),
}
THEMES = ("Papirus", "breeze", "oxygen", "Adwaita", "Numix", "Tango", "elementary-xfce", "Moka", "suru")

BRANDS = ("Kiioqua", "Fjällbo", "Øresund Works", "NOVAXIS", "Brightpeak", "Zuñiga & Hijos", "Maelstrom",
          "Tekkō", "Ardwyn", "Luminor", "QUBIK", "Ostrava Goods", "Sølvtind", "Pimbleton", "Ćirić Design")
PROMOS = ("[BEST SELLER]", "** HOT DEAL **", "(NEW 2026)", "[Free Shipping]", "LIMITED EDITION -", "⭐ Top Rated ⭐")
MARKETING = (
    "Ships free within 2 business days.", "Backed by our 30-day money-back guarantee.",
    "Perfect gift for friends and family!", "Premium quality you can trust.", "Order now while stocks last!",
    "Rated 4.8/5 by over 2,000 happy customers.", "Eco-friendly packaging, 100% recyclable.",
    "Compatible with most setups, easy to install.", "Lightweight and durable for everyday use.",
)
# Visual words mixed into marketing sentences: {colour} and {object} are filled in.
MIXED = (
    "Our {colour} {object} ships free and arrives gift-wrapped.",
    "This stylish {colour} {object} comes with a 2-year warranty.",
    "Loved by customers: the {colour} look of this {object} fits any room.",
)
PLAIN = ("A {colour} {object}.", "{Object} in {colour}.", "Shown: {object}, {colour} finish.")
TAGS = ("home", "office", "gift", "sale", "trending", "bestseller", "2026", "deal")

# Colour names with reference RGB; the product's colour is the name nearest its dominant icon colour.
COLOURS = {
    "black": (25, 25, 25), "white": (240, 240, 240), "grey": (128, 128, 128), "red": (200, 40, 40),
    "orange": (240, 140, 30), "yellow": (235, 210, 50), "green": (60, 160, 70), "teal": (30, 150, 150),
    "blue": (50, 100, 210), "purple": (130, 70, 170), "pink": (235, 130, 180), "brown": (130, 85, 45),
}
# How shoppers type a search: every product of the object is relevant to the first, those of the
# object's most common colour to the second.
QUERY_TEMPLATES = ("{object}", "{colour} {object}")
