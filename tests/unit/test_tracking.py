"""MLflow runs never stay RUNNING after their process dies; receipts are written whole or not at all."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlclip import receipt

ROOT = Path(__file__).resolve().parents[2]
OPEN_A_RUN = """
import sys, time
from vlclip.tracking import MlflowParams, setup, start_run
setup(MlflowParams(tracking_uri=sys.argv[1], artifact_root=sys.argv[2]))
with start_run("doomed", {"stage": "train"}) as run:
    print(run.info.run_id, flush=True)
    time.sleep(120)
"""


def _run_until_killed(uri: str, artifacts: Path, sig: int) -> str:
    proc = subprocess.Popen([sys.executable, "-c", OPEN_A_RUN, uri, str(artifacts)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()  # blocks until the run is open (MLflow import included)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return run_id


@pytest.fixture
def tracking(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from mlflow.tracking import MlflowClient

    from vlclip.tracking import MlflowParams

    return uri, MlflowParams(tracking_uri=uri, artifact_root=str(tmp_path / "artifacts")), MlflowClient(uri)


def test_a_run_whose_process_was_killed_is_closed_at_the_next_start(tracking, tmp_path, monkeypatch):
    from vlclip.tracking import setup

    uri, p, client = tracking
    monkeypatch.delenv("VLCLIP_MLFLOW_URI", raising=False)
    run_id = _run_until_killed(uri, tmp_path / "artifacts", signal.SIGKILL)
    assert client.get_run(run_id).info.status == "RUNNING"  # nobody could close it
    setup(p)
    assert client.get_run(run_id).info.status == "KILLED"


def test_sigterm_ends_the_run_as_failed(tracking, tmp_path):
    uri, _, client = tracking
    run_id = _run_until_killed(uri, tmp_path / "artifacts", signal.SIGTERM)
    assert client.get_run(run_id).info.status == "FAILED"


def test_a_live_run_is_left_running(tracking, monkeypatch):
    import mlflow

    from vlclip.tracking import setup, start_run

    _, p, client = tracking
    monkeypatch.delenv("VLCLIP_MLFLOW_URI", raising=False)
    setup(p)
    with start_run("alive", {"stage": "train"}) as run:
        setup(p)  # this process is alive: its run stays open
        assert client.get_run(run.info.run_id).info.status == "RUNNING"
    assert mlflow.active_run() is None and client.get_run(run.info.run_id).info.status == "FINISHED"


def test_receipt_write_is_atomic_and_a_torn_one_reads_as_none(tmp_path):
    path = tmp_path / "r" / "x.json"
    path.parent.mkdir()
    (path.parent / ".x.json.999999999.tmp").write_text("{")  # a writer killed before its rename
    receipt.write(path, {"b": 1, "a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1} and os.listdir(path.parent) == ["x.json"]
    path.write_text('{"a": [1,')  # what a kill in the middle of a plain write would leave
    assert receipt.read(path) is None and receipt.read(tmp_path / "none.json") is None
    receipt.clear(path)
    assert not path.exists()


def test_pid_alive():
    assert receipt.pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    time.sleep(0.1)
    assert not receipt.pid_alive(child.pid)


def test_a_zombie_counts_as_gone():
    """A killed stage whose parent died too stays a zombie where nothing reaps orphans."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 60
    while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":  # exited, not reaped
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not receipt.pid_alive(child.pid) and receipt.owner_gone(str(child.pid))
    child.wait()
