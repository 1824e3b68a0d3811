"""A tiny copy of the project, its whole `dvc repro` run once per test session, on a hostile catalog."""
import contextlib
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.service_world import wait_ready_http
from vlclip.sandbox import copy_project, merge, project_env

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "demo": {"n_products": 210},
    "train": {"epochs": 3, "patience": 3},
    "ground": {"windows": {"scales": [0.4, 0.6, 0.8], "aspect_ratios": [1.0]}},
    # the catalog is known to be dirty (demo_catalog.hostile): 24 of ~235 rows are bad on purpose
    "validate": {"max_quarantine_rate": 0.2},
}
_PEAK_GIB = {}  # the largest process of the session's `dvc repro`, in GiB


def run(cmd, cwd, **kw):
    return subprocess.run(cmd, cwd=cwd, env=project_env(), text=True, capture_output=True, **kw)


@pytest.fixture(scope="session")
def other_catalog(tmp_path_factory) -> Path:
    """A catalog in the contract format outside the project, built with another seed, with hostile rows and
    files among its valid ones (demo_catalog.hostile)."""
    out = tmp_path_factory.mktemp("catalog") / "shop"
    r = run([sys.executable, "-m", "demo_catalog.demo", "--params", str(ROOT / "params.yaml"),
             "--out", str(out), "--seed", "7", "--n-products", "210"], ROOT)
    assert r.returncode == 0, r.stderr
    r = run([sys.executable, "-m", "demo_catalog.hostile", "--catalog", str(out)], ROOT)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def project(tmp_path_factory, other_catalog) -> Path:
    dest = copy_project(ROOT, tmp_path_factory.mktemp("proj") / "vlclip",
                        merge(dict(TINY), {"catalog": {"path": str(other_catalog)}}))
    r = run(["dvc", "repro"], dest, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    _PEAK_GIB["repro"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    return dest


@pytest.fixture(scope="session")
def repro_peak_gib(project) -> float:
    """The peak memory of the largest process the session's `dvc repro` ran (every child waited for
    until then, the stages among them)."""
    return _PEAK_GIB["repro"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(project: Path, start_timeout_s: float = 120.0):
    """`vlclip serve` on a free port in a subprocess; -> its base URL once /readyz says ready (everything
    loaded and warmed)."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vlclip.cli", "serve", "--port", str(port)], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_ready_http(url, proc, start_timeout_s):
            proc.kill()
            pytest.fail("service did not start: " + proc.stdout.read()[-3000:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
