import math

import numpy as np
import pandas as pd
import pytest
import torch

from training.data import Variant, augment, pair_table, raw_text, variants
from training.evaluate import rank_metrics
from training.loss import ClipLoss
from training.train import TrainParams, fit, make_optimizer
from vlclip.encoder import ModelParams, checkpoint_sha256, create, load_encoder, save_checkpoint

VARIANTS = {"vlclip": Variant("vlclip", "crops", "refined"), "baseline": Variant("baseline", "full", "raw"),
            "no_refinement": Variant("no_refinement", "crops", "raw")}


def test_clip_loss_matches_reference_and_prefers_aligned_pairs():
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    scale = torch.tensor(10.0)
    logits = scale * img @ txt.T
    y = torch.arange(8)
    ref = (torch.nn.functional.cross_entropy(logits, y) + torch.nn.functional.cross_entropy(logits.T, y)) / 2
    assert torch.isclose(ClipLoss()(img, txt, scale), ref)
    assert ClipLoss()(img, img, scale) < ClipLoss()(img, txt, scale)


def test_pair_table_picks_images_and_text_by_variant():
    products = pd.DataFrame({"product_id": ["a", "b"], "product_type": ["mug", "hat"], "split": ["train", "test"],
                             "image_path": ["full_a", "full_b"], "title": ["T<b>a</b>", "Tb"],
                             "description": ["d  a", "db"]})
    boxes = pd.DataFrame({"product_id": ["a", "b"], "crop_path": ["crop_a", "crop_b"]})
    queries = pd.DataFrame({"product_id": ["a", "b"], "query": ["qa", "qb"]})
    v = pair_table(products, VARIANTS["vlclip"], boxes, queries)
    assert list(v["image_path"]) == ["crop_a", "crop_b"] and list(v["text"]) == ["qa", "qb"]
    b = pair_table(products, VARIANTS["baseline"])
    assert list(b["image_path"]) == ["full_a", "full_b"] and b["text"][0] == raw_text("T<b>a</b>", "d  a")
    with pytest.raises(ValueError, match="crops"):
        pair_table(products, VARIANTS["no_refinement"])


def test_variants_come_from_params_in_order_and_unknown_kinds_fail():
    params = {"variants": {"b": {"images": "full", "text": "raw"}, "a": {"images": "crops", "text": "refined"}}}
    assert list(variants(params).values()) == [Variant("b", "full", "raw"), Variant("a", "crops", "refined")]
    with pytest.raises(ValueError, match="variants.x: images must be one of"):
        variants({"variants": {"x": {"images": "thumbnails", "text": "raw"}}})
    with pytest.raises(KeyError, match="unknown keys"):
        variants({"variants": {"x": {"images": "full", "text": "raw", "lr": 1}}})


def test_augment_keeps_shape_and_changes_pixels():
    x = torch.rand(4, 3, 16, 16)
    y = augment(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and not torch.equal(x, y)


def test_optimizer_warms_up_then_decays():
    model = torch.nn.Linear(4, 4)
    opt, sched = make_optimizer(model, TrainParams(lr=1.0, warmup_steps=4), total_steps=20)
    lrs = []
    for _ in range(20):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[2] > lrs[0] and max(lrs) == pytest.approx(1.0) and lrs[-1] < 0.05
    assert opt.param_groups[0]["weight_decay"] == 0.0  # the bias


def test_fit_learns_a_separable_toy_task_and_round_trips(tmp_path):
    """Four colours <-> four words: training must cut the validation loss below chance (ln 4)."""
    torch.manual_seed(0)
    model, _, pre, tok = create(ModelParams("vlclip-tiny"))
    colours = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "white": (1, 1, 1)}
    names = list(colours)  # one of each per batch: no false negatives
    pix = torch.stack([torch.tensor(colours[n], dtype=torch.float32)[:, None, None].expand(3, 64, 64) for n in names])
    pix = pix + 0.05 * torch.randn_like(pix)
    data = (pix, tok(names))
    _, hist = fit(model, data, data, TrainParams(epochs=60, batch_size=4, lr=2e-3, warmup_steps=5, patience=60),
                  "cpu", log=lambda s: None)
    assert hist[-1]["val_loss"] < math.log(4) * 0.8
    save_checkpoint(model, ModelParams("vlclip-tiny"), tmp_path)
    enc = load_encoder(tmp_path)
    t = enc.encode_text(["red", "blue"])
    assert t.shape == (2, 128) and np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)


def test_rank_metrics():
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]])
    m = rank_metrics(sim, [{2}, {2, 1}], ks=(1, 2))
    assert m == {"hits@1": 0.5, "hits@2": 1.0, "mrr": 0.75, "n_queries": 2}


def test_repeated_texts_are_merged_not_treated_as_negatives():
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(2, 8), dim=1)
    ids = torch.tensor([0, 1, 0, 1])
    merged = ClipLoss()(img, txt, torch.tensor(5.0), ids)
    naive = ClipLoss()(img, txt[ids], torch.tensor(5.0))  # copies as negatives of each other
    assert merged < naive
    # images aligned with their (shared) text give a lower loss than misaligned ones
    aligned = ClipLoss()(txt[ids], txt, torch.tensor(20.0), ids)
    assert aligned < ClipLoss()(txt[1 - ids], txt, torch.tensor(20.0), ids)


def test_model_configs_are_registered_with_open_clip_once():
    import open_clip.factory

    from vlclip.encoder import CONFIG_DIR

    for _ in range(3):
        create(ModelParams("vlclip-tiny"))
    assert open_clip.factory._MODEL_CONFIG_PATHS.count(CONFIG_DIR) == 1


