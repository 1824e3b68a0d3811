"""Feast online lookups for rankers and the service: product_id -> embeddings and attributes.

Feast is the key->feature store; nearest-neighbour search stays in Qdrant (Feast's sqlite
vector retrieval is not usable, see STACK.md §5). The store is built on first use, so
constructing a ProductFeatures costs nothing and needs no repo until a lookup.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

EMBEDDINGS_VIEW = "product_embeddings"
ATTRIBUTES_VIEW = "product_attributes"
RANKER_SERVICE = "ranker_features"
EMBEDDING_FEATURES = ("image_embedding", "text_embedding", "fused_embedding")


@dataclass(frozen=True)
class FeastParams:
    config: str = "feature_store.yaml"  # a file in the Feast repository
    verify_sample: int = 256            # products read back to check the online store holds the embeddings


class ProductFeatures:
    """Online features keyed by product_id, read from the Feast repo at `repo_path`."""

    def __init__(self, repo_path: str | Path, config_file: str = "feature_store.yaml"):
        self.repo_path = Path(repo_path)
        self.config_file = config_file
        self._store = None

    @property
    def store(self):
        if self._store is None:
            from feast import FeatureStore

            yaml_file = self.repo_path / self.config_file
            if not yaml_file.exists():
                raise FileNotFoundError(f"no Feast config at {yaml_file}")
            self._store = FeatureStore(repo_path=str(self.repo_path), fs_yaml_file=yaml_file)
        return self._store

    def embedding(self, product_id: str, name: str = "fused_embedding") -> np.ndarray | None:
        """The product's embedding from the online store, or None when it has none (unknown id,
        not materialized, or expired by the view's TTL)."""
        return self.embeddings([product_id], name)[0]

    def embeddings(self, product_ids: list[str], name: str = "fused_embedding") -> list[np.ndarray | None]:
        """`embedding` for many products in one online read, in request order."""
        if name not in EMBEDDING_FEATURES:
            raise ValueError(f"unknown embedding {name!r}; known: {list(EMBEDDING_FEATURES)}")
        values = self.store.get_online_features(features=[f"{EMBEDDINGS_VIEW}:{name}"],
                                                entity_rows={"product_id": [str(p) for p in product_ids]}
                                                ).to_dict()[name]
        return [None if v is None else np.asarray(v, dtype=np.float32) for v in values]

    def lookup(self, product_ids: list[str], features: list[str] | None = None) -> pd.DataFrame:
        """One row per requested id, in request order, with a product_id column; unknown ids get
        nulls. `features` are "view:feature" references; default: the ranker_features service."""
        if not product_ids:
            raise ValueError("lookup needs at least one product_id")
        refs = features if features is not None else self.store.get_feature_service(RANKER_SERVICE)
        rows = {"product_id": [str(p) for p in product_ids]}
        return self.store.get_online_features(features=refs, entity_rows=rows).to_df()


def unknown_ids(frame: pd.DataFrame) -> list[str]:
    """Ids in a `lookup` result for which the online store returned no feature at all."""
    values = frame.drop(columns="product_id")
    empty = values.apply(lambda col: col.map(lambda v: v is None or (isinstance(v, float) and np.isnan(v))))
    return frame.loc[empty.all(axis=1), "product_id"].astype(str).tolist()
