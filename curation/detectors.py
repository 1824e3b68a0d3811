"""Grounding backends: each returns, for an image and the product type it is prompted with, the best
box (normalised x0, y0, x1, y1) and a score in [0, 1]. Crops never depend on refined text.

- Salient (offline default): the main object by a boundary-prior saliency map over sliding windows;
  the score is the window's figure-ground contrast (inside minus surrounding saliency, model-free, so
  it means the same on any catalog). It cannot read the prompt: it finds the product because product
  photos frame it, not because it knows what a lamp is.
- ClipWindows: the same proposals scored by a CLIP model with the type as prompt (plus synonyms):
  p(type | window) over every product type of the catalog, temperature-calibrated on the catalog's
  own full images. It needs a CLIP that recognises the types (a pretrained one, `model.pretrained`).
- GroundingDino: transformers' zero-shot detector from a hub id or a local directory, as in the paper.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from curation.proposals import top_proposals, windows


@dataclass(frozen=True)
class WindowParams:
    scales: tuple[float, ...] = (0.35, 0.5, 0.65, 0.8)
    aspect_ratios: tuple[float, ...] = (0.75, 1.0, 1.33)
    stride: float = 0.25
    ring: float = 0.25  # ring around a window, as a share of its side, that it must stand out from


@dataclass(frozen=True)
class ClipWindowParams:
    top_proposals: int = 24
    batch_size: int = 256
    calibration_images: int = 256  # full catalog images the temperature is fitted on


@dataclass(frozen=True)
class GroundingDinoParams:
    model: str = "IDEA-Research/grounding-dino-tiny"
    box_threshold: float = 0.25
    text_threshold: float = 0.25
    device: str = "auto"   # auto | cpu | cuda
    amp: str = "bf16"      # autocast on CUDA: bf16 | fp16 | none


def prompts(product_type: str, synonyms: dict[str, list[str]]) -> list[str]:
    """The type in words ("toy_game" -> "toy game") and its synonyms from params."""
    return [product_type.replace("_", " "), *synonyms.get(product_type, [])]


class Detector:
    """A grounding backend. `detect_batch(images, product_types)` -> one (box, score) per image is the
    interface the stage calls; a backend defines it, or only `detect` for one image at a time."""

    def detect(self, image: Image.Image, product_type: str) -> tuple[np.ndarray, float]:
        return self.detect_batch([image], [product_type])[0]

    def detect_batch(self, images: list[Image.Image], types: list[str]) -> list[tuple[np.ndarray, float]]:
        return [self.detect(im, t) for im, t in zip(images, types)]


class Salient(Detector):
    def __init__(self, params: WindowParams):
        self.params = params
        self.grid = windows(params.scales, params.aspect_ratios, params.stride)

    def detect(self, image: Image.Image, product_type: str) -> tuple[np.ndarray, float]:
        boxes, scores = top_proposals(image, self.grid, keep=1, ring=self.params.ring)
        return boxes[0], float(np.clip(scores[0], 0.0, 1.0))


def _normalize(preprocess):
    """The Normalize step of an open_clip eval transform (mean/std of the model)."""
    for t in getattr(preprocess, "transforms", []):
        if type(t).__name__ == "Normalize":
            return torch.tensor(t.mean)[:, None, None], torch.tensor(t.std)[:, None, None]
    raise ValueError("preprocess has no Normalize step")


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of `labels` (temperature scaling)."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 121))

    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(1, keepdims=True)
        return float(-(z[np.arange(len(z)), labels] - np.log(np.exp(z).sum(1))).mean())

    return float(min(grid, key=nll))


class ClipWindows(Detector):
    """p(this product's type | window) among all the catalog's types, at a calibrated temperature."""

    def __init__(self, encoder, types: list[str], params: ClipWindowParams, windows_: WindowParams,
                 synonyms: dict[str, list[str]] | None = None):
        self.encoder, self.params, self.windows = encoder, params, windows_
        self.types = sorted(set(types))
        self.row = {t: i for i, t in enumerate(self.types)}
        text = []
        for t in self.types:  # one prompt embedding per type: the mean of its words' embeddings
            v = encoder.encode_text(prompts(t, synonyms or {})).mean(axis=0)
            text.append(v / np.linalg.norm(v))
        self.text = torch.from_numpy(np.stack(text).astype(np.float32))          # (T, D)
        size = encoder.model.visual.image_size
        self.size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean, self.std = _normalize(encoder.preprocess)
        self.scale = float(encoder.model.logit_scale.detach().exp())
        self.temperature = 1.0
        self.grid = windows(windows_.scales, windows_.aspect_ratios, windows_.stride)

    def calibrate(self, images: list[Image.Image], types: list[str]) -> tuple[float, float]:
        """Fit the temperature on full catalog images and their known types; -> (temperature, share
        of those images whose own type is the CLIP's top type: how well it knows the types)."""
        feats = np.concatenate([self._features(im, np.array([[0, 0, 1, 1]], np.float32)) for im in images])
        labels = np.array([self.row[t] for t in types])
        logits = self.scale * feats @ self.text.numpy().T
        self.temperature = fit_temperature(logits, labels)
        return self.temperature, float((logits.argmax(1) == labels).mean())

    def _features(self, image: Image.Image, boxes: np.ndarray) -> np.ndarray:
        """-> (K, D) CLIP features of the image cut at each box."""
        return np.asarray(self.encoder.encode_pixels(self._crops(image, boxes), self.params.batch_size))

    def _crops(self, image: Image.Image, boxes: np.ndarray) -> torch.Tensor:
        """Crop every box and resize to the model's input with one roi_align call; -> (K, 3, S, S)."""
        from torchvision.ops import roi_align

        x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
        h, w = x.shape[1:]
        rois = torch.from_numpy(boxes * np.array([w, h, w, h], dtype=np.float32))
        rois = torch.cat([torch.zeros(len(rois), 1), rois], 1)                  # (K, 5): batch idx + box
        return (roi_align(x[None], rois, output_size=self.size, aligned=True) - self.mean) / self.std

    def detect_batch(self, images: list[Image.Image], types: list[str]) -> list[tuple[np.ndarray, float]]:
        """Proposals per image, then one CLIP pass over every window of the batch."""
        for t in types:
            if t not in self.row:
                raise ValueError(f"product type {t!r} was not given to the detector")
        full = np.array([[0, 0, 1, 1]], dtype=np.float32)
        boxes = [np.concatenate([top_proposals(im, self.grid, self.params.top_proposals, ring=self.windows.ring)[0],
                                 full]) for im in images]
        crops = torch.cat([self._crops(im, b) for im, b in zip(images, boxes)])
        feats = torch.from_numpy(np.asarray(self.encoder.encode_pixels(crops, self.params.batch_size)))
        probs = (feats @ self.text.T * (self.scale / self.temperature)).softmax(dim=1)
        out, start = [], 0
        for b, t in zip(boxes, types):
            p = probs[start:start + len(b), self.row[t]].numpy()                    # (K,)
            start += len(b)
            best = int(p.argmax())
            out.append((b[best], float(p[best])))
        return out


class GroundingDino(Detector):
    def __init__(self, params: GroundingDinoParams, synonyms: dict[str, list[str]] | None = None):
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        self.params, self.synonyms = params, synonyms or {}
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if params.device == "auto" else params.device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(params.amp)
        self.processor = AutoProcessor.from_pretrained(params.model)
        self.model = AutoModelForZeroShotObjectDetection.from_pretrained(params.model).to(self.device).eval()

    @torch.no_grad()
    def detect_batch(self, images: list[Image.Image], types: list[str]) -> list[tuple[np.ndarray, float]]:
        """Each image prompted with its product type (and synonyms): what the detector was trained to
        ground. One forward pass for the batch, under autocast on CUDA."""
        images = [im.convert("RGB") for im in images]
        sizes = [(im.height, im.width) for im in images]
        inputs = self.processor(images=images, text=[prompts(t, self.synonyms) for t in types],
                                padding=True, return_tensors="pt").to(self.device)
        with torch.autocast("cuda", dtype=self.dtype, enabled=self.device == "cuda" and self.dtype is not None):
            out = self.model(**inputs)
        results = self.processor.post_process_grounded_object_detection(
            out, inputs["input_ids"], threshold=self.params.box_threshold,
            text_threshold=self.params.text_threshold, target_sizes=sizes)
        return [self._best(res, h, w) for res, (h, w) in zip(results, sizes)]

    @staticmethod
    def _best(res: dict, h: int, w: int) -> tuple[np.ndarray, float]:
        if len(res["scores"]) == 0:
            return np.array([0, 0, 1, 1], dtype=np.float32), 0.0
        best = int(res["scores"].argmax())
        box = res["boxes"][best].float().cpu().numpy() / np.array([w, h, w, h])
        return np.clip(box, 0, 1).astype(np.float32), float(res["scores"][best])
