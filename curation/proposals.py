"""Class-agnostic objectness proposals: a boundary-prior saliency map scored over sliding windows.

Nothing here knows what the catalog looks like. Product photos frame the product away from the
picture's edges, so a pixel is salient when its colour is far from the colours along the border
(the background prior of salient-object detection); a window scores high when its inside stands out
from a ring around it.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

GRID = 64    # saliency is computed on a GRID x GRID thumbnail; cheap and smooth enough
BORDER = 3   # thumbnail pixels along each edge that sample the background


def saliency(image: Image.Image) -> np.ndarray:
    """-> (GRID, GRID) float map in [0, 1]: each pixel's colour distance to the border's colours (a
    low percentile, so one border pixel of the product's colour does not erase it)."""
    small = image.convert("RGB").resize((GRID, GRID), Image.BILINEAR).filter(ImageFilter.GaussianBlur(1))
    x = np.asarray(small, dtype=np.float32) / 255.0                                       # (G, G, 3)
    b = BORDER
    border = np.concatenate([x[:b].reshape(-1, 3), x[-b:].reshape(-1, 3), x[b:-b, :b].reshape(-1, 3),
                             x[b:-b, -b:].reshape(-1, 3)])                                # (M, 3)
    dist = np.linalg.norm(x.reshape(-1, 1, 3) - border[None], axis=2)                     # (G*G, M)
    k = len(border) // 20                                                                 # 5th percentile
    s = np.partition(dist, k, axis=1)[:, k].reshape(GRID, GRID)
    return s / (s.max() + 1e-6)


def windows(scales, aspect_ratios, stride: float) -> np.ndarray:
    """-> (K, 4) boxes x0, y0, x1, y1 in [0, 1] covering the image at each scale and aspect ratio."""
    out = []
    for s in scales:
        for a in aspect_ratios:
            w, h = min(1.0, s * np.sqrt(a)), min(1.0, s / np.sqrt(a))
            xs = np.arange(0, 1 - w + 1e-6, max(stride * w, 1e-3))
            ys = np.arange(0, 1 - h + 1e-6, max(stride * h, 1e-3))
            out += [(x, y, x + w, y + h) for x in xs for y in ys]
    return np.array(out, dtype=np.float32)


def _box_sums(integral: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    g = integral.shape[0] - 1
    b = np.clip(np.round(boxes * g).astype(int), 0, g)
    x0, y0, x1, y1 = b.T
    x1, y1 = np.maximum(x1, x0 + 1), np.maximum(y1, y0 + 1)
    total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return total, (x1 - x0) * (y1 - y0)


def objectness(sal: np.ndarray, boxes: np.ndarray, ring: float = 0.25) -> np.ndarray:
    """Mean saliency inside each box minus mean saliency in a ring around it."""
    integral = np.pad(sal, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    outer = np.clip(boxes + np.stack([-w, -h, w, h], 1) * ring, 0, 1)
    s_in, a_in = _box_sums(integral, boxes)
    s_out, a_out = _box_sums(integral, outer)
    ring_area = np.maximum(a_out - a_in, 1)
    return s_in / a_in - (s_out - s_in) / ring_area


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (4,), b (K, 4) -> (K,)"""
    x0, y0 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x1, y1 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda z: (z[..., 2] - z[..., 0]) * (z[..., 3] - z[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter + 1e-9)


def top_proposals(image: Image.Image, grid: np.ndarray, keep: int, nms: float = 0.6,
                  ring: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """-> (<=keep, 4) normalised boxes, highest objectness first after greedy non-maximum
    suppression, and their objectness (inside minus ring saliency, in [-1, 1])."""
    scores = objectness(saliency(image), grid, ring)
    chosen: list[int] = []
    for i in np.argsort(-scores):
        if all(iou(grid[i], grid[[j]])[0] < nms for j in chosen):
            chosen.append(int(i))
            if len(chosen) == keep:
                break
    return grid[chosen], scores[chosen]
