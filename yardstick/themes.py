"""Find each object's icon in each installed theme and rasterise it (PNG as is, SVG via rsvg-convert)."""
from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

from PIL import Image

EXTENSIONS = (".svg", ".png")


def _size_of(path: Path) -> int:
    """Icon size from its directory (48x48, 256, scalable); scalable counts as the largest."""
    for part in reversed(path.parts[:-1]):
        if part == "scalable":
            return 10_000
        digits = part.split("x")[0].split("@")[0]
        if digits.isdigit():
            return int(digits)
    return 0


def find_icons(root: Path, themes: tuple[str, ...], names: set[str]) -> dict[str, dict[str, Path]]:
    """-> {icon name: {theme: file}}: the largest non-symbolic rendering per theme, links resolved."""
    found: dict[str, dict[str, Path]] = {}
    for theme in themes:
        best: dict[str, Path] = {}
        for path in sorted((root / theme).rglob("*")):
            if path.suffix not in EXTENSIONS or path.stem not in names or "symbolic" in str(path):
                continue
            if not path.resolve().is_file():
                continue
            if path.stem not in best or _size_of(path) > _size_of(best[path.stem]):
                best[path.stem] = path
        for name, path in best.items():
            found.setdefault(name, {})[theme] = path.resolve()
    return found


def rasterise(path: Path, size: int) -> Image.Image:
    """-> RGBA image whose longer side is `size`."""
    if path.suffix == ".svg":
        exe = shutil.which("rsvg-convert")
        if exe is None:
            raise RuntimeError("rasterising SVG icons needs rsvg-convert (apt-get install librsvg2-bin)")
        png = subprocess.run([exe, "-w", str(size), "-h", str(size), "--keep-aspect-ratio", str(path)],
                             check=True, capture_output=True).stdout
        image = Image.open(io.BytesIO(png))
    else:
        image = Image.open(path)
    image = image.convert("RGBA")
    scale = size / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)


def opaque_box(icon: Image.Image, alpha_min: int = 32) -> tuple[int, int, int, int] | None:
    """The tight box of the icon's visible pixels, or None for an empty icon."""
    return icon.getchannel("A").point(lambda a: 255 if a >= alpha_min else 0).getbbox()
