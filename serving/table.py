"""The embed stage's table as the index and materialize stages read it: a row group at a time, checked
and summarised in one pass, so building an index or publishing to the online store holds a row group
of the catalog and a digest per product, not the catalog's vectors."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from serving.delta import digests
from serving.vectors import EMBEDDINGS, check_vectors

REQUIRED = ["product_id", "product_type", "title", "image_path", *EMBEDDINGS, "model_version"]


def _check(df: pd.DataFrame, dim: int | None) -> None:
    """One chunk: every column there, no nulls, every vector finite, non-zero and `dim` long (the first
    chunk's length when None)."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"embeddings table lacks columns {missing}")
    for col in REQUIRED:
        bad = df["product_id"][df[col].isna()].tolist()
        if bad:
            raise ValueError(f"column {col} is null for product_id {bad[:5]}")
    check_vectors(df, dim)


@dataclass(frozen=True)
class Embeddings:
    frames: Callable[[], Iterable[pd.DataFrame]]  # the table's rows, chunk by chunk, read again on each call
    model_version: str
    dim: int
    counts: dict[str, int]   # product type -> products
    digests: pd.DataFrame    # product_id, product_type, digest (serving.delta), in table order

    @property
    def n(self) -> int:
        return len(self.digests)

    @classmethod
    def scan(cls, frames: Callable[[], Iterable[pd.DataFrame]]) -> Embeddings:
        """Check the table (one model version, unique ids, equal dims, no nulls) and summarise it."""
        versions, dim, parts, seen = set(), None, [], set()
        for df in frames():
            _check(df, dim)
            ids = df["product_id"].astype(str)
            dup = sorted(set(ids[ids.duplicated()]) | (seen & set(ids)))
            if dup:
                raise ValueError(f"embeddings table repeats product_id {dup[:5]}")
            seen.update(ids)
            versions.update(df["model_version"].astype(str))
            dim = dim or next((len(v) for v in df["image_embedding"]), None)
            parts.append(digests(df))
        if len(versions) != 1:
            raise ValueError(f"embeddings table mixes model versions {sorted(versions)}; the index holds one"
                             if versions else "embeddings table is empty")
        table = pd.concat(parts, ignore_index=True)
        counts = table["product_type"].value_counts().sort_index().to_dict()
        return cls(frames, versions.pop(), dim, {str(t): int(n) for t, n in counts.items()}, table)

    @classmethod
    def of(cls, df: pd.DataFrame) -> Embeddings:
        return cls.scan(lambda: [df.reset_index(drop=True)])

    def rows(self, ids: set[str] | None = None, types: set[str] | None = None) -> Iterator[pd.DataFrame]:
        """Chunks of the rows whose product_id is in `ids` and type in `types` (None: all)."""
        for df in self.frames():
            keep = pd.Series(True, index=df.index)
            if ids is not None:
                keep &= df["product_id"].astype(str).isin(ids)
            if types is not None:
                keep &= df["product_type"].astype(str).isin(types)
            if keep.any():
                yield df[keep]

    def take(self, positions: list[int]) -> pd.DataFrame:
        """The rows at these positions in the table (a sample spread through it)."""
        return take(self.frames, positions)


def take(frames: Callable[[], Iterable[pd.DataFrame]], positions: list[int]) -> pd.DataFrame:
    """The rows at these positions of the chunked table, in a new frame with copied vectors: each read
    vector is a view into its whole row group, which it would keep alive."""
    wanted, out, start = sorted(positions), [], 0
    for df in frames():
        inside = [p - start for p in wanted if start <= p < start + len(df)]
        if inside:
            rows = df.iloc[inside]
            out.append(pd.DataFrame({c: [np.array(v, dtype=np.float32) for v in rows[c]] if c in EMBEDDINGS
                                     else rows[c].to_numpy() for c in rows.columns}))
        start += len(df)
    return pd.concat(out, ignore_index=True)


def as_table(x: Embeddings | pd.DataFrame) -> Embeddings:
    return x if isinstance(x, Embeddings) else Embeddings.of(x)


def load_embeddings(df: pd.DataFrame) -> pd.DataFrame:
    """Check a table held in memory as `Embeddings.scan` checks one read in chunks."""
    Embeddings.of(df)
    return df.reset_index(drop=True)
