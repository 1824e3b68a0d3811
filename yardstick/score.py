"""Score refined queries against a yardstick's ground truth: does the query still name the object and
its colour, and how many of its words appear nowhere in the truth or the product's own text."""
from __future__ import annotations

import re

import pandas as pd

_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")


def _words(text: str) -> list[str]:
    return _WORD.findall(str(text).lower())


def refinement_scores(queries: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """queries: product_id, query, guard_ok; truth: product_id, object, colour."""
    df = queries.merge(truth, on="product_id")
    words = df["query"].map(_words)
    has_object = [set(_words(o)) <= set(w) for o, w in zip(df["object"], words)]
    has_colour = [c in w for c, w in zip(df["colour"], words)]
    n_words = words.map(len)
    return {"n": int(len(df)), "object_name_kept": float(pd.Series(has_object).mean()),
            "colour_named": float(pd.Series(has_colour).mean()),
            "guard_pass_rate": float(df["guard_ok"].astype(bool).mean()),
            "mean_words": float(n_words.mean()), "in_10_20_words": float(n_words.between(10, 20).mean())}
