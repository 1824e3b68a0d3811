"""MLflow setup shared by the stages: tracking URI (SQLite by default, PostgreSQL for scale-out), and
runs that never stay RUNNING after their process dies."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from vlclip.receipt import pid_alive

URI_ENV = "VLCLIP_MLFLOW_URI"
PID_TAG, HOST_TAG = "vlclip.pid", "vlclip.host"
CHECKPOINT_TAG = "checkpoint_sha256"  # on training runs and model versions: vlclip.encoder.checkpoint_sha256


@dataclass(frozen=True)
class MlflowParams:
    tracking_uri: str
    artifact_root: str
    experiment: str = "vl-clip"
    model_name: str = "vl-clip"
    gate_metric: str = "hits@5"


def tracking_uri(params: MlflowParams, root: Path | None = None) -> str:
    """The environment wins so a deployment can point at PostgreSQL without editing params.yaml.
    A relative SQLite path is taken relative to `root` (default: the working directory)."""
    uri = os.environ.get(URI_ENV) or params.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = (Path(root or ".") / uri.removeprefix("sqlite:///")).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{path}"
    return uri


def setup(params: MlflowParams) -> str:
    """Point MLflow at the tracking store and make the experiment current; -> experiment id.
    The artifact location is always set explicitly: MLflow's default depends on the working directory."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri(params))
    client = MlflowClient()
    exp = client.get_experiment_by_name(params.experiment)
    if exp is None:
        root = params.artifact_root
        location = root if "://" in root else Path(root).resolve().as_uri()
        exp_id = client.create_experiment(params.experiment, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    close_orphans(client, exp_id)
    return exp_id


def close_orphans(client, experiment_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs this machine started whose process is gone (a SIGKILL, a power cut);
    -> their ids. Runs from other machines, or not started through `start_run`, are left alone."""
    host, closed = socket.gethostname(), []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'"):
        pid = run.data.tags.get(PID_TAG, "")
        if run.data.tags.get(HOST_TAG) == host and pid.isdigit() and not pid_alive(int(pid)):
            client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(run.info.run_id)
    if closed:
        print(f"mlflow: closed {len(closed)} run(s) left RUNNING by a dead process as KILLED")
    return closed


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def start_run(run_name: str, tags: dict[str, str]):
    """An MLflow run tagged with this process, so `close_orphans` can end it if the process is killed.
    SIGTERM (a cancelled job) ends it as FAILED on the way out instead of leaving it RUNNING."""
    import mlflow

    main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    previous = signal.signal(signal.SIGTERM, _terminate) if main else None
    try:
        # the tags go in with the run itself: a kill between two writes would leave an untagged run
        owner = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
        with mlflow.start_run(run_name=run_name, tags={**tags, **owner}) as run:
            yield run
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
