"""Symmetric InfoNCE (CLIP) loss. With all texts distinct it is exactly open_clip's ClipLoss on one
process; when a batch repeats a text (two products with the same refined query, or a type prompt),
the copies are merged so a product is never pushed away from its own description."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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


def clip_step(model, loss_fn: ClipLoss, pixels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """One forward pass: repeated token rows (B, L) are encoded once and merged in the loss."""
    unique, text_ids = torch.unique(tokens, dim=0, return_inverse=True)          # (U, L), (B,)
    image = model.encode_image(pixels, normalize=True)
    text = model.encode_text(unique, normalize=True)
    return loss_fn(image, text, model.logit_scale.exp(), text_ids)
