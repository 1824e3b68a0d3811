"""Compose a lifestyle-like demo photo: cluttered room background, distractor objects, one product.

Every colour and layout choice is drawn from continuous ranges per image (no fixed palette), so a
detector cannot learn "the background is beige". The product's tight pixel box is returned as ground truth.
"""
from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from demo_catalog.draw import ASPECT, TYPES, Look, render_object, sample_look

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive (PIL getbbox convention)


def _rgb(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> np.ndarray:
    h, s, v = rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val)
    return np.asarray(colorsys.hsv_to_rgb(h, s, v), np.float32) * 255


def _texture(kind: str, h: int, w: int, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) float surface: wallpaper stripes, gradients, tiles, planks or plain noise around `base`."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = np.zeros((h, w), np.float32)
    if kind == "stripes":
        period = rng.uniform(6, 26)
        shade = np.where((xx + rng.uniform(0, period)) % period < period / 2, rng.uniform(-0.12, 0.12), 0.0)
    elif kind == "gradient":
        direction = rng.uniform(0, 2 * np.pi)
        t = (xx * np.cos(direction) + yy * np.sin(direction)) / max(h, w, 1)
        shade = rng.uniform(0.1, 0.35) * (t - t.mean())
    elif kind == "tiles":
        step = rng.uniform(10, 30)
        grout = ((xx % step) < 1.5) | ((yy % step) < 1.5)
        shade = np.where(grout, -0.25, 0.0)
    elif kind == "planks":
        step = rng.uniform(6, 16)
        plank = np.floor(yy / step)
        shade = (np.sin(plank * 12.9898 + rng.uniform(0, 6)) * 0.08) + np.where(yy % step < 1.2, -0.2, 0.0)
    shade = shade + rng.normal(0, rng.uniform(0.005, 0.05), (h, w))
    return base[None, None, :] * (1 + shade[..., None])


