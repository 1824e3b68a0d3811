"""register: log the vlclip checkpoint as a pyfunc model, register it as `vl-clip` (once per checkpoint),
point `challenger` at it, and move `champion` when it beats the champion's gate metric.

Runs on every `dvc repro` (see vlclip.receipt): the registry is looked up by the checkpoint's hash,
so a wiped or killed registry is rebuilt and a healthy one is left as it is. Champions are kept per
catalog (`catalog.path`): metrics from two catalogs are not comparable, and switching the pipeline
to another catalog and back serves each catalog its own champion."""
from __future__ import annotations

import argparse
import hashlib
import json
from importlib.metadata import version as installed_version
from pathlib import Path

import numpy as np
import pandas as pd

from registry.gate import RANKS_ARTIFACT, REASON_TAG, decide, load_ranks, val_ranks
from training.evaluate import EvaluateParams
from vlclip import receipt
from vlclip.encoder import checkpoint_sha256
from vlclip.params import load_params, section
from vlclip.tracking import CHECKPOINT_TAG, MlflowParams, setup, start_run, tracking_uri

# What a registered model needs to load (registry.pyfunc -> vlclip.encoder), pinned to the versions
# installed here so the pins live in one place: pyproject.toml.
MODEL_PACKAGES = ("torch", "open_clip_torch", "pillow", "numpy", "pandas")
GATE_TAG = "vlclip.gate"  # on a model version: "promoted" or "kept", decided once
CATALOG_TAG = "vlclip.catalog"  # on a model version: the catalog.path it was trained and evaluated on
MLMODEL = "MLmodel"


def pip_requirements() -> list[str]:
    return [f"{name}=={installed_version(name)}" for name in MODEL_PACKAGES]


def tag_key(metric: str) -> str:
    """MLflow names allow no '@': hits@5 is stored as hits_at_5."""
    return metric.replace("@", "_at_")


def gate_key(metric: str) -> str:
    """The tag the promotion gate reads: the metric on the validation queries (test figures are reported,
    never used to choose a model)."""
    return "val_" + tag_key(metric)


