"""serving: per-product-type HNSW indexes (Qdrant), Feast online lookups, the FastAPI service.

Names load lazily (PEP 562) so `python -m serving.index` does not import FastAPI, and running a
submodule as __main__ does not find it already imported by this package.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "IndexParams": "serving.index", "Searcher": "serving.index", "open_searcher": "serving.index",
    "ProductFeatures": "serving.features",
    "ServiceState": "serving.app", "create_app": "serving.app", "build_state": "serving.app", "run": "serving.app",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'serving' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
