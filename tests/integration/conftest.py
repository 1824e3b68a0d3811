"""A tiny copy of the project, its whole `dvc repro` run once per test session."""
import subprocess
import sys
from pathlib import Path

import pytest

from vlclip.sandbox import copy_project, merge, project_env

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "demo": {"n_products": 150},
    "train": {"epochs": 3, "patience": 3},
    "ground": {"windows": {"scales": [0.4, 0.6, 0.8], "aspect_ratios": [1.0]}},
}


def run(cmd, cwd, **kw):
    return subprocess.run(cmd, cwd=cwd, env=project_env(), text=True, capture_output=True, **kw)


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
    dest = copy_project(ROOT, tmp_path_factory.mktemp("proj") / "vlclip",
                        merge(dict(TINY), {"catalog": {"path": str(other_catalog)}}))
    r = run(["dvc", "repro"], dest, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return dest
