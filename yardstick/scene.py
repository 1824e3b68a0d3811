"""Composite an icon onto a cluttered background with smaller distractor icons; return the pixel box."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from yardstick.themes import opaque_box


def background(size: int, rng: np.random.Generator) -> Image.Image:
    """A two-colour gradient under random translucent blocks and blobs, with sensor-like noise."""
    a, b = rng.integers(40, 230, size=(2, 3))
    t = np.linspace(0, 1, size)[:, None, None]
    grad = (a * (1 - t) + b * t) * np.ones((1, size, 1))
    image = Image.fromarray(grad.astype(np.uint8), "RGB").convert("RGBA")
    layer = Image.new("RGBA", (size, size))
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.integers(6, 13)):
        x0, y0 = rng.integers(-size // 4, size, size=2)
        w, h = rng.integers(size // 10, size // 2, size=2)
        fill = (*(int(c) for c in rng.integers(0, 256, size=3)), int(rng.integers(60, 200)))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((int(x0), int(y0), int(x0 + w), int(y0 + h)),
                                                                  fill=fill)
    image = Image.alpha_composite(image, layer.filter(ImageFilter.GaussianBlur(1.5))).convert("RGB")
    noise = rng.normal(0, 6, size=(size, size, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def _fit(icon: Image.Image, side: int) -> Image.Image:
    box = opaque_box(icon) or (0, 0, icon.width, icon.height)
    icon = icon.crop(box)
    scale = side / max(icon.size)
    return icon.resize((max(1, round(icon.width * scale)), max(1, round(icon.height * scale))), Image.LANCZOS)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def compose(icon: Image.Image, distractors: list[Image.Image], size: int,
            rng: np.random.Generator) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """-> (RGB scene, the product's tight box x0, y0, x1, y1 in pixels). The product fills 35-60% of the
    side, off centre; distractors fill 15-28% and keep clear of it."""
    scene = background(size, rng)
    product = _fit(icon, int(rng.uniform(0.35, 0.6) * size))
    x, y = (int(rng.integers(0, size - s + 1)) for s in product.size)
    box = (x, y, x + product.width, y + product.height)
    for d in distractors:
        d = _fit(d, int(rng.uniform(0.15, 0.28) * size))
        for _ in range(20):
            dx, dy = (int(rng.integers(0, size - s + 1)) for s in d.size)
            if _overlap(box, (dx, dy, dx + d.width, dy + d.height)) <= 0.1 * d.width * d.height:
                scene.paste(d, (dx, dy), d)
                break
    scene.paste(product, (x, y), product)
    tight = opaque_box(product) or (0, 0, product.width, product.height)
    return scene, (x + tight[0], y + tight[1], x + tight[2], y + tight[3])