def test_loading_a_checkpoint_does_not_claim_random_weights(tmp_path, caplog):
    model, *_ = create(ModelParams("vlclip-tiny"))
    save_checkpoint(model, ModelParams("vlclip-tiny"), tmp_path)
    caplog.clear()
    with caplog.at_level("WARNING"):
        loaded = load_encoder(tmp_path)
    assert not [r for r in caplog.records if "initialized randomly" in r.getMessage()]
    with caplog.at_level("WARNING"):  # building a model from scratch still says so
        create(ModelParams("vlclip-tiny"))
    assert [r for r in caplog.records if "initialized randomly" in r.getMessage()]
    assert loaded.encode_text(["red mug"]).shape == (1, 128)
    assert checkpoint_sha256(tmp_path) == checkpoint_sha256(save_checkpoint(loaded.model, ModelParams("vlclip-tiny"),
                                                                            tmp_path / "again"))


def test_trimmed_text_gives_the_full_context_vectors_and_only_where_it_may():
    """The service's queries read their own tokens, not the whole context: same vectors (float
    rounding apart) for texts of different lengths in one batch; a tower without a causal mask, whose
    end token sees the padding, keeps the full context."""
    from vlclip.encoder import Encoder, _trimmable

    torch.manual_seed(0)
    model, _, pre, tok = create(ModelParams("vlclip-tiny"))
    enc, trimmed = Encoder(model, pre, tok), Encoder(model, pre, tok, trim_text=True)
    texts = ["red", "a long navy blue cotton shirt with white buttons and a pocket", "", "shoe " * 100]
    full, short = enc.encode_text(texts), trimmed.encode_text(texts)
    assert full.shape == short.shape == (4, 128)
    np.testing.assert_allclose(short, full, atol=1e-5)
    odd = ['pink tent !"# poles']  # holds a token whose id is 0, the padding's id
    assert 0 in tok.encode(odd[0])
    np.testing.assert_allclose(trimmed.encode_text(odd), enc.encode_text(odd), atol=1e-5)
    assert _trimmable(model)
    model.attn_mask = None  # a bidirectional text tower
    assert not _trimmable(model)
    np.testing.assert_array_equal(trimmed.encode_text(texts), enc.encode_text(texts))


def test_token_ids_read_once_give_the_tokenizers_tensor_and_vectors():
    """A query's ids, read to check its length, reach the encoder in place of a second tokenization:
    the tensor the tokenizer would give (an over-long text cut to end in its end token) and the same
    vectors; texts without ids are tokenized as before."""
    from vlclip.encoder import Encoder

    torch.manual_seed(0)
    model, _, pre, tok = create(ModelParams("vlclip-tiny"))
    enc = Encoder(model, pre, tok, trim_text=True)
    texts = ["red mug", "shoe " * 100, "navy cotton shirt"]
    ids = [enc.text_ids(texts[0]), enc.text_ids(texts[1]), None]
    assert len(ids[1]) == 102 and ids[0][0] == tok.sot_token_id and ids[0][-1] == tok.eot_token_id
    np.testing.assert_array_equal(enc._tokens(texts, ids), tok(texts).numpy())
    calls, encode = [], tok.encode
    tok.encode = lambda text: calls.append(text) or encode(text)
    try:
        vectors = enc.encode_text(texts, ids=ids)
    finally:
        tok.encode = encode
    assert calls == ["navy cotton shirt"]
    np.testing.assert_array_equal(vectors, enc.encode_text(texts))


def _forwards_beside_a_busy_thread(forward, seconds: float = 1.0) -> int:
    """Forward passes a second thread completes while this one runs Python without pause."""
    import threading
    import time

    done, stop = [0], threading.Event()

    def run():
        while not stop.is_set():
            forward()
            done[0] += 1

    thread = threading.Thread(target=run)
    thread.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    stop.set()
    thread.join()
    return done[0]


def test_traced_towers_give_the_eager_vectors_without_holding_the_gil():
    """The service's encoder runs TorchScript graphs traced on the first batch: the same vectors for
    later batches of other sizes and text lengths, and a forward pass that keeps going beside a busy
    Python thread, where the eager one waits for the GIL after every op."""
    from PIL import Image

    from vlclip.encoder import Encoder

    torch.manual_seed(0)
    model, _, pre, tok = create(ModelParams("vlclip-tiny"))
    eager, traced = Encoder(model, pre, tok, trim_text=True), Encoder(model, pre, tok, trim_text=True, traced=True)
    batches = [["red dress"], ["a long navy blue cotton shirt with white buttons", "", "shoe " * 100, "lamp"] * 8]
    for texts in batches:
        np.testing.assert_allclose(traced.encode_text(texts), eager.encode_text(texts), atol=1e-6)
    images = [Image.new("RGB", (40 + 9 * i, 30), (30 * i, 90, 200 - 20 * i)) for i in range(5)]
    for batch in (images[:2], images):
        np.testing.assert_allclose(traced.encode_images(batch), eager.encode_images(batch), atol=1e-6)
    assert set(traced._graphs) == {"text", "image"} and all(g is not None for g in traced._graphs.values())
    texts = ["navy cotton shirt with white buttons", "red dress", "lamp"] * 4  # the service's path: ids read
    ids = [traced.text_ids(t) for t in texts]
    slow = _forwards_beside_a_busy_thread(lambda: eager.encode_text(texts, ids=ids))
    fast = _forwards_beside_a_busy_thread(lambda: traced.encode_text(texts, ids=ids))
    assert fast > 3 * slow, (fast, slow)
