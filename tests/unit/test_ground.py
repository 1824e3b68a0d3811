import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from curation.detectors import ClipWindowParams, ClipWindows, GroundingDino, GroundingDinoParams
from curation.ground import GroundParams, ground_one, square_box
from curation.proposals import iou, objectness, saliency, top_proposals, windows


def _scene(box=(100, 40, 170, 110), size=192):
    """A plain textured wall with one saturated object: the object must win objectness."""
    rng = np.random.default_rng(0)
    bg = (120 + 10 * rng.standard_normal((size, size, 3))).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(bg)
    ImageDraw.Draw(im).ellipse(box, fill=(200, 30, 40))
    return im


def test_windows_cover_scales_inside_unit_square():
    grid = windows((0.3, 0.6), (0.75, 1.0, 1.33), 0.25)
    assert grid.min() >= 0 and grid.max() <= 1 + 1e-6
    sides = np.round(grid[:, 2] - grid[:, 0], 2)
    assert len(set(sides)) >= 4


def test_objectness_prefers_the_salient_object():
    im = _scene()
    grid = windows((0.3, 0.4, 0.5), (1.0,), 0.125)
    best = grid[np.argmax(objectness(saliency(im), grid))]
    truth = np.array([100, 40, 170, 110]) / 192
    assert iou(truth, best[None])[0] > 0.4
    props = top_proposals(im, grid, keep=5)
    assert len(props) == 5 and iou(truth, props[:1])[0] > 0.4
    assert all(iou(props[i], props[i + 1:i + 2])[0] < 0.6 for i in range(4))  # suppressed overlaps


def test_square_box_grows_and_stays_inside():
    x0, y0, x1, y1 = square_box(np.array([0.8, 0.1, 1.0, 0.3]), 200, 100, margin=0.1)
    assert x1 - x0 == y1 - y0 and 0 <= x0 and x1 <= 200 and 0 <= y0 and y1 <= 100


class _Fixed:
    def __init__(self, box, score):
        self.box, self.score = np.array(box, dtype=np.float32), score

    def detect(self, image, product_type, description):
        return self.box, self.score


def test_fallback_below_threshold_keeps_full_image():
    im = _scene()
    p = GroundParams(threshold=0.5, crop_size=64)
    low = ground_one(_Fixed([0.5, 0.2, 0.9, 0.6], 0.3), im, "mug", "red mug", p)
    assert low["fallback"] and (low["x0"], low["y0"], low["x1"], low["y1"]) == (0, 0, 192, 192)
    high = ground_one(_Fixed([0.5, 0.2, 0.9, 0.6], 0.8), im, "mug", "red mug", p)
    assert not high["fallback"] and high["x0"] > 50 and max(high["crop"].size) == 64


class _ColourEncoder:
    """Stands in for a trained CLIP: an image embeds as its mean colour, 'red ...' as red."""

    def __init__(self):
        from torchvision import transforms

        self.preprocess = transforms.Compose([transforms.Resize(32), transforms.ToTensor(),
                                              transforms.Normalize([0.5] * 3, [0.5] * 3)])
        self.model = type("M", (), {"visual": type("V", (), {"image_size": 32})(),
                                    "logit_scale": torch.tensor(np.log(50.0))})()

    def encode_text(self, texts):
        table = {"red": [1, -1, -1], "grey": [0, 0, 0.1], "blue": [-1, -1, 1]}
        v = np.array([table[t.split()[0]] for t in texts], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def encode_pixels(self, pixels, batch_size=256):
        v = pixels.mean(dim=(2, 3)).numpy()
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_clip_windows_finds_the_window_matching_the_description():
    det = ClipWindows(_ColourEncoder(), ["red mug", "grey wall", "blue hat"], ClipWindowParams(top_proposals=10),
                      contrast=2)
    box, score = det.detect(_scene(), "mug", "red mug")
    truth = np.array([100, 40, 170, 110]) / 192
    assert iou(truth, box[None])[0] > 0.3 and 0.5 < score <= 1
    _, grey = det.detect(_scene(), "mug", "blue hat")  # nothing blue in the picture: low confidence
    assert grey < score
    with pytest.raises(ValueError, match="not given"):
        det.detect(_scene(), "sofa", "green sofa")


def _tiny_grounding_dino(directory):
    """A random-init Grounding DINO saved like a hub checkpoint (STACK.md §2): code path only."""
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    vl = [f"[unused{i}]" for i in range(1040)]
    for i, t in {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".", 1029: "?"}.items():
        vl[i] = t
    vocab = {t: i for i, t in enumerate(vl + ["mug", "hat", "a"])}
    cfg = GroundingDinoConfig(
        backbone_config=SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1],
                                   num_heads=[1, 1, 2, 2], window_size=4, out_features=["stage2", "stage3", "stage4"]),
        text_config=BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=20, max_text_len=32,
        num_feature_levels=4, disable_custom_kernels=True)
    GroundingDinoForObjectDetection(cfg).save_pretrained(directory)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 128, "longest_edge": 160})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=BertTokenizer(vocab=vocab))
    processor.save_pretrained(directory)


def test_grounding_dino_backend_from_a_local_directory(tmp_path):
    _tiny_grounding_dino(tmp_path)
    det = GroundingDino(GroundingDinoParams(model=str(tmp_path), box_threshold=0.0, text_threshold=0.0))
    box, score = det.detect(_scene(), "mug")
    assert box.shape == (4,) and 0 <= box.min() and box.max() <= 1 and 0 <= score <= 1
    g = ground_one(det, _scene(), "mug", "red mug", GroundParams(threshold=1.01))
    assert g["fallback"]  # a random model never clears tau > 1


def test_keep_ratio_prefers_the_largest_nearly_best_window():
    """A red object inside a larger red-dominated region: ratio 1.0 takes the single best window,
    a lower ratio the largest window whose score is close to it."""
    tight = ClipWindows(_ColourEncoder(), ["red mug", "grey wall", "blue hat"],
                        ClipWindowParams(top_proposals=10, keep_ratio=1.0), contrast=2)
    loose = ClipWindows(_ColourEncoder(), ["red mug", "grey wall", "blue hat"],
                        ClipWindowParams(top_proposals=10, keep_ratio=0.5), contrast=2)
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
    (b1, s1), (b2, s2) = tight.detect(_scene(), "mug", "red mug"), loose.detect(_scene(), "mug", "red mug")
    assert area(b2) > area(b1) and s2 <= s1 and s2 >= 0.5 * s1
