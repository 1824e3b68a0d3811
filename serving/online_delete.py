"""Remove products from Feast's online store: Feast writes and reads entities but has no per-entity
delete, and a product dropped from the catalog must stop being served.

Written against Feast 0.67's storage layouts (pinned in pyproject.toml), for the two online stores
this project configures: SQLite (one table per feature view, keyed by the serialized entity key)
and Redis (one hash per entity key and project, holding every feature view's fields). Another
online store type raises, naming it, rather than leave stale rows behind silently.
"""
from __future__ import annotations


def _entity_keys(ids: list[str]):
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return [EntityKey(join_keys=["product_id"], entity_values=[Value(string_val=str(i))]) for i in ids]


def delete_products(store, view_names: list[str], ids: list[str], chunk: int = 500) -> int:
    """Delete every row of `ids` from the feature views named (all of the entity's views for Redis);
    -> products deleted (or not there)."""
    if not ids:
        return 0
    config, online = store.config, store._get_provider().online_store
    kind = config.online_store.type
    keys = _entity_keys(ids)
    if kind == "sqlite":
        _delete_sqlite(store, online, view_names, keys, chunk)
    elif kind == "redis":
        _delete_redis(config, online, keys, chunk)
    else:
        raise NotImplementedError(f"deleting products from a {kind!r} online store; clear their rows by hand")
    return len(ids)


def _delete_sqlite(store, online, view_names: list[str], keys, chunk: int) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.sqlite import _quote_id, _table_id

    config = store.config
    version = config.entity_key_serialization_version
    blobs = [serialize_entity_key(k, entity_key_serialization_version=version) for k in keys]
    conn = online._get_conn(config)
    versioning = config.registry.enable_online_feature_view_versioning
    with conn:
        for name in view_names:
            table = _quote_id(_table_id(config.project, store.get_feature_view(name), versioning))
            for i in range(0, len(blobs), chunk):
                part = blobs[i:i + chunk]
                conn.execute(f"DELETE FROM {table} WHERE entity_key IN ({','.join('?' * len(part))})", part)


def _delete_redis(config, online, keys, chunk: int) -> None:
    from feast.infra.online_stores.helpers import _redis_key

    client = online._get_client(config.online_store)
    version = config.entity_key_serialization_version
    names = [_redis_key(config.project, k, entity_key_serialization_version=version) for k in keys]
    for i in range(0, len(names), chunk):
        client.delete(*names[i:i + chunk])
