"""dedup: perceptual-hash (pHash) near-duplicate removal; one image per group survives."""
from __future__ import annotations

import argparse
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from curation.hamming import groups as groups_of
from vlclip.cache import RowCache, code_digest, digest, file_digest
from vlclip.params import load_params, section
from vlclip.progress import Progress

SPLIT_RANK = {"test": 0, "val": 1, "train": 2}


@dataclass(frozen=True)
class DedupParams:
    hash_size: int = 8
    max_distance: int = 8


def upright_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB, upright as a viewer shows it (EXIF orientation applied). 16- and 32-bit greyscale is
    rescaled from its full range: Pillow's own conversion clips it, which turns a 16-bit photo white."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return im.convert("RGB")


def phash_bits(path: str, hash_size: int) -> np.ndarray:
    with Image.open(path) as im:
        return imagehash.phash(upright_rgb(im), hash_size=hash_size).hash.flatten()


def dedup(products: pd.DataFrame, bits: np.ndarray, max_distance: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """-> (kept products, group table). Within a group the keeper is the held-out-most product
    (test, then val, then train) so a copy in training can't leak a test image; ties go to the row
    that came first in the catalog (every row here passed ingest's checks)."""
    labels = groups_of(bits, max_distance)  # sub-quadratic: multi-index hashing (curation/hamming.py)
    df = products.assign(_group=labels, _rank=products["split"].map(SPLIT_RANK), _order=np.arange(len(products)))
    df = df.sort_values(["_group", "_rank", "_order"], kind="stable")
    df["kept"] = ~df.duplicated("_group")
    sizes = df.groupby("_group")["product_id"].transform("size")
    groups = df[sizes > 1][["_group", "product_id", "kept", "phash"]].rename(columns={"_group": "group"})
    kept = df[df["kept"]].drop(columns=["_group", "_rank", "_order", "kept"]).sort_values("product_id")
    return kept.reset_index(drop=True), groups.reset_index(drop=True)


def hashes(paths: list[str], hash_size: int, cache: RowCache, progress: Progress) -> tuple[np.ndarray, list[str]]:
    """-> (pHash bits per image, each image's cache key). Keyed by the file's bytes, so an image
    hashed by an earlier run is not decoded again."""
    base = digest("dedup", hash_size, code_digest(Path(__file__)))
    keys = [digest(base, file_digest(p)) for p in paths]
    known = cache.get_many(keys)
    rows, made = [], {}
    for path, key in zip(paths, keys):
        if key in known:
            rows.append(np.unpackbits(np.frombuffer(known[key], np.uint8))[:hash_size ** 2].astype(bool))
        else:
            rows.append(phash_bits(path, hash_size))
            made[key] = np.packbits(rows[-1]).tobytes()
        progress.add()
    cache.put_many(made)
    return np.stack(rows) if rows else np.zeros((0, hash_size ** 2), bool), keys


def store_upright(src: str, dst: Path, key: str, cache: RowCache) -> None:
    """The image as an upright RGB JPEG, so every later stage reads one format (from the cache when
    this image was stored before)."""
    if not cache.place_file(key, ".jpg", dst):
        with Image.open(src) as im:
            upright_rgb(im).save(dst, quality=95)
        cache.keep_file(key, ".jpg", dst)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--products", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", help="per-image hashes and stored images kept across runs")
    ap.add_argument("--throughput", help="JSON: items, seconds, items/s, peak RSS of this run")
    args = ap.parse_args(argv)
    params = section(DedupParams, load_params(args.params), "dedup")
    products = pd.read_parquet(args.products)
    progress = Progress("dedup: hashing", len(products))
    with RowCache(args.cache) as cache:
        bits, keys = hashes(products["image_path"].tolist(), params.hash_size, cache, progress)
        products["phash"] = [np.packbits(row).tobytes().hex() for row in bits]
        kept, groups = dedup(products.assign(_key=keys), bits, params.max_distance)
        out = Path(args.out)
        if out.exists():
            shutil.rmtree(out)
        (out / "images").mkdir(parents=True)
        new_paths = []
        for pid, src, key in zip(kept["product_id"], kept["image_path"], kept.pop("_key")):
            new_paths.append(str(out / "images" / f"{_safe(pid)}.jpg"))
            store_upright(src, Path(new_paths[-1]), key, cache)
        cache.retain_used()
    kept["image_path"] = new_paths
    kept.to_parquet(out / "products.parquet", index=False)
    groups.to_csv(out / "groups.csv", index=False)
    dropped = len(products) - len(kept)
    progress.save(args.throughput, kept=len(kept))
    print(f"dedup: {len(products)} images -> {len(kept)} kept; {dropped} near-duplicates dropped "
          f"in {groups['group'].nunique() if len(groups) else 0} groups (pHash, distance <= {params.max_distance}); "
          f"hashes {cache.report()}")
    return 0


def _safe(product_id: str) -> str:
    """A file name for any id; ids that needed escaping get a hash suffix so two can't collide."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in product_id)
    return safe if safe == product_id else f"{safe}-{hashlib.sha1(product_id.encode()).hexdigest()[:8]}"


if __name__ == "__main__":
    raise SystemExit(main())
