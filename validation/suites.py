"""What the validate stage checks: the tables it builds from stage outputs, and one suite per table.

Each suite is plain data (name, table, expectations) so the tests and the report can name what failed.
Severity "critical" fails the run; "warning" is reported only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from curation.refinement.guards import CODE_PATTERN, Window, non_visual_patterns

QUARANTINE_COLUMNS = ["row", "product_id", "field", "reason"]
SPLITS = ["train", "val", "test"]


@dataclass(frozen=True)
class ValidateParams:
    """Gates are rates that mean broken data, never one product."""

    max_fallback_rate: float      # share of full-image fallbacks in grounding
    max_quarantine_rate: float    # share of catalog rows quarantined at ingest
    min_query_pass_rate: float    # share of refined queries passing the hard guards (and free of non-visual terms)
    min_window_rate: float = 0.5  # share of queries inside the word window (a warning: the window is a target)


@dataclass(frozen=True)
class Suite:
    name: str
    table: str            # key into the frames dict
    expectations: list    # great_expectations Expectation objects


def window_regex(window: Window) -> str:
    """Whole-value match of min..max whitespace-separated words (GX regexes use str.contains, so anchor)."""
    return rf"^\s*\S+(?:\s+\S+){{{window.min_words - 1},{window.max_words - 1}}}\s*$"


def non_visual_regexes() -> list[str]:
    """The refine guards' non-visual terms plus code-like tokens, as GX-ready regexes."""
    return [*non_visual_patterns(), CODE_PATTERN]


def build_frames(boxes: pd.DataFrame, queries: pd.DataFrame, products: pd.DataFrame,
                 quarantine: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The tables the suites run on; the catalog table has one row per input row (kept or quarantined)."""
    boxes = boxes.copy()
    if "fallback" in boxes:
        boxes["fallback"] = _as_bool(boxes["fallback"], "boxes.fallback")
    queries = queries.copy()
    if "guard_ok" in queries:
        queries["guard_ok"] = _as_bool(queries["guard_ok"], "queries.guard_ok")
    n_quarantined = int(quarantine["row"].nunique()) if "row" in quarantine else len(quarantine)
    rows = pd.DataFrame({"quarantined": [0] * len(products) + [1] * n_quarantined})
    return {"boxes": boxes, "queries": queries, "products": products, "quarantine": quarantine,
            "catalog_rows": rows}


def _as_bool(col: pd.Series, where: str) -> pd.Series:
    """CSV round trips turn booleans into strings; map them back and fail on anything else."""
    if col.dtype == bool:
        return col
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    out = col.astype(str).str.strip().str.lower().map(mapping)
    bad = out.isna()
    if bad.any():
        i = int(bad.idxmax())
        raise ValueError(f"{where}: row {i} holds {col.iloc[i]!r}, expected a boolean")
    return out.astype(bool)


def _label(check: str, severity: str = "critical") -> dict[str, Any]:
    return {"meta": {"check": check}, "severity": severity}


def build_suites(params: ValidateParams, window: Window, frames: dict[str, pd.DataFrame]) -> list[Suite]:
    import great_expectations.expectations as gxe  # ~4 s import, only when validating

    query_ids = sorted(frames["queries"]["product_id"].dropna().astype(str).unique().tolist()) \
        if "product_id" in frames["queries"] else []
    boxes = [
        gxe.ExpectColumnValuesToNotBeNull(column="product_id", **_label("box product_id present")),
        gxe.ExpectColumnValuesToBeUnique(column="product_id", **_label("one box per product")),
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=0.0, max_value=1.0,
                                          **_label("detector score in [0, 1]")),
        gxe.ExpectColumnMeanToBeBetween(column="fallback", min_value=0.0, max_value=params.max_fallback_rate,
                                        **_label("full-image fallback rate")),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="x1", column_B="x0", **_label("box has width")),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="y1", column_B="y0", **_label("box has height")),
        gxe.ExpectColumnValuesToBeInSet(column="product_id", value_set=query_ids,
                                        **_label("every boxed product has a query", "warning")),
    ]
    queries = [
        gxe.ExpectColumnValuesToNotBeNull(column="product_id", **_label("query product_id present")),
        gxe.ExpectColumnValuesToBeUnique(column="product_id", **_label("one query per product")),
        gxe.ExpectColumnValuesToNotBeNull(column="query", **_label("query present")),
        gxe.ExpectColumnValuesToMatchRegex(column="query", regex=window_regex(window), mostly=params.min_window_rate,
                                           **_label(f"query has {window.min_words}-{window.max_words} words",
                                                    "warning")),
        gxe.ExpectColumnValuesToNotMatchRegexList(column="query", regex_list=non_visual_regexes(),
                                                  mostly=params.min_query_pass_rate,
                                                  **_label("query has no non-visual terms or codes")),
        gxe.ExpectColumnMeanToBeBetween(column="guard_ok", min_value=params.min_query_pass_rate, max_value=1.0,
                                        **_label("query hard-guard pass rate")),
        gxe.ExpectColumnValuesToBeUnique(column="query", mostly=0.9, **_label("queries are distinct", "warning")),
    ]
    products = [
        gxe.ExpectColumnValuesToNotBeNull(column="product_id", **_label("catalog product_id present")),
        gxe.ExpectColumnValuesToBeUnique(column="product_id", **_label("catalog product_id unique")),
        gxe.ExpectColumnValuesToNotBeNull(column="product_type", **_label("catalog product_type present")),
        gxe.ExpectColumnValuesToNotBeNull(column="image_path", **_label("catalog image_path present")),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=SPLITS, **_label("split is train/val/test")),
    ]
    quarantine = [gxe.ExpectTableColumnsToMatchSet(column_set=QUARANTINE_COLUMNS, exact_match=False,
                                                   **_label("quarantine.csv columns"))]
    rows = [gxe.ExpectColumnMeanToBeBetween(column="quarantined", min_value=0.0, max_value=params.max_quarantine_rate,
                                            **_label("quarantine rate"))]
    return [Suite("boxes", "boxes", boxes), Suite("queries", "queries", queries),
            Suite("catalog", "products", products), Suite("quarantine", "quarantine", quarantine),
            Suite("quarantine_rate", "catalog_rows", rows)]
