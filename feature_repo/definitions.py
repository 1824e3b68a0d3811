"""Feast declarations for vl-clip product features (declarations only; feast imports this on apply)."""
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Float32, String

# Relative to this repository; the embed stage in dvc.yaml writes it.
EMBEDDINGS_PATH = "../data/embeddings/products.parquet"

product = Entity(name="product", join_keys=["product_id"], value_type=ValueType.STRING,
                 description="A catalog product (one deduplicated image).")

embeddings_source = FileSource(name="product_embeddings_source", path=EMBEDDINGS_PATH,
                               timestamp_field="event_timestamp")

product_embeddings = FeatureView(
    name="product_embeddings",
    entities=[product],
    ttl=timedelta(0),  # embeddings stay valid until the next model version overwrites them
    source=embeddings_source,
    online=True,
    schema=[Field(name="image_embedding", dtype=Array(Float32)),
            Field(name="text_embedding", dtype=Array(Float32)),
            Field(name="fused_embedding", dtype=Array(Float32)),
            Field(name="model_version", dtype=String)],
)

product_attributes = FeatureView(
    name="product_attributes",
    entities=[product],
    ttl=timedelta(0),
    source=embeddings_source,
    online=True,
    schema=[Field(name="product_type", dtype=String), Field(name="title", dtype=String)],
)

ranker_features = FeatureService(name="ranker_features", features=[product_embeddings, product_attributes],
                                 description="What a ranker reads per candidate product.")
