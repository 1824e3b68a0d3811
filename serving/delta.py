"""What changed between two embeddings tables of the same model: the rows a store must upsert and
the products it must delete, from a digest per product (its payload and vectors).

The index and materialize stages keep the digests of what they last wrote (a small parquet beside
their receipt, named in the receipt by its hash), so a catalog change with the same champion
rewrites only the changed products and removes the deleted ones; a new champion rebuilds.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from vlclip import receipt

VECTOR_COLUMNS = ["image_embedding", "text_embedding", "fused_embedding"]
TEXT_COLUMNS = ["product_id", "product_type", "title", "image_path", "model_version"]


def digests(df: pd.DataFrame) -> pd.DataFrame:
    """-> product_id, product_type, digest (sha256 of the row's text columns and vectors)."""
    out = []
    for row in zip(*(df[c] for c in TEXT_COLUMNS), *(df[c] for c in VECTOR_COLUMNS)):
        h = hashlib.sha256("\x1f".join(map(str, row[:len(TEXT_COLUMNS)])).encode())
        for v in row[len(TEXT_COLUMNS):]:
            h.update(np.asarray(v, dtype=np.float32).tobytes())
        out.append(h.hexdigest())
    return pd.DataFrame({"product_id": df["product_id"].astype(str).to_numpy(),
                         "product_type": df["product_type"].astype(str).to_numpy(), "digest": out})


def delta(old: pd.DataFrame, new: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """(old digests, new digests) -> (product ids to upsert, product_id + product_type rows to delete
    from their old type: products gone, or moved to another type)."""
    both = new.merge(old, on="product_id", how="left", suffixes=("", "_old"))
    upsert = both["product_id"][both["digest"] != both["digest_old"]].tolist()
    gone = old[~old["product_id"].isin(new["product_id"])]
    moved = both[both["product_type_old"].notna() & (both["product_type"] != both["product_type_old"])]
    moved = moved[["product_id", "product_type_old"]].rename(columns={"product_type_old": "product_type"})
    deletes = pd.concat([gone[["product_id", "product_type"]], moved], ignore_index=True)
    return upsert, deletes


def spread(n: int, sample: int) -> list[int]:
    """Up to `sample` row numbers spread evenly over n rows, first and last included (the rows a
    stage reads back or measures on a large table)."""
    return sorted({round(i * (n - 1) / max(sample - 1, 1)) for i in range(min(n, sample))})


def read_state(path: str | Path | None, expected_sha256: str | None) -> pd.DataFrame | None:
    """The digests a stage last wrote, when the receipt vouches for them (same hash); else None."""
    if not path or not expected_sha256 or not Path(path).exists():
        return None
    if receipt.sha256_file(path) != expected_sha256:
        return None
    return pd.read_parquet(path)


def write_state(path: str | Path, state: pd.DataFrame) -> str:
    """Write the digests atomically; -> their file's sha256 for the receipt."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    state.to_parquet(tmp, index=False)
    tmp.replace(path)
    return receipt.sha256_file(path)
