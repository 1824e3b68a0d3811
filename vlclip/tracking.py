"""MLflow setup shared by the stages: tracking URI (SQLite by default, PostgreSQL for scale-out)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

URI_ENV = "VLCLIP_MLFLOW_URI"


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
    return exp_id
