"""embed: image, text and fused embeddings per product from the champion model, tagged with its version."""
from __future__ import annotations

import argparse
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from vlclip.cache import RowCache, digest, file_digest
from vlclip.engine import ComputeParams, map_batches, resolve_device
from vlclip.params import load_params, section
from vlclip.progress import Progress
from vlclip.tables import write_frames
from vlclip.tracking import MlflowParams, tracking_uri


@dataclass(frozen=True)
class EmbedParams:
    batch_size: int = 128
    device: str = "auto"      # auto | cpu | cuda
    amp: str = "bf16"         # autocast on CUDA: bf16 | fp16 | none


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _rgb(path: str) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def weights_key(encoder, device: str, amp: str) -> str:
    """The model's identity for the cache: its weights (not the registry's version number, which a
    new registry would give to other weights), and the device and precision it runs at."""
    h = hashlib.sha256()
    for name, t in sorted(encoder.model.state_dict().items()):
        h.update(name.encode() + t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest("embed", h.hexdigest(), device, amp if device.startswith("cuda") else "none")


class EmbedWorker:
    """Image, text and fused vectors for a batch of rows (image_path, query), each as (3, dim) float32
    bytes: what the engine runs per batch, here or in a Ray actor (the encoder travels to it once)."""

    def __init__(self, encoder, device: str, amp: str, batch_size: int):
        self.encoder, self.device, self.amp, self.batch_size = encoder, device, amp, batch_size

    def setup(self) -> None:
        self.encoder = self.encoder.on(self.device, self.amp)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        image = self.encoder.encode_images([_rgb(p) for p in batch["image_path"]], self.batch_size)
        text = self.encoder.encode_text(batch["query"].tolist(), self.batch_size)
        fused = unit(image + text)  # one vector for "more like this": what it looks like + how it is described
        return pd.DataFrame({"vectors": [np.stack(v).astype(np.float32).tobytes() for v in zip(image, text, fused)]})


def embed_batches(encoder, table: pd.DataFrame, p: EmbedParams, version: str, cache: RowCache | None = None,
                  compute: ComputeParams = ComputeParams(), threads: int = 4):
    """table: product_id, product_type, title, image_path (crop), query -> one embeddings frame per
    batch, so memory holds a batch, not the catalog. With a cache, a product whose crop and query this
    model embedded before is not encoded again; the rest go to the engine's workers."""
    cache = cache or RowCache(None)
    device = resolve_device(p.device, compute)
    model = weights_key(encoder, device, p.amp) if cache.db is not None else ""
    # second resolution, UTC: Feast materializes by event time; one stamp for the whole run
    stamp = pd.Timestamp(datetime.now(UTC).replace(microsecond=0))
    parts = [table.iloc[i:i + p.batch_size] for i in range(0, len(table), p.batch_size)]
    with ThreadPoolExecutor(threads) as pool:
        keys = [k for part in pool.map(lambda part: [digest(model, file_digest(f), q) for f, q in
                                                     zip(part["image_path"], part["query"])], parts) for k in part]
    present = cache.present(keys)
    todo = [i for i, k in enumerate(keys) if k not in present]
    made = _unbatched(map_batches(EmbedWorker(encoder, device, p.amp, p.batch_size),
                                  table.iloc[todo][["image_path", "query"]], p.batch_size, compute))
    start = 0
    for part in parts:
        part_keys, start = keys[start:start + len(part)], start + len(part)
        vectors = _vectors(part_keys, present, made, cache)
        out = part[["product_id", "product_type", "title", "image_path"]].copy()
        for j, name in enumerate(("image_embedding", "text_embedding", "fused_embedding")):
            out[name] = [v[j] for v in vectors]
        out["model_version"] = version
        out["event_timestamp"] = stamp
        yield out


def _unbatched(frames):
    for frame in frames:
        yield from frame["vectors"]


def _vectors(keys: list[str], present: set[str], made, cache: RowCache) -> list[np.ndarray]:
    """(3, dim) float32 per product: image, text, fused; a cache hit read now, a miss the next
    computed row (the engine's rows come in table order)."""
    known = cache.get_many([k for k in keys if k in present])
    fresh = {}
    rows = []
    for k in keys:
        raw = known[k] if k in present else next(made)
        if k not in present:
            fresh[k] = raw
        rows.append(np.frombuffer(raw, np.float32).reshape(3, -1))
    cache.put_many(fresh)
    return rows


def embed_products(encoder, table: pd.DataFrame, batch_size: int, version: str) -> pd.DataFrame:
    """Every batch of `embed_batches` in one frame (for small tables and tests)."""
    return pd.concat(list(embed_batches(encoder, table, EmbedParams(batch_size), version)), ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--receipt", required=True, help="register receipt (runs embed after register)")
    ap.add_argument("--products", required=True)
    ap.add_argument("--boxes", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--throughput", help="JSON: items, seconds, items/s, peak RSS of this run")
    ap.add_argument("--cache", help="per-product vectors kept across runs (per model version)")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    p, mp = section(EmbedParams, params, "embed"), section(MlflowParams, params, "mlflow")
    compute = section(ComputeParams, params, "compute")
    # The registry's champion alias, not the receipt, decides: after a manual `vlclip promote`,
    # `dvc repro -sf embed` re-embeds with the new champion. The receipt only orders the stages.
    from registry.load import load_champion

    encoder, version = load_champion(tracking_uri(mp), mp.model_name, alias="champion")
    registered = json.loads(Path(args.receipt).read_text())["champion"]
    if str(registered) != version:
        print(f"embed: champion is version {version} (register's receipt said {registered})")
    products = pd.read_parquet(args.products)
    crops = pd.read_csv(args.boxes, dtype={"product_id": str})[["product_id", "crop_path"]]
    queries = pd.read_parquet(args.queries)[["product_id", "query"]]
    table = (products[["product_id", "product_type", "title"]].merge(crops, on="product_id")
             .merge(queries, on="product_id").rename(columns={"crop_path": "image_path"}))
    if table.empty:
        raise ValueError("embed: no product has a crop and a refined query")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    progress = Progress("embed", len(table))
    with RowCache(args.cache) as cache:
        rows = write_frames(embed_batches(encoder, table, p, version, cache, compute), args.out, progress.add)
        cache.retain_used()
    print(f"embed: {cache.report()}")
    device = resolve_device(p.device, compute)
    report = progress.save(args.throughput, device=device, batch_size=p.batch_size, engine=compute.engine)
    print(f"embed: {rows} products x {encoder.dim}-d (image, text, fused) from {mp.model_name} version "
          f"{version} on {device} ({compute.engine}) -> {args.out}; {report['items_per_s']} products/s, "
          f"peak RSS {report['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
