"""The training data path at scale: streamed batches, resume after SIGKILL, data-parallel torchrun."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from training.loader import Pairs
from training.train import TrainParams, fit
from vlclip.encoder import ModelParams, create

ROOT = Path(__file__).resolve().parents[2]
COLOURS = {"red": (200, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 210), "yellow": (230, 210, 40),
           "black": (20, 20, 20), "white": (240, 240, 240)}
SHAPES = ("square", "disc", "bar")


def _catalog(folder: Path, n: int) -> Path:
    """n products: a coloured shape on grey, titled by colour and shape; about 80 % train."""
    rng = np.random.default_rng(0)
    rows = []
    (folder / "img").mkdir(parents=True)
    for k in range(n):
        colour, shape = list(COLOURS)[k % 6], SHAPES[(k // 6) % 3]
        a = np.full((64, 64, 3), 128, np.uint8)
        lo, hi = rng.integers(4, 20), rng.integers(44, 60)
        if shape == "bar":
            a[lo:hi, 26:38] = COLOURS[colour]
        elif shape == "disc":
            yy, xx = np.mgrid[:64, :64]
            a[(yy - 32) ** 2 + (xx - 32) ** 2 < ((hi - lo) // 2) ** 2] = COLOURS[colour]
        else:
            a[lo:hi, lo:hi] = COLOURS[colour]
        path = folder / "img" / f"p{k}.jpg"
        Image.fromarray(a).save(path, quality=92)
        rows.append({"product_id": f"p{k}", "product_type": shape, "split": "val" if k % 5 == 4 else "train",
                     "image_path": str(path), "title": f"{colour} {shape}", "description": f"a {colour} {shape}"})
    pd.DataFrame(rows).to_parquet(folder / "products.parquet")
    return folder / "products.parquet"


def test_streamed_batches_train_exactly_as_preloaded(tmp_path):
    """The DataLoader path (worker processes decode each batch) and the in-memory path give the same
    batches in the same order, so the same training history."""
    products = pd.read_parquet(_catalog(tmp_path, 60))
    p = TrainParams(epochs=2, batch_size=8, lr=1e-3, warmup_steps=2, patience=5, threads=1)
    runs = []
    for preload_max, workers in ((10_000, 0), (0, 2)):
        torch.manual_seed(0)
        model, _, pre, tok = create(ModelParams("vlclip-tiny"))
        parts = [products[products["split"] == s] for s in ("train", "val")]
        train, val = (Pairs.from_files(d["image_path"].tolist(), d["title"].tolist(), pre, tok, preload_max, workers)
                      for d in parts)
        assert train.streamed == (preload_max == 0)
        _, hist = fit(model, train, val, p, "cpu", log=lambda s: None)
        runs.append([(h["train_loss"], h["val_loss"]) for h in hist])
    assert runs[0] == runs[1]


def test_accumulation_and_step_budget_count_optimizer_steps():
    torch.manual_seed(0)
    model, _, _, tok = create(ModelParams("vlclip-tiny"))
    data = (torch.randn(40, 3, 64, 64), tok([f"item {i}" for i in range(40)]))
    lines = []
    p = TrainParams(epochs=5, batch_size=8, accumulate=2, max_steps=4, warmup_steps=1, patience=9, threads=1)
    _, hist = fit(model, data, data, p, "cpu", log=lines.append)
    # 5 micro-batches per epoch -> 3 optimizer steps per epoch (the last one alone); 4 steps end epoch 2
    assert len(hist) == 2 and "step 3" in lines[0] and "step 4" in lines[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("train")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(epochs=3, batch_size=8, warmup_steps=4, patience=9, threads=1, workers=0,
                           checkpoint_every=7)
    params["variants"] = {"baseline": {"images": "full", "text": "raw"}}
    params["mlflow"].update(tracking_uri=f"sqlite:///{work}/mlflow.db", artifact_root=str(work / "artifacts"))
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    products = _catalog(work / "catalog", 200)
    return {"work": work, "products": products, "reference": _train(work, products, "reference")}


def _cmd(work: Path, products: Path, name: str) -> list[str]:
    return ["-m", "training.train", "--params", str(work / "params.yaml"), "--variant", "baseline",
            "--products", str(products), "--out", str(work / name), "--resume", str(work / f"{name}.pt")]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "VLCLIP_MLFLOW_URI": ""}


def _train(work: Path, products: Path, name: str) -> dict:
    done = subprocess.run([sys.executable, *_cmd(work, products, name)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"log": done.stdout, "history": pd.read_csv(work / name / "history.csv"),
            "run": json.loads((work / name / "run.json").read_text())}


def test_training_killed_mid_epoch_resumes_from_its_checkpoint(project):
    work, products = project["work"], project["products"]
    state = work / "killed.pt"
    proc = subprocess.Popen([sys.executable, *_cmd(work, products, "killed")], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert state.exists(), "no resume state was written before the run ended"
    saved = torch.load(state, weights_only=False)["progress"]
    assert saved["step"] > 0 and 0 < saved["position"] < len(saved["order"])  # mid-epoch
    again = _train(work, products, "killed")
    assert f"resumed at optimizer step {saved['step']}" in again["log"]
    assert not state.exists()  # a finished run leaves no state to resume
    ref, got = project["reference"]["run"]["best_val_loss"], again["run"]["best_val_loss"]
    assert abs(got - ref) <= 0.01 * ref
    pd.testing.assert_frame_equal(again["history"], project["reference"]["history"], rtol=1e-5)


def test_resume_state_from_other_settings_is_not_used(project):
    work = project["work"]
    stale = work / "stale.pt"
    torch.save({"fingerprint": "another run", "progress": {}}, stale)
    done = _train(work, project["products"], "stale")
    assert "resume state is from other settings or data; starting from step 0" in done["log"]
    pd.testing.assert_frame_equal(done["history"], project["reference"]["history"], rtol=1e-5)


def test_two_process_ddp_follows_the_one_process_loss_curve(project):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    work = project["work"]
    done = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2",
                           *_cmd(work, project["products"], "ddp")],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on cpu x 2" in done.stdout
    ddp, one = pd.read_csv(work / "ddp" / "history.csv"), project["reference"]["history"]
    assert len(ddp) == len(one)
    np.testing.assert_allclose(ddp["train_loss"], one["train_loss"], rtol=2e-3)
    np.testing.assert_allclose(ddp["val_loss"], one["val_loss"], rtol=2e-3)
