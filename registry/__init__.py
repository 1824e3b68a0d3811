"""Registration, promotion and loading of vl-clip models in the MLflow registry."""
from registry.load import load_champion, load_encoder_uri

__all__ = ["load_champion", "load_encoder_uri"]
