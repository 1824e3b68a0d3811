"""Data-parallel training under `torchrun`: process group, batch slices and a feature all-gather.

Every rank draws the same global batch (same seed), takes its contiguous slice, encodes it, and
the features are gathered so each rank computes the loss over the whole global batch, with
negatives from every rank, as one process would. The gather passes gradients back to the rank that
produced each row (backward: all-reduce, then the own slice); DistributedDataParallel averages the
parameter gradients, which then equal one process's gradient on the global batch.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init(device: str) -> bool:
    """Join the process group that `torchrun` describes in the environment; False when alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return True


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def local_rows(n: int) -> slice:
    """This rank's contiguous share of n global rows (ceil(n / world) each; the last may be short)."""
    per = per_rank(n)
    return slice(min(n, rank() * per), min(n, (rank() + 1) * per))


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(world())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = len(x)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[rank() * ctx.rows:(rank() + 1) * ctx.rows]


def per_rank(n: int) -> int:
    return -(-n // world())


def local_padded(x: torch.Tensor, n: int) -> torch.Tensor:
    """This rank's rows of `local_rows(n)` (x holds only those), padded to `per_rank(n)` rows with
    zeros so every rank passes the same shape to the gather; a lone process gets x as it is."""
    per = per_rank(n)
    return torch.cat([x, x.new_zeros((per - len(x), *x.shape[1:]))]) if len(x) < per else x


def gather_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """Every rank's `local_padded` rows -> the n global rows in order, gradients kept."""
    return x if world() == 1 else _Gather.apply(x)[:n]


def wrap(model: torch.nn.Module, device: str) -> torch.nn.Module:
    if world() == 1:
        return model
    ids = [torch.cuda.current_device()] if device == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def barrier() -> None:
    if world() > 1:
        dist.barrier()


def close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
