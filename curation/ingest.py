"""ingest: read a catalog in the contract format, quarantine broken rows with their reason, split by product id.

Every row-level defect is a quarantine row (the line in the catalog file, product_id, field, reason):
malformed CSV/JSONL lines, empty or over-long fields, control characters (NUL cuts strings elsewhere),
a product type with no letter or digit, duplicate ids, image paths that resolve (after symlinks)
outside the catalog directory and `extra_roots`, and images that are missing, undecodable, animated,
too small or above the decoded-pixel cap (read from the header, before decoding)."""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from PIL import Image

from vlclip.params import load_params, section
from vlclip.progress import Progress
from vlclip.tables import write_frames

REQUIRED = ("product_id", "product_type", "title", "description", "image_path")
CATALOG_FILES = ("catalog.csv", "catalog.parquet", "catalog.jsonl")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 controls but tab, newline, carriage return


@dataclass(frozen=True)
class Split:
    train: float
    val: float
    test: float


@dataclass(frozen=True)
class IngestParams:
    split: Split
    min_image_side: int = 16
    max_pixels: int = 40_000_000           # decoded width x height, read from the header before decoding
    max_id_chars: int = 128
    max_field_chars: int = 100_000
    extra_roots: tuple[str, ...] = ()      # directories outside the catalog that image paths may point into


def find_catalog(directory: Path) -> Path:
    for name in CATALOG_FILES:
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"{directory}: no catalog file; expected one of {', '.join(CATALOG_FILES)}")


def _record_lines(path: Path) -> Iterator[tuple[int, dict | None, str]]:
    """(line, record or None, why it is malformed) per catalog line; lines count from 1 in the file."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            line = reader.line_num + 1
            for fields in reader:
                bad = "" if len(fields) == len(header) else \
                    f"malformed CSV line: {len(fields)} fields, the header has {len(header)}"
                yield line, None if bad else dict(zip(header, fields)), bad
                line = reader.line_num + 1
        return
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for line, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                yield line, record, ""
            except ValueError as exc:
                yield line, None, f"malformed JSON line: {exc}"[:200]


def catalog_shape(path: Path) -> tuple[list[str], int]:
    """-> (columns, rows) without holding the catalog: a parquet file's schema, a CSV header, or every
    key of a JSONL file (one pass)."""
    if path.suffix == ".parquet":
        meta = pq.ParquetFile(path)
        return list(meta.schema_arrow.names), meta.metadata.num_rows
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            header = next(csv.reader(fh), [])
        return header, sum(1 for _ in _record_lines(path))
    columns, rows = {}, 0
    for _, record, _ in _record_lines(path):
        columns |= dict.fromkeys(record or {})
        rows += 1
    return list(columns), rows


def catalog_frames(path: Path, rows: int = 1_000) -> Iterator[pd.DataFrame]:
    """The catalog `rows` lines at a time: every column as a string so ids like 00123 keep their zeros,
    missing values as ''. Two columns are added: `_line` (the row's line in the file, its position in a
    parquet file) and `_malformed` (why a line could not be read as a row, else '')."""
    columns, _ = catalog_shape(path)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing required column(s) {missing}; found {columns}")
    if path.suffix == ".parquet":
        done = 0
        for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=rows):
            df = batch.to_pandas().astype(str).assign(_malformed="")
            df.insert(0, "_line", range(done + 1, done + len(df) + 1))
            done += len(df)
            yield df.replace({"nan": "", "None": ""})
        return
    lines = _record_lines(path)
    while chunk := list(islice(lines, rows)):
        df = pd.DataFrame([{**(r or {}), "_line": line, "_malformed": bad} for line, r, bad in chunk],
                          columns=[*columns, "_line", "_malformed"]).fillna("")
        df[columns] = df[columns].astype(str)
        yield df.replace({"nan": "", "None": ""})


def read_catalog(path: Path) -> pd.DataFrame:
    """The whole catalog in one frame (`catalog_frames` joined)."""
    return pd.concat(list(catalog_frames(path)), ignore_index=True)


def check_image(path: Path, min_side: int, max_pixels: int = 40_000_000) -> str:
    """'' when the file is a decodable still image of usable size, else the reason. The pixel cap is
    checked on the header's size, before anything is decoded."""
    if not path.is_file():
        return f"image file not found: {path}"
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                return f"image too large: {w}x{h} = {w * h} pixels (max {max_pixels})"
            if getattr(im, "n_frames", 1) > 1:
                return f"animated image ({im.n_frames} frames)"
            im.load()  # verify() misses truncated files; a full decode does not
    except Image.DecompressionBombError as exc:  # a header past Pillow's own limit: refused before our check
        return f"image too large: {exc}"[:300]
    except Exception as exc:  # Pillow raises several types for bad bytes
        return f"image not decodable: {type(exc).__name__}: {exc}"[:300]
    if min(w, h) < min_side:
        return f"image too small: {w}x{h} (min side {min_side})"
    return ""


