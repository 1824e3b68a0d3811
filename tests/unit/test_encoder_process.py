"""serving.encoder_process: forward passes asked of child processes give what the encoder gives in process."""
from __future__ import annotations

import functools
import os
import signal

import numpy as np
import pytest
from PIL import Image

from serving.encoder_process import EncoderProcess
from vlclip.encoder import Encoder, ModelParams, TextIds, create


def tiny(seed: int = 0) -> Encoder:
    """The service's encoder (trimmed, traced) on seeded weights: the same in every process."""
    import torch

    torch.manual_seed(seed)
    model, _, pre, tok = create(ModelParams("vlclip-tiny"))
    return Encoder(model, pre, tok, trim_text=True, traced=True)


def broken() -> Encoder:
    raise FileNotFoundError("no checkpoint at /nowhere")


@pytest.fixture(scope="module")
def pair():
    local = tiny()
    remote = EncoderProcess(TextIds(local.tokenizer), functools.partial(tiny, 0))  # this process: no model
    yield local, remote
    remote.close()


TEXTS = ["a red dress", "walnut table lamp with a linen shade", "bag"]


def test_the_children_answer_what_the_encoder_answers_in_process(pair):
    local, remote = pair
    ids = [local.text_ids(t) for t in TEXTS]
    assert remote.context_length == local.context_length and remote.text_ids(TEXTS[1]) == ids[1]
    assert not hasattr(remote.local, "model")
    np.testing.assert_allclose(remote.encode_text(TEXTS, ids=ids), local.encode_text(TEXTS, ids=ids), atol=1e-6)
    np.testing.assert_allclose(remote.encode_text(TEXTS[:1]), local.encode_text(TEXTS[:1]), atol=1e-6)
    images = [Image.new("RGB", (40, 30), "red"), Image.new("L", (64, 64), 90)]  # a grey one is made RGB
    np.testing.assert_allclose(remote.encode_images(images), local.encode_images(images), atol=1e-6)


def test_a_failed_batch_fails_alone_and_a_dead_child_is_replaced(pair):
    local, remote = pair
    with pytest.raises(ValueError):  # the child's error, raised here with its type
        remote.encode_text(["x"], ids=[["not", "ids"]])
    expected = local.encode_text(TEXTS)
    np.testing.assert_allclose(remote.encode_text(TEXTS), expected, atol=1e-6)  # and it goes on
    first = remote.text.process.pid
    os.kill(first, signal.SIGKILL)
    remote.text.process.join(10)
    np.testing.assert_allclose(remote.encode_text(TEXTS), expected, atol=1e-6)  # asked again of a new child
    assert remote.text.process.pid != first and remote.text.process.is_alive()
    assert remote.images.process.is_alive()  # the image child was not touched


def test_a_model_that_cannot_be_loaded_fails_in_the_parent_and_close_stops_the_children():
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        EncoderProcess(tiny(), broken)
    remote = EncoderProcess(tiny(), functools.partial(tiny, 1))
    children = [remote.text.process, remote.images.process]
    remote.close()
    assert not any(p.is_alive() for p in children)
