"""register: log the vlclip checkpoint as a pyfunc model in its training run, register it as
`vl-clip`, point `challenger` at it, and move `champion` when it beats the champion's gate metric."""
from __future__ import annotations

import argparse
import json
from importlib.metadata import version as installed_version
from pathlib import Path

from vlclip.params import load_params, section
from vlclip.tracking import MlflowParams, setup, tracking_uri

# What a registered model needs to load (registry.pyfunc -> vlclip.encoder), pinned to the versions
# installed here so the pins live in one place: pyproject.toml.
MODEL_PACKAGES = ("torch", "open_clip_torch", "pillow", "numpy", "pandas")


def pip_requirements() -> list[str]:
    return [f"{name}=={installed_version(name)}" for name in MODEL_PACKAGES]


def tag_key(metric: str) -> str:
    """MLflow names allow no '@': hits@5 is stored as hits_at_5."""
    return metric.replace("@", "_at_")


def gate(candidate: float, champion: float | None) -> bool:
    """Promote when there is no champion or the candidate is strictly better."""
    return champion is None or candidate > champion


def champion_metric(client, name: str, metric: str) -> tuple[str | None, float | None]:
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None, None
    value = mv.tags.get(tag_key(metric))
    return str(mv.version), (float(value) if value is not None else None)


def register(checkpoint: Path, run_id: str, metrics: dict, p: MlflowParams) -> dict:
    import mlflow
    from mlflow.tracking import MlflowClient

    from registry.pyfunc import VLClipModel

    client = MlflowClient()
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(name="vl-clip", python_model=VLClipModel(),
                                       artifacts={"checkpoint": str(checkpoint)},
                                       registered_model_name=p.model_name,
                                       pip_requirements=pip_requirements())
        mlflow.log_metrics({tag_key(k): v for k, v in metrics.items() if isinstance(v, float)})
    version = str(info.registered_model_version)
    for k, v in metrics.items():
        client.set_model_version_tag(p.model_name, version, tag_key(k), str(v))
    client.set_registered_model_alias(p.model_name, "challenger", version)
    old_version, old_value = champion_metric(client, p.model_name, p.gate_metric)
    promoted = gate(float(metrics[p.gate_metric]), old_value)
    if promoted:
        client.set_registered_model_alias(p.model_name, "champion", version)
    champion = version if promoted else old_version
    return {"model_name": p.model_name, "version": version, "run_id": run_id,
            "model_uri": f"models:/{p.model_name}/{version}", "challenger": version,
            "champion": champion, "promoted": promoted, "gate_metric": p.gate_metric,
            "candidate_value": metrics[p.gate_metric], "previous_champion": old_version,
            "previous_value": old_value, "tracking_uri": mlflow.get_tracking_uri()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", required=True, help="vlclip checkpoint directory (with run.json)")
    ap.add_argument("--metrics", required=True, help="metrics/retrieval.json")
    ap.add_argument("--receipt", required=True)
    args = ap.parse_args(argv)
    p = section(MlflowParams, load_params(args.params), "mlflow")
    setup(p)
    model = Path(args.model)
    run_id = json.loads((model / "run.json").read_text())["run_id"]
    metrics = json.loads(Path(args.metrics).read_text())["vlclip"]
    receipt = register(model, run_id, metrics, p)
    Path(args.receipt).parent.mkdir(parents=True, exist_ok=True)
    Path(args.receipt).write_text(json.dumps(receipt, indent=2))
    verdict = "promoted to champion" if receipt["promoted"] else \
        f"champion stays version {receipt['champion']} ({p.gate_metric} {receipt['previous_value']})"
    print(f"register: {p.model_name} version {receipt['version']} ({p.gate_metric} "
          f"{receipt['candidate_value']:.3f}) is challenger; {verdict}; tracking {tracking_uri(p)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
