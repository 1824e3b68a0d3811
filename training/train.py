"""train: contrastive fine-tuning of an open_clip model on one variant's (image, text) pairs.

Symmetric InfoNCE with a learnable temperature, AdamW with warmup + cosine decay, early stopping on
validation loss. One MLflow run per training: params, per-epoch metrics, curve and checkpoint.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass

import pandas as pd
import torch

from training.data import augment, load_pixels, pair_table, read_optional, variants
from training.loss import ClipLoss, clip_step
from training.plots import plot_curve
from vlclip.encoder import ModelParams, checkpoint_sha256, create, save_checkpoint
from vlclip.params import load_params, section
from vlclip.tracking import CHECKPOINT_TAG, MlflowParams, setup, start_run


@dataclass(frozen=True)
class TrainParams:
    seed: int = 0
    epochs: int = 16
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    patience: int = 4
    threads: int = 2
    device: str = "auto"


def pick_device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def make_optimizer(model, p: TrainParams, total_steps: int):
    """AdamW without decay on gains, biases and the temperature (as open_clip does); warmup + cosine."""
    flat = [t for n, t in model.named_parameters() if t.ndim < 2 or "logit_scale" in n or "bias" in n]
    flat_ids = {id(t) for t in flat}
    rest = [t for t in model.parameters() if id(t) not in flat_ids]
    opt = torch.optim.AdamW([{"params": flat, "weight_decay": 0.0},
                             {"params": rest, "weight_decay": p.weight_decay}], lr=p.lr)

    def factor(step: int) -> float:
        if step < p.warmup_steps:
            return (step + 1) / p.warmup_steps
        progress = (step - p.warmup_steps) / max(1, total_steps - p.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def batches(n: int, size: int, generator: torch.Generator | None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    # drop a last batch of one: InfoNCE needs negatives
    return [order[i:i + size] for i in range(0, n, size) if len(order[i:i + size]) > 1]


@torch.no_grad()
def eval_loss(model, loss_fn, pixels, tokens, batch_size: int, device: str) -> float:
    model.eval()
    total, count = 0.0, 0
    for idx in batches(len(pixels), batch_size, None):
        total += clip_step(model, loss_fn, pixels[idx].to(device), tokens[idx].to(device)).item() * len(idx)
        count += len(idx)
    return total / max(count, 1)


def fit(model, train, val, p: TrainParams, device: str, log=print) -> tuple[dict, list[dict]]:
    """train/val: (pixels (N,3,H,W), tokens (N,L)). -> (best state_dict, per-epoch history)."""
    gen = torch.Generator().manual_seed(p.seed)
    steps_per_epoch = len(batches(len(train[0]), p.batch_size, None))
    opt, sched = make_optimizer(model, p, steps_per_epoch * p.epochs)
    loss_fn, history = ClipLoss(), []
    best, best_state, waited = float("inf"), None, 0
    model.to(device)
    for epoch in range(1, p.epochs + 1):
        model.train()
        t0, running = time.time(), 0.0
        for idx in batches(len(train[0]), p.batch_size, gen):
            loss = clip_step(model, loss_fn, augment(train[0][idx], gen).to(device), train[1][idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():  # CLIP caps the temperature at 100
                model.logit_scale.clamp_(0, math.log(100))
            running += loss.item()
        row = {"epoch": epoch, "train_loss": running / max(steps_per_epoch, 1),
               "val_loss": eval_loss(model, loss_fn, *val, p.batch_size, device),
               "lr": sched.get_last_lr()[0], "seconds": time.time() - t0}
        history.append(row)
        log(f"  epoch {epoch:>2}/{p.epochs}  train {row['train_loss']:.4f}  val {row['val_loss']:.4f}  "
            f"{row['seconds']:.1f}s")
        if row["val_loss"] < best - 1e-4:
            best, waited = row["val_loss"], 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= p.patience:
                log(f"  early stop: no better validation loss for {p.patience} epochs")
                break
    return best_state, history


def tensors(pairs: pd.DataFrame, split: str, preprocess, tokenizer):
    part = pairs[pairs["split"] == split]
    if len(part) < 2:
        raise ValueError(f"split {split!r} has {len(part)} pairs; need at least 2")
    return load_pixels(part["image_path"].tolist(), preprocess), tokenizer(part["text"].tolist())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variant", required=True, help="a key of params.yaml variants")
    ap.add_argument("--products", required=True, help="dedup products.parquet")
    ap.add_argument("--boxes", help="ground boxes.csv (crop variants)")
    ap.add_argument("--queries", help="refine queries.parquet (refined variants)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    tp, mp = section(TrainParams, params, "train"), section(ModelParams, params, "model")
    torch.manual_seed(tp.seed)
    torch.set_num_threads(tp.threads)
    known = variants(params)
    if args.variant not in known:
        raise SystemExit(f"train: unknown variant {args.variant!r}; params.yaml variants: {sorted(known)}")
    variant, device = known[args.variant], pick_device(tp.device)
    pairs = pair_table(pd.read_parquet(args.products), variant,  # each variant reads only its own inputs
                       read_optional(args.boxes) if variant.images == "crops" else None,
                       read_optional(args.queries) if variant.text == "refined" else None)
    model, _, pre_val, tokenizer = create(mp)
    train, val = (tensors(pairs, s, pre_val, tokenizer) for s in ("train", "val"))
    print(f"train[{variant.name}]: {len(train[0])} train / {len(val[0])} val pairs "
          f"({variant.images} images, {variant.text} text), {mp.name} on {device}")
    setup(section(MlflowParams, params, "mlflow"))
    import mlflow

    with start_run(f"train-{variant.name}", {"variant": variant.name, "stage": "train"}):
        mlflow.log_params({"variant": variant.name, "model": mp.name, "pretrained": mp.pretrained or "none",
                           "n_train": len(train[0]), "n_val": len(val[0]), **asdict(tp)})
        state, history = fit(model, train, val, tp, device,
                             log=lambda s: print(s, flush=True))
        for row in history:
            mlflow.log_metrics({k: row[k] for k in ("train_loss", "val_loss", "lr", "seconds")}, step=row["epoch"])
        model.load_state_dict(state)
        out = save_checkpoint(model.cpu(), mp, args.out)
        # The checkpoint directory holds only what the weights determine (no run id, no timings), so a
        # retrain that reproduces the weights reproduces every file and DVC reruns nothing downstream.
        hist = pd.DataFrame(history).drop(columns="seconds")
        hist.to_csv(out / "history.csv", index=False)
        plot_curve(hist, f"{variant.name} training", out / "curve.png")
        best = hist.loc[hist["val_loss"].idxmin()]
        (out / "run.json").write_text(json.dumps(
            {"variant": variant.name, "best_epoch": int(best["epoch"]),
             "best_val_loss": float(best["val_loss"]), "epochs_run": len(history)}, indent=2))
        mlflow.log_metrics({"best_val_loss": float(best["val_loss"]), "best_epoch": int(best["epoch"])})
        mlflow.set_tag(CHECKPOINT_TAG, checkpoint_sha256(out))  # register finds this run by it
        mlflow.log_artifacts(str(out), artifact_path="checkpoint")
    print(f"train[{variant.name}]: best val loss {best['val_loss']:.4f} at epoch {int(best['epoch'])}; "
          f"checkpoint in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
