"""A vl-clip model logged before the code moved into layers still loads.

tests/fixtures/pyfunc_before_layers is what `mlflow.pyfunc.save_model` wrote for a VLClipModel when
the encoder lived in training/model.py (its python_model.pkl names registry.pyfunc.VLClipModel); only
the 30 MB weights are left out and written fresh here.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from registry.load import load_encoder_uri
from vlclip.encoder import ModelParams, create, load_encoder, save_checkpoint

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pyfunc_before_layers"


@pytest.fixture(scope="module")
def old_model(tmp_path_factory) -> Path:
    model_dir = tmp_path_factory.mktemp("mlflow") / "model"
    shutil.copytree(FIXTURE, model_dir)
    torch.manual_seed(0)
    model, *_ = create(ModelParams("vlclip-tiny"))
    save_checkpoint(model, ModelParams("vlclip-tiny"), model_dir / "artifacts" / "oldckpt")
    return model_dir


def test_fixture_pickle_names_the_kept_module_path():
    assert b"registry.pyfunc" in (FIXTURE / "python_model.pkl").read_bytes()


def test_model_logged_before_the_move_loads_and_embeds_like_its_checkpoint(old_model, tmp_path):
    encoder = load_encoder_uri(str(old_model), f"sqlite:///{tmp_path / 'mlflow.db'}")
    direct = load_encoder(old_model / "artifacts" / "oldckpt")
    texts = ["red striped dress", "brass desk lamp"]
    got = encoder.encode_text(texts)
    assert got.shape == (2, direct.dim)
    np.testing.assert_allclose(got, direct.encode_text(texts), atol=1e-6)
