"""Model throughput on this machine: training fed by the real data path, embedding, grounding.

    python benchmarks/throughput.py --json reports/throughput.json                  # CPU: vlclip-tiny
    python benchmarks/throughput.py --device cuda --model ViT-B-32 --batch 512 \\
        --dino-images 256 --json reports/throughput_gpu.json                       # a GPU machine

Random-init weights have the real cost, so nothing is downloaded. It writes JPEG crops (the ground
stage's output format), then measures:
- training: `training.train.fit` on the streamed DataLoader path (worker processes decode the
  JPEGs), `--steps` optimizer steps at `--batch`, bf16 autocast on CUDA; samples/s and the share of
  the time the loop waited on the data loader;
- embedding: the embed stage's batch loop, JPEG -> vector, images/s;
- grounding: Grounding DINO with the grounding-dino-tiny architecture (Swin-T + BERT-base),
  batched, bf16 autocast on CUDA, images/s.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from vlclip.progress import write_report


def crops(folder: Path, n: int, size: int) -> list[str]:
    """n smooth random JPEGs of size x size (what pHash-deduplicated product crops cost to decode)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, paths = np.random.default_rng(0), []
    for i in range(n):
        path = folder / f"c{i}.jpg"
        if not path.exists():
            small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(small).resize((size, size), Image.BICUBIC).save(path, quality=90)
        paths.append(str(path))
    return paths


def train_figure(paths: list[str], args) -> dict:
    from training.loader import Pairs
    from training.train import TrainParams, fit
    from vlclip.encoder import ModelParams, create

    torch.manual_seed(0)
    model, _, pre, tok = create(ModelParams(args.model))
    texts = [f"a red striped product number {i}" for i in range(len(paths))]
    train = Pairs.from_files(paths, texts, pre, tok, preload_max=0, workers=args.workers, pin=args.device == "cuda")
    val = Pairs.from_files(paths[:4], texts[:4], pre, tok, preload_max=10)
    p = TrainParams(epochs=1, max_steps=args.steps, batch_size=args.batch, warmup_steps=1, patience=9,
                    device=args.device, amp="bf16", workers=args.workers)
    _, hist = fit(model, train, val, p, args.device, log=lambda s: None)
    seconds = hist[0]["seconds"]
    samples = args.steps * args.batch
    return {"model": args.model, "batch": args.batch, "steps": args.steps, "samples_per_s": round(samples / seconds, 1),
            "loader_wait_share": round(train.waited_s / seconds, 3), "workers": args.workers}


def embed_figure(paths: list[str], args) -> dict:
    from serving.embed import EmbedParams, embed_batches
    from vlclip.encoder import Encoder, ModelParams, create

    model, _, pre, tok = create(ModelParams(args.model))
    encoder, p = Encoder(model, pre, tok), EmbedParams(args.batch, args.device, "bf16")
    table = pd.DataFrame({"product_id": [f"p{i}" for i in range(len(paths))], "product_type": "mug", "title": "t",
                          "image_path": paths, "query": ["a red mug"] * len(paths)})
    list(embed_batches(encoder, table.head(args.batch), p, "bench"))  # warm-up
    t0 = time.perf_counter()
    rows = sum(len(f) for f in embed_batches(encoder, table, p, "bench"))
    return {"images_per_s": round(rows / (time.perf_counter() - t0), 1), "batch": args.batch}


def tiny_dino(folder: Path) -> Path:
    """grounding-dino-tiny's architecture (transformers' defaults: Swin-T backbone, BERT-base text),
    random init, saved like a hub checkpoint; a small WordPiece vocabulary stands in for BERT's."""
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    if not (folder / "config.json").exists():
        GroundingDinoForObjectDetection(GroundingDinoConfig()).save_pretrained(folder)
        words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "mug", "lamp", "dress", "shoe"]
        vocab = folder / "vocab.txt"
        vocab.write_text("\n".join(words) + "\n")
        GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(),
                               tokenizer=BertTokenizer(vocab_file=str(vocab))).save_pretrained(folder)
    return folder


def dino_figure(paths: list[str], args, work: Path) -> dict:
    from curation.detectors import GroundingDino, GroundingDinoParams

    det = GroundingDino(GroundingDinoParams(model=str(tiny_dino(work / "dino")), device=args.device))
    images = []
    for p in paths[:args.dino_images]:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    det.detect_batch(images[:2], ["mug"] * 2)  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(images), args.dino_batch):
        det.detect_batch(images[i:i + args.dino_batch], ["mug"] * len(images[i:i + args.dino_batch]))
    return {"images_per_s": round(len(images) / (time.perf_counter() - t0), 2), "batch": args.dino_batch,
            "images": len(images), "input": "shortest edge 800 (the processor's default)"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="vlclip-tiny")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--size", type=int, default=224, help="side of the JPEG crops")
    ap.add_argument("--dino-images", type=int, default=8)
    ap.add_argument("--dino-batch", type=int, default=4)
    ap.add_argument("--work", type=Path, default=Path("/tmp/vlclip-throughput"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    paths = crops(args.work / "crops", max(args.images, args.batch * 2), args.size)
    report = {"device": args.device if args.device != "cuda" else torch.cuda.get_device_name(),
              "train": train_figure(paths, args)}
    print(f"train: {report['train']}", flush=True)
    report["embed"] = embed_figure(paths, args)
    print(f"embed: {report['embed']}", flush=True)
    report["grounding_dino_tiny"] = dino_figure(paths, args, args.work)
    print(f"grounding: {report['grounding_dino_tiny']}", flush=True)
    if args.json:
        write_report(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
