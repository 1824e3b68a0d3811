"""Load a registered vl-clip model as an Encoder (what serving and the embed stage use)."""
from __future__ import annotations


def load_encoder_uri(model_uri: str, tracking_uri: str):
    """`models:/vl-clip@champion` or `models:/vl-clip/3` -> Encoder (registry.pyfunc builds it)."""
    import mlflow

    from registry.pyfunc import VLClipModel

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    if not isinstance(model, VLClipModel):
        raise TypeError(f"{model_uri} is a {type(model).__name__}, not a vl-clip model (registry.pyfunc.VLClipModel)")
    return model.encoder


def champion_version(tracking_uri: str, model_name: str = "vl-clip", alias: str = "champion") -> str:
    """The model version the alias points at (one registry query, nothing loaded)."""
    from mlflow.tracking import MlflowClient

    return str(MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias(model_name, alias).version)


def load_champion(tracking_uri: str, model_name: str = "vl-clip", alias: str = "champion"):
    """-> (Encoder, version string) of the model version the alias points at."""
    version = champion_version(tracking_uri, model_name, alias)
    return load_encoder_uri(f"models:/{model_name}/{version}", tracking_uri), version
