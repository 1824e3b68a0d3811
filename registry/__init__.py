"""Registration, promotion and loading of vl-clip models in the MLflow registry."""
from registry.load import champion_version, load_champion, load_encoder_uri

__all__ = ["champion_version", "load_champion", "load_encoder_uri"]