def _text_problem(row: pd.Series, params: IngestParams) -> tuple[str, str]:
    for field, value in row.items():
        if str(field).startswith("_"):
            continue
        value = str(value)
        if CONTROL.search(value):
            return str(field), f"control character in {field} (NUL or another C0 code)"
        cap = params.max_id_chars if field in ("product_id", "product_type") else params.max_field_chars
        if len(value) > cap:
            return str(field), f"{field} too long: {len(value)} characters (max {cap})"
    if not re.search(r"[^\W_]", str(row["product_type"])):
        return "product_type", f"product type {row['product_type']!r} has no letter or digit"
    return "", ""


def resolve_image(value: str, base: Path, roots: list[Path]) -> tuple[Path, str]:
    """-> (the real path, '' or why it may not be read): after symlinks, inside the catalog directory or
    one of the extra roots."""
    path = Path(value)
    real = (path if path.is_absolute() else base / path).resolve()
    if not any(real.is_relative_to(r) for r in roots):
        return real, f"image path resolves outside the catalog directory: {value}"[:300]
    return real, ""


def row_problem(row: pd.Series, base: Path, roots: list[Path], seen: set[str],
                params: IngestParams) -> tuple[str, str, Path | None]:
    """-> (field, reason) of the first problem in a row, or ('', ''), and the row's real image path
    once it is known."""
    if row.get("_malformed"):
        return "row", row["_malformed"], None
    for field in ("product_id", "product_type", "title", "image_path"):
        if not str(row[field]).strip():
            return field, f"empty {field}", None
    field, reason = _text_problem(row, params)
    if reason:
        return field, reason, None
    if row["product_id"] in seen:
        return "product_id", f"duplicate product_id {row['product_id']!r}", None
    path, reason = resolve_image(row["image_path"], base, roots)
    reason = reason or check_image(path, params.min_image_side, params.max_pixels)
    return ("image_path" if reason else ""), reason, path


def split_of(product_id: str, split: Split) -> str:
    """Deterministic split from a hash of the id: stable when rows are added or reordered."""
    u = int(hashlib.sha1(product_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if u < split.train else "val" if u < split.train + split.val else "test"


def ingest(df: pd.DataFrame, base: Path, params: IngestParams,
           seen: set[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """-> (clean products, quarantine rows: row (the line in the catalog file), product_id, field, reason).
    `seen`: the ids kept from earlier chunks of the same catalog (a repeat of one is a duplicate)."""
    keep, bad, seen = [], [], set() if seen is None else seen
    df = df.assign(product_id=df["product_id"].str.strip(),
                   product_type=df["product_type"].str.strip().str.lower())
    if "_line" not in df:
        df = df.assign(_line=range(1, len(df) + 1), _malformed="")
    roots = [base.resolve(), *(Path(r).resolve() for r in params.extra_roots)]
    for _, row in df.iterrows():
        field, reason, path = row_problem(row, base, roots, seen, params)
        if reason:
            bad.append({"row": int(row["_line"]), "product_id": str(row["product_id"])[:params.max_id_chars],
                        "field": field, "reason": reason})
            continue
        seen.add(row["product_id"])
        keep.append({**row.to_dict(), "image_path": str(path)})
    columns = [c for c in df.columns if not c.startswith("_")]
    products = pd.DataFrame(keep, columns=list(df.columns))[columns]
    products["split"] = [split_of(p, params.split) for p in products["product_id"]]
    quarantine = pd.DataFrame(bad, columns=["row", "product_id", "field", "reason"])
    return products.reset_index(drop=True), quarantine


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--catalog", required=True, help="catalog directory (contract format)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--throughput", help="JSON: items, seconds, items/s, peak RSS of this run")
    args = ap.parse_args(argv)
    params = section(IngestParams, load_params(args.params), "ingest")
    path = find_catalog(Path(args.catalog))
    columns, total = catalog_shape(path)
    progress = Progress("ingest", total)
    print(f"ingest: {total} rows from {path}")
    out, seen, counts = Path(args.out), set(), {"quarantined": 0}
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "quarantine.csv", "w", newline="", encoding="utf-8") as qfile:
        qfile.write("row,product_id,field,reason\n")

        def kept():
            for raw in catalog_frames(path):
                products, quarantine = ingest(raw, path.parent, params, seen)
                quarantine.to_csv(qfile, index=False, header=False)
                for r in quarantine.itertuples():
                    print(f"  quarantined row {r.row} ({r.product_id or '-'}): {r.field}: {r.reason}")
                counts["quarantined"] += len(quarantine)
                for split, n in products["split"].value_counts().items():
                    counts[split] = counts.get(split, 0) + int(n)
                progress.add(len(raw))
                yield products

        empty = pd.DataFrame(columns=[*columns, "split"], dtype=str)  # a catalog with no valid row
        write_frames(kept(), out / "products.parquet", empty=empty)
    quarantined, report = counts.pop("quarantined"), progress.save(args.throughput)
    print(f"ingest: kept {len(seen)}, quarantined {quarantined}; split {counts}; {report['items_per_s']} rows/s, "
          f"peak RSS {report['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
