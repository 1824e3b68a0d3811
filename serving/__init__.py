"""serving: publishing stages (embed, materialize, index), the index backends, the Feast client for
rankers and the FastAPI service. Only the Feast client is re-exported here, so running a stage module
imports neither FastAPI nor another stage."""
from serving.features import FeastParams, ProductFeatures

__all__ = ["FeastParams", "ProductFeatures"]
