"""Draw one demo product (any of the 10 types, either shape variant) with its colour and pattern.

Shapes are polygons/ellipses in a unit box that they touch on all four sides, so the drawn extent is
the object's box. Objects are drawn at 2x and downsampled for anti-aliasing. Only numpy Generators
passed in by the caller supply randomness, so a seed fixes every pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# The demo visual vocabulary; the demo text generator (demo_catalog/text.py) draws its words from it.
TYPES = ("dress", "shirt", "shoe", "bag", "hat", "lamp", "chair", "vase", "mug", "pillow")
VARIANTS = {
    "dress": ("long", "short"), "shirt": ("sleeveless", "sleeved"), "shoe": ("boot", "sneaker"),
    "bag": ("tote", "backpack"), "hat": ("cap", "brimmed"), "lamp": ("tall", "desk"),
    "chair": ("armchair", "stool"), "vase": ("round", "slim"), "mug": ("tall", "wide"),
    "pillow": ("square", "round"),
}
PATTERNS = ("solid", "striped", "dotted", "checked")
COLOURS = {
    "red": (200, 30, 35), "blue": (35, 75, 190), "green": (40, 150, 60), "yellow": (240, 205, 40),
    "black": (28, 28, 30), "white": (240, 240, 236), "pink": (245, 145, 185), "orange": (245, 130, 30),
    "purple": (125, 50, 160), "brown": (120, 75, 40),
}
# Accent colours too close to the main colour would make the pattern invisible at 192 px.
LOW_CONTRAST = {
    frozenset(p) for p in [("red", "pink"), ("red", "orange"), ("red", "brown"), ("orange", "yellow"),
                           ("orange", "brown"), ("blue", "purple"), ("black", "brown"), ("black", "purple")]
}
# Width / height of each variant's unit box: the proportions are part of what makes the variant visible.
ASPECT = {
    ("dress", "long"): 0.42, ("dress", "short"): 0.8, ("shirt", "sleeveless"): 0.72,
    ("shirt", "sleeved"): 1.15, ("shoe", "boot"): 0.8, ("shoe", "sneaker"): 2.1, ("bag", "tote"): 0.9,
    ("bag", "backpack"): 0.72, ("hat", "cap"): 1.6, ("hat", "brimmed"): 2.0, ("lamp", "tall"): 0.36,
    ("lamp", "desk"): 0.95, ("chair", "armchair"): 1.15, ("chair", "stool"): 0.7, ("vase", "round"): 0.85,
    ("vase", "slim"): 0.4, ("mug", "tall"): 0.8, ("mug", "wide"): 1.45, ("pillow", "square"): 1.0,
    ("pillow", "round"): 1.0,
}


@dataclass(frozen=True)
class Look:
    """Clean visual attributes of one object; accent is '' for a solid pattern."""
    product_type: str
    colour: str
    pattern: str
    accent: str
    variant: str


class _Pen:
    """Draws into body (coloured + patterned), trim (darker, plain) and detail (seam line) masks in unit coords."""

    def __init__(self, w: int, h: int):
        self.w, self.h = w, h
        self.masks = {k: Image.new("L", (w, h), 0) for k in ("body", "trim", "detail")}
        self.draws = {k: ImageDraw.Draw(m) for k, m in self.masks.items()}

    def _pts(self, pts):
        return [(x * (self.w - 1), y * (self.h - 1)) for x, y in pts]

    def _box(self, b):
        return [b[0] * (self.w - 1), b[1] * (self.h - 1), b[2] * (self.w - 1), b[3] * (self.h - 1)]

    def _on(self, layer):
        """Draw list for `layer`; body and trim occlude each other, so later strokes sit in front."""
        if layer == "detail":
            return [(self.draws["detail"], 255)]
        other = "trim" if layer == "body" else "body"
        return [(self.draws[layer], 255), (self.draws[other], 0)]

    def poly(self, pts, layer="body"):
        for d, v in self._on(layer):
            d.polygon(self._pts(pts), fill=v)

    def ellipse(self, b, layer="body"):
        for d, v in self._on(layer):
            d.ellipse(self._box(b), fill=v)

    def rrect(self, b, r, layer="body"):
        for d, v in self._on(layer):
            d.rounded_rectangle(self._box(b), radius=r * min(self.w, self.h), fill=v)

    def pie(self, b, start, end, layer="body"):
        for d, v in self._on(layer):
            d.pieslice(self._box(b), start, end, fill=v)

    def ring(self, b, width, start=0, end=360, layer="body"):
        px = max(2, int(width * min(self.w, self.h)))
        for d, v in self._on(layer):
            d.arc(self._box(b), start, end, fill=v, width=px)

    def line(self, pts, width, layer="detail"):
        px = max(2, int(width * min(self.w, self.h)))
        for d, v in self._on(layer):
            d.line(self._pts(pts), fill=v, width=px)


def _dress(p: _Pen, variant: str) -> None:
    waist = 0.3 if variant == "long" else 0.45
    p.poly([(0.3, 0), (0.4, 0), (0.5, 0.08), (0.6, 0), (0.7, 0), (0.68, waist), (0.32, waist)])
    p.poly([(0.32, waist), (0.68, waist), (1.0, 1.0), (0.0, 1.0)])
    if variant == "short":  # little cap sleeves make the short dress read as a day dress
        p.poly([(0.3, 0.0), (0.16, 0.14), (0.26, 0.2), (0.32, 0.12)])
        p.poly([(0.7, 0.0), (0.84, 0.14), (0.74, 0.2), (0.68, 0.12)])
    p.rrect((0.31, waist - 0.03, 0.69, waist + 0.02), 0.01, layer="trim")


def _shirt(p: _Pen, variant: str) -> None:
    if variant == "sleeved":
        p.poly([(0.36, 0), (0.5, 0.08), (0.64, 0), (0.8, 0.04), (1.0, 0.3), (0.88, 0.42), (0.77, 0.3),
                (0.77, 1.0), (0.23, 1.0), (0.23, 0.3), (0.12, 0.42), (0.0, 0.3), (0.2, 0.04)])
        p.line([(0.36, 0.0), (0.5, 0.08), (0.64, 0.0)], 0.03, layer="trim")
    else:
        p.poly([(0.18, 0), (0.34, 0), (0.5, 0.2), (0.66, 0), (0.82, 0), (0.84, 0.14), (1.0, 0.36),
                (1.0, 1.0), (0.0, 1.0), (0.0, 0.36), (0.16, 0.14)])
        p.line([(0.34, 0.0), (0.5, 0.2), (0.66, 0.0)], 0.03, layer="trim")


def _shoe(p: _Pen, variant: str) -> None:
    if variant == "boot":
        p.poly([(0.05, 0), (0.5, 0), (0.55, 0.56), (0.88, 0.66), (1.0, 0.78), (1.0, 0.88), (0.02, 0.88)])
        p.rrect((0.0, 0.86, 1.0, 1.0), 0.03, layer="trim")
        p.line([(0.05, 0.12), (0.5, 0.12)], 0.03)
    else:
        p.poly([(0.02, 0.2), (0.28, 0.0), (0.44, 0.26), (0.78, 0.4), (0.97, 0.52), (1.0, 0.76), (0.0, 0.76)])
        p.rrect((0.0, 0.72, 1.0, 1.0), 0.12, layer="trim")
        for i in range(3):  # laces
            x = 0.34 + 0.08 * i
            p.line([(x, 0.16 + 0.1 * i), (x + 0.07, 0.3 + 0.08 * i)], 0.06)


def _bag(p: _Pen, variant: str) -> None:
    if variant == "tote":
        p.poly([(0.06, 0.36), (0.94, 0.36), (1.0, 1.0), (0.0, 1.0)])
        p.ring((0.16, 0.0, 0.46, 0.7), 0.05, 180, 360, layer="trim")
        p.ring((0.54, 0.0, 0.84, 0.7), 0.05, 180, 360, layer="trim")
    else:
        p.ring((0.36, 0.0, 0.64, 0.24), 0.05, 180, 360, layer="trim")
        p.rrect((0.0, 0.1, 1.0, 1.0), 0.3)
        p.line([(0.18, 0.55), (0.82, 0.55), (0.82, 0.92), (0.18, 0.92), (0.18, 0.55)], 0.025)
        p.line([(0.04, 0.3), (0.04, 0.9)], 0.03)


def _hat(p: _Pen, variant: str) -> None:
    if variant == "cap":
        p.pie((0.0, 0.05, 0.74, 1.65), 180, 360)
        p.poly([(0.42, 0.72), (0.86, 0.74), (1.0, 0.86), (0.92, 1.0), (0.46, 0.9)], layer="trim")
        p.ellipse((0.33, 0.0, 0.41, 0.09), layer="trim")
        p.line([(0.37, 0.06), (0.2, 0.8)], 0.015)
    else:
        p.ellipse((0.0, 0.52, 1.0, 1.0))
        p.rrect((0.27, 0.0, 0.73, 0.78), 0.3)
        p.poly([(0.27, 0.52), (0.73, 0.52), (0.73, 0.64), (0.27, 0.64)], layer="trim")


def _lamp(p: _Pen, variant: str) -> None:
    if variant == "tall":
        p.poly([(0.16, 0.0), (0.84, 0.0), (1.0, 0.3), (0.0, 0.3)])
        p.poly([(0.45, 0.3), (0.55, 0.3), (0.55, 0.95), (0.45, 0.95)], layer="trim")
        p.ellipse((0.12, 0.9, 0.88, 1.0), layer="trim")
    else:
        p.ellipse((0.0, 0.86, 0.5, 1.0), layer="trim")
        p.line([(0.25, 0.92), (0.4, 0.42), (0.72, 0.2)], 0.06, layer="trim")
        p.poly([(0.55, 0.05), (0.82, 0.0), (1.0, 0.5), (0.52, 0.42)])


def _chair(p: _Pen, variant: str) -> None:
    if variant == "armchair":
        p.rrect((0.12, 0.0, 0.88, 0.62), 0.12)
        p.rrect((0.0, 0.3, 0.2, 0.86), 0.06)
        p.rrect((0.8, 0.3, 1.0, 0.86), 0.06)
        p.rrect((0.18, 0.56, 0.82, 0.86), 0.04)
        p.line([(0.2, 0.58), (0.8, 0.58)], 0.02)
        p.poly([(0.06, 0.86), (0.13, 0.86), (0.12, 1.0), (0.07, 1.0)], layer="trim")
        p.poly([(0.87, 0.86), (0.94, 0.86), (0.93, 1.0), (0.88, 1.0)], layer="trim")
    else:
        p.poly([(0.14, 0.16), (0.26, 0.16), (0.1, 1.0), (0.0, 1.0)], layer="trim")
        p.poly([(0.74, 0.16), (0.86, 0.16), (1.0, 1.0), (0.9, 1.0)], layer="trim")
        p.poly([(0.45, 0.2), (0.55, 0.2), (0.55, 0.92), (0.45, 0.92)], layer="trim")
        p.line([(0.12, 0.66), (0.88, 0.66)], 0.05, layer="trim")
        p.ellipse((0.0, 0.0, 1.0, 0.24))


def _vase(p: _Pen, variant: str) -> None:
    if variant == "round":
        p.ellipse((0.0, 0.22, 1.0, 1.0))
        p.poly([(0.36, 0.06), (0.64, 0.06), (0.62, 0.3), (0.38, 0.3)])
        p.ellipse((0.28, 0.0, 0.72, 0.1), layer="trim")
    else:
        p.rrect((0.0, 0.24, 1.0, 1.0), 0.35)
        p.poly([(0.3, 0.04), (0.7, 0.04), (0.66, 0.3), (0.34, 0.3)])
        p.ellipse((0.22, 0.0, 0.78, 0.06), layer="trim")


def _mug(p: _Pen, variant: str) -> None:
    body_right = 0.74 if variant == "tall" else 0.76
    p.ring((body_right - 0.2, 0.18, 1.0, 0.78), 0.1, layer="trim")
    p.rrect((0.0, 0.0, body_right, 1.0), 0.1)
    p.ellipse((0.0, 0.0, body_right, 0.07), layer="detail")


def _pillow(p: _Pen, variant: str) -> None:
    if variant == "square":
        p.poly([(0, 0), (0.5, 0.06), (1, 0), (0.94, 0.5), (1, 1), (0.5, 0.94), (0, 1), (0.06, 0.5)])
        p.line([(0.12, 0.12), (0.5, 0.15), (0.88, 0.12), (0.85, 0.5), (0.88, 0.88), (0.5, 0.85), (0.12, 0.88),
                (0.15, 0.5), (0.12, 0.12)], 0.012)
    else:
        p.ellipse((0.0, 0.0, 1.0, 1.0))
        p.ellipse((0.45, 0.45, 0.55, 0.55), layer="trim")
        for a in np.linspace(0, 2 * np.pi, 8, endpoint=False):  # tufting seams radiate from the button
            p.line([(0.5 + 0.08 * np.cos(a), 0.5 + 0.08 * np.sin(a)),
                    (0.5 + 0.4 * np.cos(a), 0.5 + 0.4 * np.sin(a))], 0.012)


SHAPES = {"dress": _dress, "shirt": _shirt, "shoe": _shoe, "bag": _bag, "hat": _hat, "lamp": _lamp,
          "chair": _chair, "vase": _vase, "mug": _mug, "pillow": _pillow}


def pattern_mask(pattern: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean (h, w) mask of where the accent colour goes; periods scale with the object, never below 14 px at 2x."""
    if pattern == "solid":
        return np.zeros((h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if pattern == "striped":
        period = max(14.0, max(w, h) / rng.uniform(5, 9))
        angle = rng.choice([0.0, 90.0, 45.0, -45.0]) * np.pi / 180
        t = xx * np.cos(angle) + yy * np.sin(angle) + rng.uniform(0, period)
        return (t % period) < period * rng.uniform(0.35, 0.5)
    if pattern == "dotted":
        step = max(16.0, min(w, h) / rng.uniform(3.5, 6))
        row = np.floor(yy / step)
        dx = (xx + (row % 2) * step / 2) % step - step / 2
        dy = yy % step - step / 2
        return dx ** 2 + dy ** 2 < (step * rng.uniform(0.22, 0.3)) ** 2
    if pattern == "checked":
        cell = max(12.0, min(w, h) / rng.uniform(3.5, 6))
        return ((np.floor(xx / cell) + np.floor(yy / cell)) % 2) == 0
    raise ValueError(f"unknown pattern {pattern!r}")


def jitter_rgb(name: str, rng: np.random.Generator, sd: float = 8.0) -> np.ndarray:
    return np.clip(np.asarray(COLOURS[name], np.float32) + rng.normal(0, sd, 3), 0, 255)


def render_object(look: Look, w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """RGBA image of size (w, h) holding `look`; the shape touches all four edges of the image."""
    W, H = 2 * w, 2 * h
    pen = _Pen(W, H)
    SHAPES[look.product_type](pen, look.variant)
    m = {k: np.asarray(v, np.float32)[..., None] / 255 for k, v in pen.masks.items()}
    main = jitter_rgb(look.colour, rng)
    rgb = np.broadcast_to(main, (H, W, 3)).copy()
    if look.pattern != "solid":
        rgb[pattern_mask(look.pattern, W, H, rng)] = jitter_rgb(look.accent, rng, 5.0)
    # Trim (soles, legs, handles) reads as the same material in shadow; black trim is lifted to dark grey.
    trim = main * (0.62 if look.colour != "black" else 1.6) + (10 if look.colour == "black" else 0)
    rgb = rgb * (1 - m["trim"]) + trim * m["trim"]
    rgb = rgb * (1 - m["detail"] * 0.7) + main * 0.35 * m["detail"] * 0.7
    # A soft side light gives volume without changing which colour name fits.
    light = 1 + rng.uniform(-0.18, 0.18) * (np.linspace(-1, 1, W)[None, :, None])
    rgb = np.clip(rgb * light, 0, 255)
    alpha = np.maximum(m["body"], m["trim"])[..., 0]
    shrunk = Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.MinFilter(5))
    rim = np.clip(alpha - np.asarray(shrunk, np.float32) / 255, 0, 1)
    rgb = rgb * (1 - 0.45 * rim[..., None])  # dark rim so the silhouette separates from busy walls
    rgba = np.dstack([rgb, alpha * 255]).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA").resize((w, h), Image.Resampling.BOX)


def sample_look(rng: np.random.Generator, product_type: str) -> Look:
    """Random colour / pattern / accent / variant for `product_type`; the accent always contrasts with the colour."""
    names = list(COLOURS)
    colour = names[rng.integers(len(names))]
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    accent = ""
    if pattern != "solid":
        options = [c for c in names if c != colour and frozenset((c, colour)) not in LOW_CONTRAST]
        accent = options[rng.integers(len(options))]
    variant = VARIANTS[product_type][rng.integers(2)]
    return Look(product_type, colour, pattern, accent, variant)
