"""Seed spread: retrain variants with other training seeds on a finished run's data and report the mean
and spread of their test figures, so a difference can be weighed against what a reseed alone moves.

    .venv/bin/python benchmarks/seeds.py [--seeds 0 1 2] [--variants vlclip baseline] [--work /tmp/seeds]

The run's own seed (train.seed) reuses models/<variant>; other seeds train into --work with every
other setting unchanged. Evaluation is the evaluate stage's protocol on the test split.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from training.data import pair_table, read_optional, variants
from training.evaluate import EvaluateParams, evaluate_split, summarise
from training.train import main as train
from vlclip.dag import stage_arg
from vlclip.encoder import load_encoder
from vlclip.params import load_params, section

ROOT = Path(__file__).resolve().parents[1]


def checkpoint(params: dict, variant: str, seed: int, work: Path) -> Path:
    if seed == params["train"]["seed"]:
        return ROOT / "models" / variant
    out = work / f"seed{seed}" / variant
    if not (out / "model.pt").exists():
        params_file = work / f"seed{seed}" / "params.yaml"
        params_file.parent.mkdir(parents=True, exist_ok=True)
        params_file.write_text(yaml.safe_dump({**params, "train": {**params["train"], "seed": seed}}))
        train(["--params", str(params_file), "--variant", variant, "--out", str(out),
               *(f for flag in ("--products", "--boxes", "--queries")
                 for f in (flag, str(stage_arg(ROOT, "evaluate", flag))))])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=["vlclip", "baseline"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/vlclip-seeds"))
    args = ap.parse_args()
    params = load_params(ROOT / "params.yaml")
    p = section(EvaluateParams, params, "evaluate")
    products = pd.read_parquet(stage_arg(ROOT, "evaluate", "--products"))
    boxes, refined = (read_optional(str(stage_arg(ROOT, "evaluate", f))) for f in ("--boxes", "--queries"))
    chosen = {v: spec for v, spec in variants(params).items() if v in args.variants}
    tables = {v: pair_table(products, spec, boxes, refined) for v, spec in chosen.items()}
    catalog = (ROOT / params["catalog"]["path"]).resolve()
    rows = []
    for seed in args.seeds:
        encoders = {v: load_encoder(checkpoint(params, v, seed, args.work)) for v in chosen}
        for v, res in evaluate_split(encoders, tables, products, "test", catalog, p).items():
            rows.append({"seed": seed, "variant": v, **summarise(res["ranks"], p.ks)})
            print(f"seed {seed} {v}: hits@5 {rows[-1]['hits@5']:.3f}  mrr {rows[-1]['mrr']:.3f}", flush=True)
    table = pd.DataFrame(rows)
    stats = table.groupby("variant")[["hits@1", "hits@5", "hits@10", "mrr"]].agg(["mean", "std", "min", "max"])
    print(f"\n{len(args.seeds)} seeds ({', '.join(map(str, args.seeds))}), {table['n_queries'].iloc[0]} test queries")
    print(stats.round(3).to_string())
    return 0 if np.isfinite(table["hits@5"]).all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
