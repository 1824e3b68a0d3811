"""Catalog scale: per-product stages at growing catalog sizes, then a 1 % catalog change.

    python benchmarks/scale.py --sizes 2000,20000 --change 0.01 --json reports/scale.json

For each size it builds a demo catalog at a small image size, runs ingest, dedup, refine, ground and
embed as the pipeline does (each its own process, with its per-product cache), and records items,
seconds, items/s and the stage process's peak RSS. Then it changes the catalog (a third of the
change added products, a third edited (title or image), a third deleted) and runs the stages again,
recording what each recomputed and how long it took, and checks that the index and the online store
hold exactly the new catalog's products. Index (edge) and materialize (Feast, SQLite) run as the
pipeline runs them. The embed stage uses a fixed random-init
encoder (`embed_worker`), since throughput does not depend on what the weights learned.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image, ImageOps

from vlclip.progress import write_report

ROOT = Path(__file__).resolve().parents[1]
# how each stage reports what it (re)computed: per-product caches, the index update, materialize
COUNTS = [re.compile(r"(\d+) computed, \d+ from cache"), re.compile(r"updated: (\d+) upserted"),
          re.compile(r"(\d+) products written")]


def _hwm_mb(pid: int) -> float | None:
    """The process's peak resident memory since its exec (VmHWM), while it runs."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_stage(args: list[str], log: Path) -> dict:
    """One stage process; -> seconds, its peak RSS (VmHWM, read every 20 ms until it exits: the
    rusage of a child also counts the parent's memory it was forked from), computed/cached counts."""
    t0, peak = time.perf_counter(), 0.0
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        while proc.poll() is None:
            peak = max(peak, _hwm_mb(proc.pid) or 0.0)
            time.sleep(0.02)
    text = log.read_text()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}); see {log}:\n{text[-2000:]}")
    found = [int(n) for pattern in COUNTS for n in pattern.findall(text)]
    computed = sum(found) if found else ("all" if "rebuilt" in text else None)
    return {"seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(peak, 1), "recomputed": computed}


def stages(work: Path, params: Path) -> list[tuple[str, list[str]]]:
    d = work / "data"
    p = ["--params", str(params)]
    return [
        ("ingest", ["-m", "curation.ingest", *p, "--catalog", str(work / "catalog"), "--out", str(d / "catalog")]),
        ("dedup", ["-m", "curation.dedup", *p, "--products", str(d / "catalog/products.parquet"),
                   "--out", str(d / "dedup"), "--cache", str(d / "cache/dedup.sqlite")]),
        ("refine", ["-m", "curation.refine", *p, "--products", str(d / "dedup/products.parquet"),
                    "--out", str(d / "refine"), "--cache", str(d / "cache/refine.sqlite")]),
        ("ground", ["-m", "curation.ground", *p, "--products", str(d / "dedup/products.parquet"),
                    "--out", str(d / "ground"), "--cache", str(d / "cache/ground.sqlite")]),
        ("embed", [str(Path(__file__)), "--embed-worker", str(d), str(params)]),
        ("index", ["-m", "serving.index", *p, "--embeddings", str(d / "embeddings/products.parquet"),
                   "--index", str(d / "index"), "--receipt", str(d / "receipts/index.json"),
                   "--metrics", str(d / "metrics/index.json"), "--state", str(d / "cache/index_rows.parquet")]),
        ("materialize", ["-m", "serving.materialize", *p, "--repo", str(work / "feature_repo"),
                         "--embeddings", str(d / "embeddings/products.parquet"),
                         "--receipt", str(d / "receipts/materialize.json"),
                         "--state", str(d / "cache/materialize_rows.parquet")]),
    ]


def run_all(work: Path, params: Path, n_items: int, tag: str) -> dict:
    out = {}
    for name, args in stages(work, params):
        r = run_stage(args, work / f"{tag}-{name}.log")
        r.update(items=n_items, items_per_s=round(n_items / r["seconds"], 1))
        out[name] = r
        print(f"  {tag:<7} {name:<7} {r['seconds']:>8.1f} s  {r['items_per_s']:>8.1f}/s  peak RSS "
              f"{r['peak_rss_mb']:>7.0f} MB  recomputed {r['recomputed']}", flush=True)
    return out


def change_catalog(folder: Path, share: float, seed: int) -> tuple[dict, list[str]]:
    """Add, edit (half title, half image) and delete a share of the products, a third each."""
    rng = np.random.default_rng(seed)
    cat = pd.read_csv(folder / "catalog.csv", dtype=str, keep_default_na=False)
    k = max(3, int(len(cat) * share)) // 3
    picks = rng.choice(len(cat), 3 * k, replace=False)
    edit, delete, source = picks[:k], picks[k:2 * k], picks[2 * k:]
    for n, i in enumerate(edit):
        if n % 2:
            cat.loc[i, "title"] = f"{cat.loc[i, 'title']} renamed edition"
        else:
            path = folder / cat.loc[i, "image_path"]
            with Image.open(path) as im:
                ImageOps.mirror(im.convert("RGB")).rotate(7).save(path, quality=90)
    added = cat.iloc[source].copy()
    tag = f"N{rng.integers(1 << 30):x}"  # fresh ids even when a catalog is changed twice
    added["product_id"] = [f"{tag}-{n:06d}" for n in range(len(added))]
    for n, i in enumerate(source):
        dst = f"images/{tag}-{n:06d}.jpg"
        with Image.open(folder / cat.loc[i, "image_path"]) as im:
            ImageOps.flip(im.convert("RGB")).save(folder / dst, quality=90)
        added.iloc[n, added.columns.get_loc("image_path")] = dst
    gone = cat.loc[delete, "product_id"].tolist()
    cat = pd.concat([cat.drop(index=delete), added], ignore_index=True)
    cat.to_csv(folder / "catalog.csv", index=False)
    return {"added": len(added), "edited": len(edit), "deleted": len(delete), "products_after": len(cat)}, gone


def build(size: int, work: Path, image_size: int) -> Path:
    if work.exists():
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["demo"].update(n_products=size, image_size=image_size, n_broken=0)
    params["ground"]["crop_size"] = min(params["ground"]["crop_size"], image_size)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    (work / "feature_repo").mkdir()
    for name in ("definitions.py", "feature_store.yaml"):
        shutil.copy(ROOT / "feature_repo" / name, work / "feature_repo" / name)
    subprocess.run([sys.executable, "-m", "demo_catalog.demo", "--params", str(work / "params.yaml"),
                    "--out", str(work / "catalog")], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return work / "params.yaml"


def stores_hold_exactly(work: Path, params_file: Path, gone: list[str]) -> dict:
    """Whether the index and the online store hold exactly the embeddings table's products."""
    from serving.backends import open_searcher
    from serving.backends.schema import IndexParams
    from serving.features import ProductFeatures
    from vlclip.params import load_params, section

    d = work / "data"
    want = pd.read_parquet(d / "embeddings/products.parquet", columns=["product_id", "product_type"])
    searcher = open_searcher(section(IndexParams, load_params(params_file), "index"), d / "index")
    try:
        probe = np.ones(searcher.dim, np.float32)
        held = {h["product_id"] for t in searcher.types()
                for h in searcher.search(probe, t, searcher.count(t), exact=True)}
    finally:
        searcher.close()
    feats = ProductFeatures(work / "feature_repo")
    online = feats.lookup(want["product_id"].tolist() + gone)["model_version"].notna().to_numpy()
    return {"index_exact": held == set(want["product_id"]),
            "online_store_exact": bool(online[:len(want)].all() and not online[len(want):].any())}


def embed_worker(data: str, params_file: str) -> int:
    """The embed stage's batch loop and cache on a fixed random-init encoder (no registry needed)."""
    import torch

    from serving.embed import EmbedParams, embed_batches
    from vlclip.cache import RowCache
    from vlclip.encoder import Encoder, ModelParams, create
    from vlclip.params import load_params, section
    from vlclip.progress import Progress
    from vlclip.tables import write_frames

    d, p = Path(data), section(EmbedParams, load_params(params_file), "embed")
    torch.manual_seed(0)
    model, _, pre, tok = create(ModelParams("vlclip-tiny"))
    products = pd.read_parquet(d / "dedup/products.parquet")[["product_id", "product_type", "title"]]
    crops = pd.read_csv(d / "ground/boxes.csv", dtype={"product_id": str})[["product_id", "crop_path"]]
    queries = pd.read_parquet(d / "refine/queries.parquet")[["product_id", "query"]]
    table = (products.merge(crops, on="product_id").merge(queries, on="product_id")
             .rename(columns={"crop_path": "image_path"}))
    with RowCache(d / "cache/embed.sqlite") as cache:
        frames = embed_batches(Encoder(model, pre, tok), table, p, "bench", cache=cache)
        (d / "embeddings").mkdir(exist_ok=True)
        write_frames(frames, d / "embeddings/products.parquet", Progress("embed", len(table)).add)
        cache.retain_used()
    print(f"embed: {cache.report()}")
    return 0


def rerun(work: Path, names: list[str]) -> dict:
    """Run the named stages again on a work dir, each from nothing: its cache, state and receipt removed."""
    d, params, out = work / "data", work / "params.yaml", {}
    n_items = len(pd.read_parquet(d / "catalog/products.parquet", columns=["product_id"]))
    for name, args in stages(work, params):
        if name not in names:
            continue
        for stale in [*(d / "cache").glob(f"{name}.sqlite*"), d / "cache" / f"{name}_rows.parquet",
                      d / "receipts" / f"{name}.json"]:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
        r = run_stage(args, work / f"rerun-{name}.log")
        out[name] = {**r, "items": n_items, "items_per_s": round(n_items / r["seconds"], 1)}
        print(f"  rerun   {name:<7} {r['seconds']:>8.1f} s  {out[name]['items_per_s']:>8.1f}/s  peak RSS "
              f"{r['peak_rss_mb']:>7.0f} MB  recomputed {r['recomputed']}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000,20000")
    ap.add_argument("--change", type=float, default=0.01)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--work", type=Path, default=Path("/tmp/vlclip-scale"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--again", action="store_true",
                    help="reuse each size's work dir: bring its caches up to date, then time another change")
    ap.add_argument("--only", help="comma-separated stages to run again, without their caches and stores, on each "
                                   "size's work dir of an earlier run (after a change to those stages)")
    ap.add_argument("--embed-worker", nargs=2, metavar=("DATA", "PARAMS"), help=argparse.SUPPRESS)
    ap.add_argument("--check-stores", nargs="+", metavar="WORK PARAMS GONE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.embed_worker:
        return embed_worker(*args.embed_worker)
    if args.check_stores:  # in its own process, so the driver stays small
        work, params, *gone = args.check_stores
        print(json.dumps(stores_hold_exactly(Path(work), Path(params), gone)))
        return 0
    if args.only:
        report = {size: rerun(args.work / f"n{size}", args.only.split(",")) for size in args.sizes.split(",")}
        if args.json:
            write_report(args.json, report)
        return 0
    report = {}
    for size in map(int, args.sizes.split(",")):
        work = args.work / f"n{size}"
        print(f"catalog of {size} products ({args.image_size} px)", flush=True)
        params = work / "params.yaml" if args.again else build(size, work, args.image_size)
        full = run_all(work, params, size, "warm" if args.again else "full")
        changed, gone = change_catalog(work / "catalog", args.change, seed=size)
        update = run_all(work, params, changed["products_after"], "update")
        checked = subprocess.run([sys.executable, str(Path(__file__)), "--check-stores", str(work), str(params),
                                  *gone], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 capture_output=True, text=True, check=True)
        changed.update(json.loads(checked.stdout.strip().splitlines()[-1]))
        full_s, update_s = (sum(r["seconds"] for r in x.values()) for x in (full, update))
        report[str(size)] = {"stages": full, "change": changed, "update": update,
                             "full_seconds": round(full_s, 1), "update_seconds": round(update_s, 1),
                             "update_share": round(update_s / full_s, 3)}
        print(f"  change {changed}: update {update_s:.0f} s of a full {full_s:.0f} s "
              f"({100 * update_s / full_s:.0f} %)", flush=True)
    if args.json:
        write_report(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
