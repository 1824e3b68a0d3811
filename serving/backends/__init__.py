"""Index backends: one table, one schema. `edge` keeps one Qdrant Edge shard per product type in
process; `qdrant` keeps one collection per type on a Qdrant server or cluster behind swapped aliases.

A backend's target is where its index lives: a directory for `edge`, a qdrant-client for `qdrant`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from serving.backends import edge, edge_search, qdrant
from serving.backends.schema import IndexParams, Searcher, matrix
from serving.table import Embeddings, as_table, load_embeddings

__all__ = ["BACKENDS", "Backend", "Embeddings", "IndexParams", "Searcher", "as_table", "backend", "build",
           "index_version", "load_embeddings", "matrix", "open_searcher"]


@dataclass(frozen=True)
class Backend:
    target: Callable[[IndexParams, str | Path | None, Any], Any]   # (params, path, client) -> target
    build: Callable[[Embeddings, IndexParams, Any, Callable], dict]  # (embeddings, params, target, log)
    # (params, target, types): the types whose shards are held in process (None: all; edge only)
    open: Callable[[IndexParams, Any, list[str] | None], Searcher]
    version: Callable[[Any], str]                                 # (target) -> model version, nothing opened
    # (embeddings, ids to upsert, product_id + product_type rows to delete, params, target, log): same model
    update: Callable[[Embeddings, list, pd.DataFrame, IndexParams, Any, Callable], dict]


BACKENDS = {
    "edge": Backend(edge.target, edge.build_edge, edge_search.open_edge, edge_search.manifest_version,
                    edge.update_edge),
    "qdrant": Backend(qdrant.target, qdrant.build_qdrant, qdrant.open_qdrant, qdrant.aliased_version,
                      qdrant.update_qdrant),
}


def backend(params: IndexParams) -> Backend:
    if params.backend not in BACKENDS:
        raise ValueError(f"index.backend must be one of {sorted(BACKENDS)}, not {params.backend!r}")
    return BACKENDS[params.backend]


def open_searcher(params: IndexParams, path: str | Path | None = None, client=None,
                  types: list[str] | None = None) -> Searcher:
    """Open what the index stage built: edge shards under `path` (those of `types`, None: all), or the
    aliased collections of a Qdrant server (`client`, else one for index.url / VLCLIP_QDRANT_URL)."""
    chosen = backend(params)
    return chosen.open(params, chosen.target(params, path, client), types)


def index_version(params: IndexParams, path: str | Path | None = None, client=None) -> str:
    """The model version the index holds now, read without opening it for search."""
    chosen = backend(params)
    return chosen.version(chosen.target(params, path, client))


def build(table: Embeddings | pd.DataFrame, params: IndexParams, path: str | Path | None = None, client=None,
          log=print) -> dict:
    chosen = backend(params)
    return chosen.build(as_table(table), params, chosen.target(params, path, client), log)
