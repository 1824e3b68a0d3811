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


def load_champion(tracking_uri: str, model_name: str = "vl-clip", alias: str = "champion"):
    """-> (Encoder, version string) of the model version the alias points at."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    version = MlflowClient().get_model_version_by_alias(model_name, alias).version
    return load_encoder_uri(f"models:/{model_name}/{version}", tracking_uri), str(version)
