"""Batches of (pixels, tokens) for one split, behind one interface for any catalog size.

A split of up to `train.preload_max_pairs` pairs is decoded once into memory (the small-catalog
fast path). A larger one is decoded per batch by `torch.utils.data` worker processes, so memory
holds a few batches, not the split. Both give the same tensors in the same order, so a catalog's
results do not depend on which path it took.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from training.data import load_pixels


class _Images(Dataset):
    def __init__(self, paths: list[str], texts: list[str], preprocess, tokenizer):
        self.paths, self.texts, self.preprocess, self.tokenizer = paths, texts, preprocess, tokenizer

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            with Image.open(self.paths[i]) as im:
                return self.preprocess(im.convert("RGB")), i
        except OSError as exc:
            raise OSError(f"cannot read training image {self.paths[i]}: {exc}") from exc

    def collate(self, items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = torch.stack([p for p, _ in items])
        return pixels, self.tokenizer([self.texts[i] for _, i in items])


class Pairs:
    """One split's (image, text) pairs. `batches(index_lists)` yields (pixels, tokens) per list, in
    order; `waited_s` is the time the caller spent blocked on the next batch."""

    def __init__(self, pixels: torch.Tensor | None, tokens: torch.Tensor | None, images: _Images | None = None,
                 workers: int = 0, pin: bool = False):
        self.pixels, self.tokens, self.images, self.workers, self.pin = pixels, tokens, images, workers, pin
        self.waited_s = 0.0

    @classmethod
    def from_files(cls, paths: list[str], texts: list[str], preprocess, tokenizer, preload_max: int,
                   workers: int = 0, pin: bool = False) -> Pairs:
        if len(paths) <= preload_max:
            return cls(load_pixels(paths, preprocess), tokenizer(texts))
        return cls(None, None, _Images(paths, texts, preprocess, tokenizer), workers, pin)

    def __len__(self) -> int:
        return len(self.images) if self.images is not None else len(self.pixels)

    @property
    def streamed(self) -> bool:
        return self.images is not None

    def batches(self, index_lists: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        source = self._stream(index_lists) if self.streamed else ((self.pixels[i], self.tokens[i]) for i in index_lists)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(source)
            except StopIteration:
                return
            self.waited_s += time.perf_counter() - t0
            yield batch

    def _stream(self, index_lists: list[torch.Tensor]):
        loader = DataLoader(self.images, batch_sampler=[i.tolist() for i in index_lists],
                            num_workers=self.workers, collate_fn=self.images.collate, pin_memory=self.pin,
                            prefetch_factor=4 if self.workers else None,
                            generator=torch.Generator().manual_seed(0))  # leaves the global RNG as it was
        yield from loader
