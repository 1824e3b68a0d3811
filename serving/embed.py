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
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from vlclip.cache import RowCache, digest, file_digest
from vlclip.params import load_params, section
from vlclip.progress import Progress
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


def weights_key(encoder) -> str:
    """The model's identity for the cache: its weights (not the registry's version number, which a
    new registry would give to other weights), and the device and precision it runs at."""
    h = hashlib.sha256()
    for name, t in sorted(encoder.model.state_dict().items()):
        h.update(name.encode() + t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest("embed", h.hexdigest(), encoder.device, str(encoder.amp))


def embed_batches(encoder, table: pd.DataFrame, batch_size: int, version: str, threads: int = 4,
                  cache: RowCache | None = None):
    """table: product_id, product_type, title, image_path (crop), query -> one embeddings frame per
    batch, so memory holds a batch, not the catalog. The next batch's images decode in threads. With
    a cache, a product whose crop and query this model version embedded before is not encoded again."""
    cache = cache or RowCache(None)
    model = weights_key(encoder) if cache.db is not None else ""
    # second resolution, UTC: Feast materializes by event time; one stamp for the whole run
    stamp = pd.Timestamp(datetime.now(UTC).replace(microsecond=0))
    with ThreadPoolExecutor(threads) as pool:
        parts = [table.iloc[i:i + batch_size] for i in range(0, len(table), batch_size)]
        keyed = pool.map(lambda part: [digest(model, file_digest(p), q)
                                       for p, q in zip(part["image_path"], part["query"])], parts)
        for part, keys in zip(parts, keyed):
            vectors = _vectors(encoder, part, keys, batch_size, cache)
            out = part[["product_id", "product_type", "title", "image_path"]].copy()
            for j, name in enumerate(("image_embedding", "text_embedding", "fused_embedding")):
                out[name] = [v[j] for v in vectors]
            out["model_version"] = version
            out["event_timestamp"] = stamp
            yield out


def _vectors(encoder, part: pd.DataFrame, keys: list[str], batch_size: int, cache: RowCache) -> list[np.ndarray]:
    """(3, dim) float32 per product: image, text, fused; encodes only the cache's misses."""
    known = {k: np.frombuffer(v, np.float32).reshape(3, -1) for k, v in cache.get_many(keys).items()}
    todo = [i for i, k in enumerate(keys) if k not in known]
    if todo:
        images = [_rgb(p) for p in part["image_path"].iloc[todo]]
        image = encoder.encode_images(images, batch_size)
        text = encoder.encode_text(part["query"].iloc[todo].tolist(), batch_size)
        fused = unit(image + text)  # one vector for "more like this": what it looks like + how it is described
        made = {keys[i]: np.stack([image[n], text[n], fused[n]]).astype(np.float32) for n, i in enumerate(todo)}
        cache.put_many({k: v.tobytes() for k, v in made.items()})
        known.update(made)
    return [known[k] for k in keys]


def embed_products(encoder, table: pd.DataFrame, batch_size: int, version: str) -> pd.DataFrame:
    """Every batch of `embed_batches` in one frame (for small tables and tests)."""
    return pd.concat(list(embed_batches(encoder, table, batch_size, version)), ignore_index=True)


def write_batches(frames, path: str, progress: Progress) -> int:
    """Stream frames into one parquet file, a row group each; -> rows written."""
    writer, rows = None, 0
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))  # a batch of all-empty titles keeps the types
            rows += len(frame)
            progress.add(len(frame))
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    if writer is None:  # no products: an empty file with the columns
        raise ValueError("embed: no product has a crop and a refined query")
    writer.close()
    tmp.replace(path)
    return rows


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
    encoder = encoder.on(p.device, p.amp)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    progress = Progress("embed", len(table))
    with RowCache(args.cache) as cache:
        rows = write_batches(embed_batches(encoder, table, p.batch_size, version, cache=cache), args.out, progress)
        cache.retain_used()
    print(f"embed: {cache.report()}")
    report = progress.save(args.throughput, device=encoder.device, batch_size=p.batch_size)
    print(f"embed: {rows} products x {encoder.dim}-d (image, text, fused) from {mp.model_name} version "
          f"{version} on {encoder.device} -> {args.out}; {report['items_per_s']} products/s, "
          f"peak RSS {report['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
