"""Grounding backends: each returns, per image, the best box (normalised x0, y0, x1, y1) for the
product type it is prompted with, and a score in [0, 1].

- ClipWindows (offline default): class-agnostic objectness proposals, scored zero-shot by a CLIP
  model trained on full images: the probability that the window matches the product's own visual
  description (type + colour + pattern from refinement) rather than other products' descriptions.
- GroundingDino: transformers' zero-shot detector from a hub id or a local directory.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from curation.proposals import top_proposals, windows


@dataclass(frozen=True)
class ClipWindowParams:
    scales: tuple[float, ...] = (0.35, 0.5, 0.65, 0.8)
    aspect_ratios: tuple[float, ...] = (0.75, 1.0, 1.33)
    stride: float = 0.25
    top_proposals: int = 24
    batch_size: int = 256
    keep_ratio: float = 1.0  # pick the largest window scoring >= keep_ratio * best (1.0: the best)


@dataclass(frozen=True)
class GroundingDinoParams:
    model: str = "IDEA-Research/grounding-dino-tiny"
    box_threshold: float = 0.25
    text_threshold: float = 0.25


def _normalize(preprocess):
    """The Normalize step of an open_clip eval transform (mean/std of the model)."""
    for t in getattr(preprocess, "transforms", []):
        if type(t).__name__ == "Normalize":
            return torch.tensor(t.mean)[:, None, None], torch.tensor(t.std)[:, None, None]
    raise ValueError("preprocess has no Normalize step")


class ClipWindows:
    """Scores each proposal with p(this product's description | window) against the descriptions of
    `contrast` other catalog products: the window that shows *this* product (its type, colour and
    pattern) wins, and the probability is the confidence compared with tau."""

    def __init__(self, encoder, descriptions: list[str], params: ClipWindowParams, contrast: int = 31,
                 seed: int = 0):
        self.encoder, self.params, self.contrast = encoder, params, contrast
        self.texts = sorted(set(descriptions))
        self.text = torch.from_numpy(encoder.encode_text(self.texts))           # (T, D)
        self.row = {t: i for i, t in enumerate(self.texts)}
        self.rng = np.random.default_rng(seed)
        size = encoder.model.visual.image_size
        self.size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean, self.std = _normalize(encoder.preprocess)
        self.scale = float(encoder.model.logit_scale.detach().exp())
        self.grid = windows(params.scales, params.aspect_ratios, params.stride)

    def _window_pixels(self, image: Image.Image, boxes: np.ndarray) -> torch.Tensor:
        """Crop every box and resize to the model's input with one roi_align call: (K, 3, S, S)."""
        from torchvision.ops import roi_align

        x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
        h, w = x.shape[1:]
        rois = torch.from_numpy(boxes * np.array([w, h, w, h], dtype=np.float32))
        rois = torch.cat([torch.zeros(len(rois), 1), rois], 1)                  # (K, 5): batch idx + box
        crops = roi_align(x[None], rois, output_size=self.size, aligned=True)
        return (crops - self.mean) / self.std

    def _candidates(self, description: str) -> torch.Tensor:
        """Row 0 = this product's description, then `contrast` others drawn without replacement."""
        if description not in self.row:
            raise ValueError(f"description {description!r} was not given to the detector")
        me = self.row[description]
        others = self.rng.choice(len(self.texts) - 1, size=min(self.contrast, len(self.texts) - 1), replace=False)
        others = others + (others >= me)                                         # skip `me`
        return self.text[np.concatenate([[me], others])]

    def detect(self, image: Image.Image, product_type: str, description: str) -> tuple[np.ndarray, float]:
        boxes = np.concatenate([top_proposals(image, self.grid, self.params.top_proposals),
                                np.array([[0, 0, 1, 1]], dtype=np.float32)])
        feats = torch.from_numpy(self.encoder.encode_pixels(self._window_pixels(image, boxes),
                                                            self.params.batch_size))         # (K, D)
        probs = (self.scale * feats @ self._candidates(description).T).softmax(dim=1)[:, 0].numpy()  # (K,)
        # The top window is often a tight part of the product (a colour patch); among windows almost
        # as confident, the largest is more likely to hold the whole product.
        best = int(probs.argmax())
        if self.params.keep_ratio < 1.0:
            near = np.nonzero(probs >= self.params.keep_ratio * probs[best])[0]
            area = (boxes[near, 2] - boxes[near, 0]) * (boxes[near, 3] - boxes[near, 1])
            best = int(near[np.argmax(area)])
        return boxes[best], float(probs[best])


class GroundingDino:
    def __init__(self, params: GroundingDinoParams, device: str = "cpu"):
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        self.params, self.device = params, device
        self.processor = AutoProcessor.from_pretrained(params.model)
        self.model = AutoModelForZeroShotObjectDetection.from_pretrained(params.model).to(device).eval()

    @torch.no_grad()
    def detect(self, image: Image.Image, product_type: str, description: str = "") -> tuple[np.ndarray, float]:
        """Prompted with the product type alone: what the detector was trained to ground."""
        image = image.convert("RGB")
        w, h = image.size
        inputs = self.processor(images=image, text=[[product_type]], return_tensors="pt").to(self.device)
        out = self.model(**inputs)
        res = self.processor.post_process_grounded_object_detection(
            out, inputs["input_ids"], threshold=self.params.box_threshold,
            text_threshold=self.params.text_threshold, target_sizes=[(h, w)])[0]
        if len(res["scores"]) == 0:
            return np.array([0, 0, 1, 1], dtype=np.float32), 0.0
        best = int(res["scores"].argmax())
        box = res["boxes"][best].cpu().numpy() / np.array([w, h, w, h])
        return np.clip(box, 0, 1).astype(np.float32), float(res["scores"][best])
