"""(image, text) pairs for one training variant, held in memory as tensors.

A variant (params.yaml `variants`) chooses its images (`full` dedup images or grounded `crops`) and
its text (`raw` title + description, or `refined` queries). The demo catalog fits easily in RAM at
64 px (1.5k x 49 KB).
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from vlclip.params import from_dict

IMAGES = ("full", "crops")
TEXTS = ("raw", "refined")


@dataclass(frozen=True)
class Variant:
    name: str
    images: str  # full | crops
    text: str    # raw | refined


def variants(params: dict) -> dict[str, Variant]:
    """params.yaml `variants`, in their order: name -> {images: full|crops, text: raw|refined}."""
    if not params.get("variants"):
        raise KeyError("params.yaml has no section 'variants'")
    out = {}
    for name, spec in params["variants"].items():
        v = from_dict(Variant, {"name": name, **spec}, where=f"variants.{name}")
        if v.images not in IMAGES or v.text not in TEXTS:
            raise ValueError(f"params.yaml variants.{name}: images must be one of {IMAGES} and text one of "
                             f"{TEXTS}, got {v.images!r} / {v.text!r}")
        out[name] = v
    return out


TAG = re.compile(r"<[^<>]*>")


def raw_text(title: str, description: str) -> str:
    """The catalog text as a plain CLIP would see it: title then description, HTML tags dropped and
    entities decoded (a fair baseline spends no tokens on markup), whitespace collapsed."""
    text = html.unescape(TAG.sub(" ", f"{title}. {description}"))
    return re.sub(r"\s+", " ", text).strip()


def pair_table(products: pd.DataFrame, variant: Variant, boxes: pd.DataFrame | None = None,
               queries: pd.DataFrame | None = None) -> pd.DataFrame:
    """-> product_id, product_type, split, image_path, text for every product that has both sides."""
    df = products[["product_id", "product_type", "split", "image_path", "title", "description"]].copy()
    if variant.images == "crops":
        if boxes is None:
            raise ValueError(f"variant {variant.name} needs grounded crops (boxes table)")
        df = df.merge(boxes[["product_id", "crop_path"]], on="product_id", how="inner")
        df["image_path"] = df.pop("crop_path")
    if variant.text == "refined":
        if queries is None:
            raise ValueError(f"variant {variant.name} needs refined queries")
        df = df.merge(queries[["product_id", "query"]], on="product_id", how="inner")
        df["text"] = df.pop("query")
    else:
        df["text"] = [raw_text(t, d) for t, d in zip(df["title"], df["description"])]
    return df.drop(columns=["title", "description"]).reset_index(drop=True)


def load_pixels(paths: list[str], preprocess) -> torch.Tensor:
    """-> (N, 3, H, W) float tensor via the model's eval preprocessing. Fails naming the file."""
    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                out.append(preprocess(im.convert("RGB")))
        except OSError as exc:
            raise OSError(f"cannot read training image {p}: {exc}") from exc
    return torch.stack(out)


def augment(pixels: torch.Tensor, generator: torch.Generator, max_shift: int = 4,
            n: int | None = None, rows: slice = slice(None)) -> torch.Tensor:
    """Random horizontal flip and a small translation per sample; (B, 3, H, W) -> same shape.
    Mild on purpose: colour and pattern are the signal, so no colour jitter. The draws are made for
    a global batch of n (default B) and `rows` picks this process's share, so a data-parallel run
    augments each sample as one process would."""
    b, _, h, w = pixels.shape
    n = b if n is None else n
    flip = (torch.rand(n, generator=generator) < 0.5)[rows]
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)[:, rows]
    if b == 0:
        return pixels
    pixels = torch.where(flip[:, None, None, None], pixels.flip(-1), pixels)
    padded = torch.nn.functional.pad(pixels, (max_shift,) * 4, mode="replicate")
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])


def read_optional(path: str | None) -> pd.DataFrame | None:
    if not path:
        return None
    p = Path(path)
    return pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p, dtype={"product_id": str})