def _room(size: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Wall over floor split at a random height; returns the float canvas and the floor line."""
    horizon = int(size * rng.uniform(0.45, 0.85))
    wall = _texture(rng.choice(["plain", "stripes", "gradient", "tiles"]), horizon, size,
                    _rgb(rng, (0.02, 0.45), (0.45, 0.95)), rng)
    floor = _texture(rng.choice(["plain", "planks", "tiles", "gradient"]), size - horizon, size,
                     _rgb(rng, (0.05, 0.55), (0.2, 0.75)), rng)
    return np.concatenate([wall, floor], axis=0), horizon


def _clutter(img: Image.Image, horizon: int, rng: np.random.Generator) -> None:
    """2-5 room props (window, shelf with items, frame, table, rug, plant, door) in random colours."""
    d, s = ImageDraw.Draw(img), img.size[0]
    col = lambda sat=(0.05, 0.6), val=(0.2, 0.95): tuple(int(c) for c in _rgb(rng, sat, val))  # noqa: E731
    for kind in rng.choice(["window", "shelf", "frame", "table", "rug", "plant", "door"], rng.integers(2, 6)):
        x, w = rng.uniform(-0.1, 0.85) * s, rng.uniform(0.12, 0.45) * s
        if kind == "window":
            y, h = rng.uniform(0.02, 0.2) * s, rng.uniform(0.25, 0.45) * s
            d.rectangle([x, y, x + w, y + h], fill=col((0.0, 0.25), (0.8, 1.0)), outline=col(), width=3)
            d.line([x + w / 2, y, x + w / 2, y + h], fill=col(), width=2)
        elif kind == "shelf":
            y = rng.uniform(0.15, 0.6) * horizon
            d.rectangle([x, y, x + w, y + 4], fill=col())
            for bx in np.arange(x + 2, x + w - 6, rng.uniform(5, 12)):
                bh = rng.uniform(6, 22)
                d.rectangle([bx, y - bh, bx + rng.uniform(3, 9), y], fill=col())
        elif kind == "frame":
            y, h = rng.uniform(0.05, 0.5) * horizon, rng.uniform(0.12, 0.3) * s
            d.rectangle([x, y, x + w * 0.6, y + h], fill=col(), outline=col((0, 0.3), (0.1, 0.5)), width=4)
            d.ellipse([x + w * 0.1, y + h * 0.15, x + w * 0.45, y + h * 0.65], fill=col())
        elif kind == "table":
            y = horizon + rng.uniform(-0.25, 0.05) * s
            d.rectangle([x, y, x + w, y + 5], fill=col())
            for lx in (x + 3, x + w - 7):
                d.rectangle([lx, y + 5, lx + 4, y + rng.uniform(0.15, 0.35) * s], fill=col())
        elif kind == "rug":
            y = horizon + rng.uniform(0.05, 0.35) * (s - horizon)
            d.ellipse([x, y, x + w * 1.5, y + rng.uniform(0.08, 0.2) * s], fill=col())
        elif kind == "plant":
            y = horizon + rng.uniform(-0.1, 0.1) * s
            for _ in range(rng.integers(4, 9)):
                cx, cy = x + rng.uniform(0, 0.2 * s), y - rng.uniform(0.05, 0.3) * s
                leaf = [cx, cy, cx + rng.uniform(6, 16), cy + rng.uniform(10, 22)]
                d.ellipse(leaf, fill=col((0.3, 0.8), (0.2, 0.6)))
            pot = [(x, y), (x + 0.2 * s, y), (x + 0.17 * s, y + 0.12 * s), (x + 0.03 * s, y + 0.12 * s)]
            d.polygon(pot, fill=col())
        else:  # door
            top = horizon - rng.uniform(0.5, 0.8) * s
            d.rectangle([x, top, x + w * 0.7, horizon], fill=col(), outline=col(), width=2)


def _place(size: int, aspect: float, area: float, rng: np.random.Generator) -> tuple[int, int]:
    """Pixel (w, h) of an object box with `aspect` covering about `area` of the frame, capped at 95% a side."""
    w, h = np.sqrt(area * aspect), np.sqrt(area / aspect)
    if h > 0.95:
        w, h = w * 0.95 / h, 0.95
    if w > 0.95:
        w, h = 0.95, h * 0.95 / w
    return max(8, int(w * size)), max(8, int(h * size))


def _overlap(a: Box, b: Box) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _paste(img: Image.Image, obj: Image.Image, x: int, y: int, rng: np.random.Generator) -> None:
    """Paste with a soft contact shadow so objects sit in the room instead of floating."""
    w, h = obj.size
    shadow = Image.new("L", img.size, 0)
    darkness = int(rng.uniform(60, 140))
    ImageDraw.Draw(shadow).ellipse([x - w * 0.05, y + h * 0.9, x + w * 1.05, y + h * 1.06], fill=darkness)
    shadow = shadow.filter(ImageFilter.GaussianBlur(4))
    img.paste(Image.new("RGB", img.size, (0, 0, 0)), (0, 0), shadow)
    img.paste(obj, (x, y), obj)


def _distractors(look: Look, size: int, product_box: Box, rng: np.random.Generator) -> list:
    """1-3 objects of other types, 5-30% of the frame, allowed past the frame edge, covering <= 30% of the product."""
    budget = 0.3 * (product_box[2] - product_box[0]) * (product_box[3] - product_box[1])
    others = [t for t in TYPES if t != look.product_type]
    placed = []
    for _ in range(rng.integers(1, 4)):
        other = sample_look(rng, others[rng.integers(len(others))])
        w, h = _place(size, ASPECT[(other.product_type, other.variant)], rng.uniform(0.05, 0.3), rng)
        for _try in range(12):
            x, y = int(rng.uniform(-0.3 * w, size - 0.7 * w)), int(rng.uniform(-0.3 * h, size - 0.7 * h))
            cover = _overlap((x, y, x + w, y + h), product_box)
            if cover <= budget:
                budget -= cover
                placed.append((render_object(other, w, h, rng), x, y, bool(rng.uniform() < 0.3)))
                break
    return placed


def _finish(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Camera and lighting: tint, exposure, vignette, sensor noise, slight softness."""
    a = np.asarray(img, np.float32)
    size = a.shape[0]
    a = a * rng.uniform(0.93, 1.07, 3)[None, None, :] * rng.uniform(0.88, 1.08)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    a = a * (1 - rng.uniform(0, 0.35) * (xx ** 2 + yy ** 2))[..., None]
    a = a + rng.normal(0, rng.uniform(0.5, 6), a.shape)
    out = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if rng.uniform() < 0.4:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    return out


def render_scene(look: Look, size: int, rng: np.random.Generator) -> tuple[Image.Image, Box]:
    """A size x size RGB photo showing `look` off-centre among clutter, and the product's tight box."""
    canvas, horizon = _room(size, rng)
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    _clutter(img, horizon, rng)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.8)))  # depth of field: the room is behind the product
    w, h = _place(size, ASPECT[(look.product_type, look.variant)] * rng.uniform(0.92, 1.08),
                  rng.uniform(0.12, 0.48), rng)
    for _try in range(20):  # off-centre: reject boxes whose centre sits on the frame centre
        x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
        if max(abs(x + w / 2 - size / 2), abs(y + h / 2 - size / 2)) > 0.06 * size:
            break
    obj = render_object(look, w, h, rng)
    bx0, by0, bx1, by1 = obj.getchannel("A").getbbox()
    box = (x + bx0, y + by0, x + bx1, y + by1)
    placed = _distractors(look, size, box, rng)
    for dobj, dx, dy, front in placed:
        if not front:
            _paste(img, dobj, dx, dy, rng)
    _paste(img, obj, x, y, rng)
    for dobj, dx, dy, front in placed:
        if front:
            _paste(img, dobj, dx, dy, rng)
    return _finish(img, rng), box
