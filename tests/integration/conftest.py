"""A tiny copy of the project, its whole `dvc repro` run once per test session."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CODE = ["curation", "training", "registry", "serving", "validation", "vlclip", "feature_repo", "demo_catalog"]
TINY = {
    "demo": {"n_products": 150},
    "train": {"epochs": 3, "patience": 3},
    "ground": {"clip_windows": {"top_proposals": 8, "scales": [0.4, 0.6, 0.8], "aspect_ratios": [1.0]}},
    # a 3-epoch scout is not a detector yet: the gate is exercised, not tightened, at this size
    "validate": {"max_fallback_rate": 1.0},
}


def merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        base[k] = merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return base


def run(cmd, cwd, **kw):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, **kw)


def make_project(dest: Path, params_override: dict) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in CODE:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "data"))
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, dest / name)
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), params_override)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        assert run(cmd, dest).returncode == 0
    return dest


@pytest.fixture(scope="session")
def other_catalog(tmp_path_factory) -> Path:
    """A catalog in the contract format outside the project, built with another seed."""
    out = tmp_path_factory.mktemp("catalog") / "shop"
    r = run([sys.executable, "-m", "demo_catalog.demo", "--params", str(ROOT / "params.yaml"),
             "--out", str(out), "--seed", "7", "--n-products", "150"], ROOT)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def project(tmp_path_factory, other_catalog) -> Path:
    dest = make_project(tmp_path_factory.mktemp("proj") / "vlclip",
                        merge(dict(TINY), {"catalog": {"path": str(other_catalog)}}))
    r = run(["dvc", "repro"], dest, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return dest
