import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from curation.detectors import (
    ClipWindowParams,
    ClipWindows,
    GroundingDino,
    GroundingDinoParams,
    Salient,
    WindowParams,
    fit_temperature,
    prompts,
)
from curation.ground import GroundParams, ground_one, make_detector, square_box
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
    props, scores = top_proposals(im, grid, keep=5)
    assert len(props) == 5 and iou(truth, props[:1])[0] > 0.4 and list(scores) == sorted(scores, reverse=True)
    assert all(iou(props[i], props[i + 1:i + 2])[0] < 0.6 for i in range(4))  # suppressed overlaps


def test_square_box_grows_and_stays_inside():
    x0, y0, x1, y1 = square_box(np.array([0.8, 0.1, 1.0, 0.3]), 200, 100, margin=0.1)
    assert x1 - x0 == y1 - y0 and 0 <= x0 and x1 <= 200 and 0 <= y0 and y1 <= 100


class _Fixed:
    def __init__(self, box, score):
        self.box, self.score = np.array(box, dtype=np.float32), score

    def detect(self, image, product_type):
        return self.box, self.score


def test_fallback_below_threshold_keeps_full_image():
    im = _scene()
    p = GroundParams(threshold=0.5, crop_size=64)
    low = ground_one(_Fixed([0.5, 0.2, 0.9, 0.6], 0.3), im, "mug", p)
    assert low["fallback"] and (low["x0"], low["y0"], low["x1"], low["y1"]) == (0, 0, 192, 192)
    high = ground_one(_Fixed([0.5, 0.2, 0.9, 0.6], 0.8), im, "mug", p)
    assert not high["fallback"] and high["x0"] > 50 and max(high["crop"].size) == 64
    assert (high["bx0"], high["by0"], high["bx1"], high["by1"]) == (96, 38, 173, 115)  # the detector's box
    assert (low["bx0"], low["by0"], low["bx1"], low["by1"]) == (0, 0, 192, 192)       # the full image


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


def test_clip_windows_scores_windows_by_the_type_prompt_at_a_fitted_temperature():
    det = ClipWindows(_ColourEncoder(), ["red", "grey", "blue"], ClipWindowParams(top_proposals=10), WindowParams())
    t, accuracy = det.calibrate([_scene()], ["red"])
    logits = det.scale * det._features(_scene(), np.array([[0, 0, 1, 1]], np.float32)) @ det.text.numpy().T
    assert accuracy == 1.0 and t == pytest.approx(fit_temperature(logits, np.array([det.row["red"]])))
    box, score = det.detect(_scene(), "red")
    truth = np.array([100, 40, 170, 110]) / 192
    assert iou(truth, box[None])[0] > 0.3 and 0.5 < score <= 1
    _, blue = det.detect(_scene(), "blue")  # nothing blue in the picture: low confidence
    assert blue < score
    with pytest.raises(ValueError, match="not given"):
        det.detect(_scene(), "sofa")


def test_fit_temperature_matches_confidence_to_accuracy():
    """A model 60% right with logit margin 10 over 3 classes is calibrated at e^(10/T) = 3."""
    labels = np.array([0, 0, 0, 1, 2] * 20)
    logits = np.zeros((100, 3))
    logits[:, 0] = 10.0
    assert fit_temperature(logits, labels) == pytest.approx(10 / np.log(3), rel=0.05)


def test_prompts_are_the_type_in_words_plus_synonyms():
    assert prompts("toy_game", {"toy_game": ["piñata", "board game"]}) == ["toy game", "piñata", "board game"]
    assert prompts("sofa", {}) == ["sofa"]


def test_salient_finds_the_main_object_and_is_unsure_on_a_blank_picture():
    det = Salient(WindowParams())
    box, score = det.detect(_scene(), "mug")
    assert iou(np.array([100, 40, 170, 110]) / 192, box[None])[0] > 0.4 and score > 0.35
    rng = np.random.default_rng(1)
    blank = Image.fromarray((128 + 4 * rng.standard_normal((192, 192, 3))).clip(0, 255).astype(np.uint8))
    assert det.detect(blank, "mug")[1] < 0.35


def test_make_detector_names_the_backends():
    assert isinstance(make_detector(GroundParams(backend="salient"), None), Salient)
    with pytest.raises(ValueError, match="salient"):
        make_detector(GroundParams(backend="yolo"), None)


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
    g = ground_one(det, _scene(), "mug", GroundParams(threshold=1.01))
    assert g["fallback"]  # a random model never clears tau > 1


def _scenes():
    return [_scene(), _scene((20, 30, 90, 150)), _scene((60, 60, 120, 120), size=160)]


def test_batched_detection_gives_each_image_its_own_result():
    """A batch call equals one call per image, in order, for every backend (Grounding DINO pads a
    batch of differently sized images; its scores may move by float noise only)."""
    types = ["red", "blue", "red"]
    for det in (Salient(WindowParams()),
                ClipWindows(_ColourEncoder(), ["red", "grey", "blue"], ClipWindowParams(top_proposals=10),
                            WindowParams())):
        batch = det.detect_batch(_scenes(), types)
        for (box, score), im, t in zip(batch, _scenes(), types):
            one_box, one_score = det.detect(im, t)
            assert np.allclose(box, one_box) and score == pytest.approx(one_score, abs=1e-5)


def test_grounding_dino_batch_matches_single_images(tmp_path):
    _tiny_grounding_dino(tmp_path)
    det = GroundingDino(GroundingDinoParams(model=str(tmp_path), box_threshold=0.0, text_threshold=0.0))
    assert det.device == "cpu"  # auto without CUDA
    images, types = _scenes(), ["mug", "hat", "a mug"]
    batch = det.detect_batch(images, types)
    assert len(batch) == 3
    for (box, score), im, t in zip(batch, images, types):
        one_box, one_score = det.detect(im, t)
        assert np.allclose(box, one_box, atol=0.02) and score == pytest.approx(one_score, abs=0.02)
