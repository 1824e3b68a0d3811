"""Offline hygiene for every test: no hub lookups, no telemetry."""
import os

for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false",
                   "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "DVC_NO_ANALYTICS": "1"}.items():
    os.environ.setdefault(key, value)
