"""Symmetric InfoNCE (CLIP) loss. With all texts distinct it is exactly open_clip's ClipLoss on one
process; when a batch repeats a text (two products with the same refined query, or a type prompt),
the copies are merged so a product is never pushed away from its own description."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.dist import gather_rows, local_padded, local_rows


class ClipLoss(nn.Module):
    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor,
                logit_scale: torch.Tensor, text_ids: torch.Tensor | None = None) -> torch.Tensor:
        """image_features (B, D), unit norm; text_features (U, D), unit norm; logit_scale scalar.
        text_ids (B,) maps each image to its row of text_features; None means U == B, pair i <-> i."""
        logits = logit_scale * image_features @ text_features.T                  # (B, U)
        if text_ids is None:
            text_ids = torch.arange(logits.shape[0], device=logits.device)
        image_to_text = F.cross_entropy(logits, text_ids)
        # text -> image: each text's positives are all images that carry it, equally weighted
        target = F.one_hot(text_ids, logits.shape[1]).T.float()                   # (U, B)
        target = target / target.sum(dim=1, keepdim=True)
        text_to_image = -(target * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
        return (image_to_text + text_to_image) / 2


class PairEncoder(nn.Module):
    """The model's two towers as one forward, so DistributedDataParallel sees every parameter used."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor, tokens: torch.Tensor):
        image = self.model.encode_image(pixels, normalize=True)
        text = self.model.encode_text(tokens, normalize=True)
        return image, text, self.model.logit_scale.exp()


def clip_step(pair: nn.Module, loss_fn: ClipLoss, pixels: torch.Tensor, tokens: torch.Tensor,
              n: int | None = None) -> torch.Tensor:
    """One forward pass over a global batch of n pairs, of which this process holds the rows
    `dist.local_rows(n)` (all of them on one process). Repeated token rows are encoded once and
    merged in the loss; features are gathered so every rank's loss is the global batch's."""
    n = len(pixels) if n is None else n
    unique, text_ids = torch.unique(gather_rows(local_padded(tokens, n), n), dim=0, return_inverse=True)
    mine = unique[local_rows(len(unique))]
    image, text, scale = pair(local_padded(pixels, n), local_padded(mine, len(unique)))
    return loss_fn(gather_rows(image, n), gather_rows(text, len(unique)), scale, text_ids)
