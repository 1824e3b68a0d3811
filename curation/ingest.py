"""ingest: read a catalog in the contract format, quarantine broken rows with their reason, split by product id."""
from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from vlclip.params import load_params, section

REQUIRED = ("product_id", "product_type", "title", "description", "image_path")
CATALOG_FILES = ("catalog.csv", "catalog.parquet", "catalog.jsonl")


@dataclass(frozen=True)
class Split:
    train: float
    val: float
    test: float


@dataclass(frozen=True)
class IngestParams:
    split: Split
    min_image_side: int = 16


def find_catalog(directory: Path) -> Path:
    for name in CATALOG_FILES:
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"{directory}: no catalog file; expected one of {', '.join(CATALOG_FILES)}")


def read_catalog(path: Path) -> pd.DataFrame:
    """Every column as a string so ids like 00123 keep their zeros; missing values become ''."""
    if path.suffix == ".csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    elif path.suffix == ".parquet":
        df = pd.read_parquet(path).astype(str)
    else:
        df = pd.read_json(path, lines=True, dtype=False).astype(str)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing required column(s) {missing}; found {list(df.columns)}")
    return df.replace({"nan": "", "None": ""})


def check_image(path: Path, min_side: int) -> str:
    """'' when the file is a decodable image of usable size, else the reason."""
    if not path.is_file():
        return f"image file not found: {path}"
    try:
        with Image.open(path) as im:
            im.load()  # verify() misses truncated files; a full decode does not
            w, h = im.size
    except Exception as exc:  # Pillow raises several types for bad bytes
        return f"image not decodable: {type(exc).__name__}: {exc}"
    if min(w, h) < min_side:
        return f"image too small: {w}x{h} (min side {min_side})"
    return ""


def row_problem(row: pd.Series, base: Path, seen: set[str], min_side: int) -> tuple[str, str]:
    """-> (field, reason) of the first problem in a row, or ('', '')."""
    for field in ("product_id", "product_type", "title", "image_path"):
        if not str(row[field]).strip():
            return field, f"empty {field}"
    if row["product_id"] in seen:
        return "product_id", f"duplicate product_id {row['product_id']!r}"
    path = Path(row["image_path"])
    reason = check_image(path if path.is_absolute() else base / path, min_side)
    return ("image_path", reason) if reason else ("", "")


def split_of(product_id: str, split: Split) -> str:
    """Deterministic split from a hash of the id: stable when rows are added or reordered."""
    u = int(hashlib.sha1(product_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if u < split.train else "val" if u < split.train + split.val else "test"


def ingest(df: pd.DataFrame, base: Path, params: IngestParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """-> (clean products, quarantine rows with row number, product_id, field, reason)."""
    keep, bad, seen = [], [], set()
    df = df.assign(product_id=df["product_id"].str.strip(),
                   product_type=df["product_type"].str.strip().str.lower())
    for i, row in df.iterrows():
        field, reason = row_problem(row, base, seen, params.min_image_side)
        if reason:
            bad.append({"row": int(i) + 1, "product_id": row["product_id"], "field": field,
                        "reason": reason})
            continue
        seen.add(row["product_id"])
        path = Path(row["image_path"])
        keep.append({**row.to_dict(), "image_path": str((path if path.is_absolute() else base / path).resolve())})
    products = pd.DataFrame(keep, columns=list(df.columns))
    products["split"] = [split_of(p, params.split) for p in products["product_id"]]
    quarantine = pd.DataFrame(bad, columns=["row", "product_id", "field", "reason"])
    return products.reset_index(drop=True), quarantine


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--catalog", required=True, help="catalog directory (contract format)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    params = section(IngestParams, load_params(args.params), "ingest")
    path = find_catalog(Path(args.catalog))
    raw = read_catalog(path)
    print(f"ingest: {len(raw)} rows from {path}")
    products, quarantine = ingest(raw, path.parent, params)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    products.to_parquet(out / "products.parquet", index=False)
    quarantine.to_csv(out / "quarantine.csv", index=False)
    for r in quarantine.itertuples():
        print(f"  quarantined row {r.row} ({r.product_id or '-'}): {r.field}: {r.reason}")
    counts = products["split"].value_counts().to_dict()
    print(f"ingest: kept {len(products)}, quarantined {len(quarantine)}; split {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