def version_tags(metrics: dict) -> dict[str, str]:
    """metrics/retrieval.json's entry for a variant -> model version tags: test figures by their name,
    validation figures prefixed val_ (the gate's), intervals left to the metrics file."""
    tags = {tag_key(k): str(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    return {**tags, **{"val_" + tag_key(k): str(v) for k, v in metrics.get("val", {}).items()}}


def catalog_alias(catalog: str) -> str:
    """The alias of one catalog's own champion. `champion` (what embed and the service load) follows the
    catalog the pipeline last ran on; each catalog keeps its champion under this alias meanwhile."""
    return "champion-" + hashlib.sha256(catalog.encode()).hexdigest()[:12]


def champion_metric(client, name: str, metric: str, alias: str = "champion") -> tuple[str | None, float | None]:
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None, None
    value = mv.tags.get(gate_key(metric))  # None for a version registered before validation figures existed
    return str(mv.version), (float(value) if value is not None else None)


def held_version(client, name: str, sha: str):
    """The version the registry holds for this checkpoint, or None. A version whose artifacts are gone
    (the artifact store was wiped) is deleted so it can be registered afresh."""
    from mlflow.artifacts import list_artifacts
    from mlflow.exceptions import MlflowException

    for mv in client.search_model_versions(f"name = '{name}' and tags.{CHECKPOINT_TAG} = '{sha}'"):
        try:
            if MLMODEL in {f.path for f in list_artifacts(artifact_uri=f"models:/{name}/{mv.version}")}:
                return mv
        except (MlflowException, OSError):
            pass
        client.delete_model_version(name, mv.version)
    return None


def log_version(client, checkpoint: Path, sha: str, catalog: str, ranks: dict, p: MlflowParams):
    """Log the checkpoint as a pyfunc model in a run of its own and register it. The version is created
    with its checkpoint tag in one call, so a kill leaves either no version or one `held_version` finds."""
    import mlflow

    from registry.pyfunc import VLClipModel

    trained = client.search_runs([mlflow.get_experiment_by_name(p.experiment).experiment_id],
                                 filter_string=f"tags.{CHECKPOINT_TAG} = '{sha}' and tags.stage = 'train'",
                                 max_results=1)
    link = {"train_run_id": trained[0].info.run_id} if trained else {}
    with start_run("register-vlclip", {"stage": "register", CHECKPOINT_TAG: sha, **link}):
        info = mlflow.pyfunc.log_model(name="vl-clip", python_model=VLClipModel(),
                                       artifacts={"checkpoint": str(checkpoint)},
                                       pip_requirements=pip_requirements())
        mlflow.log_dict(ranks, RANKS_ARTIFACT)  # a later challenger is compared with it query by query
    return mlflow.register_model(info.model_uri, p.model_name, tags={CHECKPOINT_TAG: sha, CATALOG_TAG: catalog})


def check_loadable(model_uri: str, uri: str) -> None:
    """Load the version the way embed and the service will and embed one text: a model they could not
    use must fail here, before `champion` points at it, not in a later stage."""
    from registry.load import load_encoder_uri

    vec = load_encoder_uri(model_uri, uri).encode_text(["a product"])
    if vec.ndim != 2 or vec.shape[1] == 0 or not np.isfinite(vec).all():
        raise RuntimeError(f"{model_uri} loads but gives unusable embeddings (shape {vec.shape})")


def register(checkpoint: Path, metrics: dict, p: MlflowParams, catalog: str, ranks: dict[str, int] | None = None,
             resamples: int = 1000, seed: int = 0) -> dict:
    """Idempotent: the version holding this checkpoint is reused (a retrain that reproduces the weights
    registers nothing new) and the gate, against this catalog's own champion, runs once per version; so a
    re-run after a kill leaves the aliases as they were. `champion` is then pointed at this catalog's
    champion: a model trained and judged on another catalog is never served for this one.
    -> the receipt (what the registry holds)."""
    from mlflow.tracking import MlflowClient

    client, sha, own = MlflowClient(), checkpoint_sha256(checkpoint), catalog_alias(catalog)
    mv = held_version(client, p.model_name, sha) or log_version(client, checkpoint, sha, catalog, ranks or {}, p)
    version, value = str(mv.version), float(metrics["val"][p.gate_metric])
    check_loadable(f"models:/{p.model_name}/{version}", tracking_uri(p))  # before any alias moves
    for k, v in version_tags(metrics).items():
        client.set_model_version_tag(p.model_name, version, k, v)
    client.set_registered_model_alias(p.model_name, "challenger", version)
    verdict = client.get_model_version(p.model_name, version).tags.get(GATE_TAG)
    if verdict is None:
        held, held_value = champion_metric(client, p.model_name, p.gate_metric, own)
        promoted, why = (True, "already this catalog's champion") if held == version else decide(
            p.gate_metric, ranks or {}, held and load_ranks(client, p.model_name, held), value, held_value,
            resamples, seed)
        verdict = "promoted" if promoted else "kept"
        if promoted:
            client.set_registered_model_alias(p.model_name, own, version)
        client.set_model_version_tag(p.model_name, version, REASON_TAG, why)
        client.set_model_version_tag(p.model_name, version, GATE_TAG, verdict)
    champion, champion_value = champion_metric(client, p.model_name, p.gate_metric, own)
    if champion is None:  # this catalog's champion was deleted (a wiped artifact store): this model is it
        client.set_registered_model_alias(p.model_name, own, version)
        champion, champion_value = version, value
    client.set_registered_model_alias(p.model_name, "champion", champion)
    return {"model_name": p.model_name, "version": version, "run_id": mv.run_id,
            "model_uri": f"models:/{p.model_name}/{version}", CHECKPOINT_TAG: sha, "catalog": catalog,
            "challenger": version, "champion": champion, "promoted": verdict == "promoted",
            "gate_metric": f"val {p.gate_metric}", "candidate_value": value,
            "champion_value": champion_value, "tracking_uri": tracking_uri(p)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", required=True, help="vlclip checkpoint directory (with run.json)")
    ap.add_argument("--metrics", required=True, help="metrics/retrieval.json")
    ap.add_argument("--ranks", required=True, help="the evaluate stage's per-query ranks")
    ap.add_argument("--receipt", required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    p = section(MlflowParams, params, "mlflow")
    setup(p)
    metrics = json.loads(Path(args.metrics).read_text())["vlclip"]
    receipt.clear(args.receipt)
    ev = section(EvaluateParams, params, "evaluate")
    made = register(Path(args.model), metrics, p, str(params["catalog"]["path"]),
                    val_ranks(pd.read_parquet(args.ranks)), ev.bootstrap_resamples, ev.seed)
    receipt.write(args.receipt, made)
    verdict = "champion" if made["champion"] == made["version"] else \
        f"champion is version {made['champion']} (validation {p.gate_metric} {made['champion_value']})"
    print(f"register: {p.model_name} version {made['version']} (validation {p.gate_metric} "
          f"{made['candidate_value']:.3f}) is challenger; {verdict}; tracking {tracking_uri(p)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
