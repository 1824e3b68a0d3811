"""Where the heavy per-product work of a stage runs: in this process (`local`) or over a Ray Data actor
pool (`ray`), one model per actor.

A stage hands the engine a worker and the rows still to compute (its cache's misses). A worker is a
picklable object with `setup()` (load or move the model: called once, in the process that runs it)
and `__call__(batch) -> frame` (one result row per input row, in order). The engine yields the result
frames in input order, so the stage's caching, writing and progress are the same for both engines,
and so are its outputs.

Ray: `ray.init()` connects to `RAY_ADDRESS` when it is set (a cluster) and otherwise starts a local
Ray on this machine. Workers must reach the rows' files (image paths) on whichever node they run:
on a cluster, put the catalog on storage every node mounts.
"""
from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

POSITION = "_vlclip_position"  # the row's place in the input, carried through Ray and dropped after


@dataclass(frozen=True)
class ComputeParams:
    engine: str = "local"         # local | ray
    actors: int = 2               # ray: actors per stage, one model each
    cpus_per_actor: float = 1.0   # ray: CPUs each actor reserves
    gpus_per_actor: float = 0.0   # ray: GPUs each actor reserves (its device is then CUDA)
    local_cpus: int = 0           # ray without RAY_ADDRESS: CPUs the local Ray may use (0: all)


def resolve_device(device: str, p: ComputeParams) -> str:
    """`auto` -> cuda where the work will run has a GPU: this machine for the local engine, the actor's
    reservation for Ray (an actor without GPUs sees none). Known on the driver, so caches can key on it."""
    if device != "auto":
        return device
    if p.engine == "ray":
        return "cuda" if p.gpus_per_actor > 0 else "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def rebatch(chunks: Iterable[pd.DataFrame], size: int) -> Iterator[pd.DataFrame]:
    """Frames of `size` rows (the last may be shorter) from frames of any size, read one after another."""
    held, n = [], 0
    for chunk in chunks:
        held.append(chunk)
        n += len(chunk)
        while n >= size:
            merged = pd.concat(held, ignore_index=True)
            yield merged.iloc[:size].reset_index(drop=True)
            held, n = [merged.iloc[size:]], n - size
    if n:
        yield pd.concat(held, ignore_index=True)


@functools.cache
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to trim
        return None


def trim_heap() -> None:
    """Give the C heap's free pages back to the OS (glibc's `malloc_trim`), after each batch. A model's
    batches free and allocate blocks of many sizes; glibc raises its mmap threshold to the largest
    block freed, so later large blocks come from the heap, which fragments: without this, embed's
    peak RSS grew with the number of batches (1.39x from 2k to 20k products). Costs a batch's page
    faults again (embed on CPU: about 15 % slower)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _local(worker, chunks: Iterable[pd.DataFrame], total: int, batch_size: int,
           p: ComputeParams) -> Iterator[pd.DataFrame]:
    worker.setup()
    for batch in rebatch(chunks, batch_size):
        yield worker(batch)
        trim_heap()


class _Actor:
    """Ray Data's callable class: the worker arrives once per actor, is set up there, then maps batches."""

    def __init__(self, worker):
        self.worker = worker
        self.worker.setup()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        position = batch[POSITION].to_numpy()
        out = self.worker(batch.drop(columns=[POSITION]).reset_index(drop=True))
        trim_heap()
        if len(out) != len(batch):
            raise ValueError(f"{type(self.worker).__name__} returned {len(out)} rows for {len(batch)}")
        return out.assign(**{POSITION: position})


def start_ray(p: ComputeParams) -> None:
    """Connect to RAY_ADDRESS, or start a local Ray with `local_cpus` (once per process)."""
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS") or None
    local = {} if address else {"num_cpus": p.local_cpus or None, "include_dashboard": False}
    ray.init(address=address, log_to_driver=False, **local)


def _ray(worker, chunks: Iterable[pd.DataFrame], total: int, batch_size: int,
         p: ComputeParams) -> Iterator[pd.DataFrame]:
    import ray

    start_ray(p)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    # blocks of whole batches, at least two per actor where the rows allow, so every actor gets work;
    # they go to Ray's object store (which spills to disk), not this process's memory
    per_block = batch_size * max(1, min(16, total // (batch_size * 2 * p.actors)))
    refs, n = [], 0
    for block in rebatch(chunks, per_block):
        refs.append(ray.put(block.assign(**{POSITION: range(n, n + len(block))})))
        n += len(block)
    ds = ray.data.from_pandas_refs(refs)
    ds = ds.map_batches(_Actor, fn_constructor_args=(worker,), batch_size=batch_size, batch_format="pandas",
                        compute=ray.data.ActorPoolStrategy(size=p.actors),
                        num_cpus=p.cpus_per_actor, num_gpus=p.gpus_per_actor or None)
    done, pending = 0, []
    for batch in ds.iter_batches(batch_format="pandas", batch_size=None):
        pending.append(batch)
        ready, pending = _in_order(pending, done)
        if ready is not None:
            done += len(ready)
            yield ready
    if done != n or pending:
        raise RuntimeError(f"ray returned {done} rows in order for {n}")


def _in_order(pending: list[pd.DataFrame], done: int) -> tuple[pd.DataFrame | None, list[pd.DataFrame]]:
    """The rows from position `done` on that have all arrived, and what must wait for earlier rows."""
    merged = pd.concat(pending, ignore_index=True).sort_values(POSITION, kind="stable")
    position = merged[POSITION].to_numpy()
    gap = (position != done + np.arange(len(position))).nonzero()[0]
    n = int(gap[0]) if len(gap) else len(position)
    if n == 0:
        return None, [merged]
    rest = [merged.iloc[n:]] if n < len(merged) else []
    return merged.iloc[:n].drop(columns=[POSITION]).reset_index(drop=True), rest


# engine name -> (worker, frames, row count, batch size, params) -> result frames in input order
ENGINES = {"local": _local, "ray": _ray}


def map_batches(worker, rows: pd.DataFrame | Iterable[pd.DataFrame], batch_size: int, p: ComputeParams,
                total: int | None = None) -> Iterator[pd.DataFrame]:
    """Run `worker` over `rows` in batches on the configured engine; result frames in input order.
    `rows` is one frame, or frames read one after another (`total`: how many rows they hold), so a
    stage can stream a catalog that does not fit in memory."""
    if p.engine not in ENGINES:
        raise ValueError(f"compute.engine must be one of {sorted(ENGINES)}, got {p.engine!r}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if isinstance(rows, pd.DataFrame):
        rows, total = [rows], len(rows)
    if total == 0:
        return iter(())
    return ENGINES[p.engine](worker, rows, batch_size * 64 if total is None else total, batch_size, p)
