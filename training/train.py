"""train: contrastive fine-tuning of an open_clip model on one variant's (image, text) pairs.

Symmetric InfoNCE with a learnable temperature, AdamW with warmup + cosine decay, early stopping on
validation loss. One MLflow run per training: params, per-epoch metrics, curve and checkpoint.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from training import dist
from training.checkpoint import Progress, fingerprint, restore, save
from training.data import augment, pair_table, read_optional, variants
from training.dist import local_rows, rank, wrap
from training.loader import Pairs
from training.loss import ClipLoss, PairEncoder, clip_step
from training.plots import plot_curve
from vlclip.encoder import ModelParams, checkpoint_sha256, create, save_checkpoint
from vlclip.params import load_params, section
from vlclip.tracking import CHECKPOINT_TAG, MlflowParams, setup, start_run


@dataclass(frozen=True)
class TrainParams:
    seed: int = 0
    epochs: int = 16
    max_steps: int = 0            # optimizer steps; 0: epochs alone bound the run
    batch_size: int = 64          # pairs per micro-batch, over all processes
    accumulate: int = 1           # micro-batches per optimizer step
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    patience: int = 4
    threads: int = 2
    device: str = "auto"
    amp: str = "bf16"             # autocast dtype on CUDA (bf16 | fp16 | none); the CPU trains in fp32
    workers: int = 2              # DataLoader processes for a split too big to preload
    preload_max_pairs: int = 50000
    checkpoint_every: int = 100   # optimizer steps between resume states; 0: none


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
def eval_loss(pair, loss_fn, data: Pairs, batch_size: int, device: str, amp) -> float:
    pair.eval()
    total, count = 0.0, 0
    lists = batches(len(data), batch_size, None)
    for idx, (pixels, tokens) in zip(lists, data.batches([i[local_rows(len(i))] for i in lists])):
        with amp():
            loss = clip_step(pair, loss_fn, pixels.to(device), tokens.to(device), len(idx))
        total += loss.item() * len(idx)
        count += len(idx)
    return total / max(count, 1)


def autocast(p: TrainParams, device: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(p.amp)
    return lambda: torch.autocast("cuda", dtype=dtype, enabled=device == "cuda" and dtype is not None)


def run_epoch(pair, loss_fn, train: Pairs, p: TrainParams, device: str, st: Progress, gen, opt, sched,
              on_step) -> int:
    """Micro-batches st.position.. of st.order; -> micro-batches done this epoch."""
    pair.train()
    amp, model = autocast(p, device), unwrap(pair).model
    todo = st.order[st.position:]
    mine = [i[local_rows(len(i))] for i in todo]
    for idx, (pixels, tokens) in zip(todo, train.batches(mine)):
        n, rows = len(idx), local_rows(len(idx))
        if st.position % p.accumulate == 0:
            opt.zero_grad(set_to_none=True)
        with amp():
            loss = clip_step(pair, loss_fn, augment(pixels, gen, n=n, rows=rows).to(device), tokens.to(device), n)
        (loss / p.accumulate).backward()
        st.running += loss.item()
        st.position += 1
        if st.position % p.accumulate == 0 or st.position == len(st.order):
            opt.step()
            sched.step()
            with torch.no_grad():  # CLIP caps the temperature at 100
                model.logit_scale.clamp_(0, math.log(100))
            st.step += 1
            on_step()
            if p.max_steps and st.step >= p.max_steps:
                break
    return st.position


def end_epoch(pair, loss_fn, val: Pairs, p: TrainParams, device: str, st: Progress, done: int, sched,
              seconds: float, log) -> bool:
    """Record the epoch, keep the best weights; -> True when training should stop early."""
    row = {"epoch": st.epoch, "train_loss": st.running / max(done, 1),
           "val_loss": eval_loss(pair, loss_fn, val, p.batch_size, device, autocast(p, device)),
           "lr": sched.get_last_lr()[0], "seconds": seconds}
    st.history.append(row)
    log(f"  epoch {st.epoch:>2}/{p.epochs}  train {row['train_loss']:.4f}  val {row['val_loss']:.4f}  "
        f"{row['seconds']:.1f}s  step {st.step}")
    if row["val_loss"] < st.best - 1e-4:
        st.best, st.waited = row["val_loss"], 0
        st.best_state = {k: v.detach().cpu().clone() for k, v in unwrap(pair).model.state_dict().items()}
    else:
        st.waited += 1
        if st.waited >= p.patience:
            log(f"  early stop: no better validation loss for {p.patience} epochs")
            return True
    return False


def fit(model, train, val, p: TrainParams, device: str, log=print, resume: Path | None = None,
        mark: str = "") -> tuple[dict, list[dict]]:
    """train/val: Pairs, or (pixels (N,3,H,W), tokens (N,L)) tensors. -> (best state_dict, per-epoch
    history). With `resume`, a state saved there by the same run (same `mark`) is continued."""
    train, val = (d if isinstance(d, Pairs) else Pairs(*d) for d in (train, val))
    gen = torch.Generator().manual_seed(p.seed)
    micro = len(batches(len(train), p.batch_size, None))
    per_epoch = -(-micro // p.accumulate)
    total = min(p.max_steps or per_epoch * p.epochs, per_epoch * p.epochs)
    model.to(device)
    opt, sched = make_optimizer(model, p, total)
    st = restore(resume, mark, model, opt, sched, gen, log)
    pair, loss_fn = wrap(PairEncoder(model), device), ClipLoss()

    def on_step():
        if resume is not None and p.checkpoint_every and st.step % p.checkpoint_every == 0 and rank() == 0:
            save(resume, mark, model, opt, sched, gen, st)

    while st.epoch <= p.epochs and not (p.max_steps and st.step >= p.max_steps):
        t0 = time.time()
        if st.order is None:
            st.order, st.position, st.running = batches(len(train), p.batch_size, gen), 0, 0.0
        done = run_epoch(pair, loss_fn, train, p, device, st, gen, opt, sched, on_step)
        stop = end_epoch(pair, loss_fn, val, p, device, st, done, sched, time.time() - t0, log)
        st.epoch, st.order = st.epoch + 1, None
        if stop:
            break
    return st.best_state, st.history


def unwrap(pair):
    return getattr(pair, "module", pair)


def split_pairs(pairs: pd.DataFrame, split: str, preprocess, tokenizer, p: TrainParams, device: str) -> Pairs:
    part = pairs[pairs["split"] == split]
    if len(part) < 2:
        raise ValueError(f"split {split!r} has {len(part)} pairs; need at least 2")
    return Pairs.from_files(part["image_path"].tolist(), part["text"].tolist(), preprocess, tokenizer,
                            p.preload_max_pairs, p.workers, pin=device == "cuda")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variant", required=True, help="a key of params.yaml variants")
    ap.add_argument("--products", required=True, help="dedup products.parquet")
    ap.add_argument("--boxes", help="ground boxes.csv (crop variants)")
    ap.add_argument("--queries", help="refine queries.parquet (refined variants)")
    ap.add_argument("--resume", help="file for the resume state (kept across a kill, removed when done)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    tp, mp = section(TrainParams, params, "train"), section(ModelParams, params, "model")
    known = variants(params)
    if args.variant not in known:
        raise SystemExit(f"train: unknown variant {args.variant!r}; params.yaml variants: {sorted(known)}")
    variant, device = known[args.variant], pick_device(tp.device)
    distributed = dist.init(device)
    if device == "cuda" and distributed:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.manual_seed(tp.seed)
    torch.set_num_threads(tp.threads)
    pairs = pair_table(pd.read_parquet(args.products), variant,  # each variant reads only its own inputs
                       read_optional(args.boxes) if variant.images == "crops" else None,
                       read_optional(args.queries) if variant.text == "refined" else None)
    model, _, pre_val, tokenizer = create(mp)
    train, val = (split_pairs(pairs, s, pre_val, tokenizer, tp, device) for s in ("train", "val"))
    mark = fingerprint({"train": asdict(tp), "model": asdict(mp), "world": dist.world()},
                       *(pairs[c].tolist() for c in ("product_id", "text", "image_path")))
    say = (lambda s: print(s, flush=True)) if dist.rank() == 0 else (lambda s: None)
    say(f"train[{variant.name}]: {len(train)} train / {len(val)} val pairs ({variant.images} images, "
        f"{variant.text} text), {mp.name} on {device} x {dist.world()}"
        f"{', streamed by ' + str(tp.workers) + ' workers' if train.streamed else ', preloaded'}")
    resume = Path(args.resume) if args.resume else None
    if dist.rank() != 0:
        fit(model, train, val, tp, device, log=say, resume=resume, mark=mark)
        dist.close()
        return 0
    setup(section(MlflowParams, params, "mlflow"))
    with start_run(f"train-{variant.name}", {"variant": variant.name, "stage": "train"}):
        log_params(variant, mp, tp, len(train), len(val))
        state, history = fit(model, train, val, tp, device, log=say, resume=resume, mark=mark)
        say(f"  data-loader wait: {train.waited_s:.1f}s of training")
        finish(model, mp, variant, state, history, args.out)
    dist.close()
    if resume is not None:
        resume.unlink(missing_ok=True)
    return 0


def log_params(variant, mp: ModelParams, tp: TrainParams, n_train: int, n_val: int) -> None:
    import mlflow

    mlflow.log_params({"variant": variant.name, "model": mp.name, "pretrained": mp.pretrained or "none",
                       "n_train": n_train, "n_val": n_val, "world_size": dist.world(), **asdict(tp)})


def finish(model, mp: ModelParams, variant, state: dict, history: list[dict], out_dir: str) -> None:
    """Best weights -> checkpoint directory, curve and run summary; all of it to the MLflow run."""
    import mlflow

    for row in history:
        mlflow.log_metrics({k: row[k] for k in ("train_loss", "val_loss", "lr", "seconds")}, step=row["epoch"])
    model.load_state_dict(state)
    out = save_checkpoint(model.cpu(), mp, out_dir)
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


if __name__ == "__main__":
    raise SystemExit(main())
