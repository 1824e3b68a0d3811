"""Resume state of a training run: weights, optimizer, scheduler, RNG and where the epoch stood.

Written every `train.checkpoint_every` optimizer steps (atomically: a temporary file, then a
rename), read at start when its fingerprint (settings and data) matches the run's. A run resumed
after a kill continues with the same batch order and random draws, so on one machine it ends with
the weights the uninterrupted run would have had.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class Progress:
    epoch: int = 1            # the epoch under way
    position: int = 0         # its next micro-batch
    step: int = 0             # optimizer steps done
    running: float = 0.0      # this epoch's summed micro-batch losses
    order: list | None = None  # this epoch's micro-batches (index tensors)
    history: list = field(default_factory=list)
    best: float = math.inf
    best_state: dict | None = None
    waited: int = 0


def fingerprint(settings: dict, ids: list[str], texts: list[str], paths: list[str]) -> str:
    """A run's identity: what it trains on and with which settings (not where the files live)."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for row in zip(ids, texts, (Path(p).name for p in paths)):
        h.update("\x1f".join(row).encode() + b"\x1e")
    return h.hexdigest()


def save(path: Path, mark: str, model, opt, sched, gen: torch.Generator, progress: Progress) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"fingerprint": mark, "model": model.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "gen": gen.get_state(), "rng": torch.get_rng_state(),
                "progress": progress.__dict__}, tmp)
    os.replace(tmp, path)


def restore(path: Path | None, mark: str, model, opt, sched, gen: torch.Generator, log) -> Progress:
    """-> the saved progress, with model/opt/sched/RNG restored; a fresh Progress when there is no
    state for this run (none saved, or saved by a run with other settings or data)."""
    if path is None or not path.exists():
        return Progress()
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a torn or foreign file: start over rather than fail the stage
        log(f"  resume state {path.name} unreadable ({type(exc).__name__}); starting from step 0")
        return Progress()
    if state.get("fingerprint") != mark:
        log("  resume state is from other settings or data; starting from step 0")
        return Progress()
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    gen.set_state(state["gen"])
    torch.set_rng_state(state["rng"])
    progress = Progress(**state["progress"])
    log(f"  resumed at optimizer step {progress.step} (epoch {progress.epoch}, micro-batch {progress.position})")
    return progress
