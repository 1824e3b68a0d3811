"""refine stage: rewrite each product's noisy text into a short visual query with the agent loop.

    python -m curation.refine --params params.yaml --products data/dedup/products.parquet --out data/refine

Writes queries.parquet (product_id, query, rounds, guard_ok, in_window, backend, fell_back) and
audit.jsonl (one JSON object per product with every agent step). Whatever the backend, the final query
must pass the hard guards in curation.refinement.guards: an LLM query that still fails after
max_rounds is replaced by the rules backend's query, and a query that still fails then by the product
type alone (fell_back=True either way); the run goes on.
"""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from curation.refinement import (
    AgentRun,
    Backend,
    ChatClient,
    OpenAIBackend,
    OpenAIParams,
    Product,
    RulesBackend,
    Window,
    check_guards,
    run_agents,
)
from curation.refinement.attributes import fragments
from curation.refinement.guards import passes
from curation.refinement.rules import RulesParams
from curation.refinement.text import tokens
from vlclip.cache import RowCache, code_digest, digest
from vlclip.params import load_params, section
from vlclip.progress import Progress

__all__ = ["BACKENDS", "OpenAIParams", "RefineParams", "RulesParams", "make_backend", "refine_products", "main"]

QUERY_COLUMNS = ["product_id", "query", "rounds", "guard_ok", "in_window", "backend", "fell_back"]


@dataclass(frozen=True)
class RefineParams:
    backend: str
    max_rounds: int
    min_words: int
    max_words: int
    openai: OpenAIParams
    rules: RulesParams = RulesParams()

    @property
    def window(self) -> Window:
        return Window(self.min_words, self.max_words)


def _openai(params: RefineParams, env: dict[str, str]) -> OpenAIBackend:
    base = env.get("VLCLIP_LLM_BASE_URL", "").strip()
    if not base:
        raise ValueError("refine.backend is 'openai' but VLCLIP_LLM_BASE_URL is not set "
                         "(e.g. http://127.0.0.1:8000/v1 for a local vLLM/Ollama server)")
    return OpenAIBackend(ChatClient(base, env.get("VLCLIP_LLM_API_KEY", ""), params.openai), params.window)


# name -> (refine params, environment) -> backend; the openai one reads its endpoint and key from the
# environment, never from params.yaml.
BACKENDS = {
    "rules": lambda params, env: RulesBackend(params.window, params.rules),
    "openai": _openai,
}


def make_backend(params: RefineParams, env: dict[str, str] | None = None) -> Backend:
    if params.backend not in BACKENDS:
        raise ValueError(f"refine.backend must be one of {sorted(BACKENDS)}, got {params.backend!r}")
    return BACKENDS[params.backend](params, dict(os.environ) if env is None else env)


def _last_resort(product: Product, window: Window) -> tuple[str, bool]:
    """The product type alone: always grounded and visual (the run goes on; the row is flagged)."""
    query = " ".join(tokens(product.product_type))
    return query, passes(check_guards(query, product.product_type, product.index, window))


def refine_one(product: Product, params: RefineParams, backend: Backend, rules: RulesBackend) -> tuple[dict, dict]:
    """-> (query row, audit record). LLM failures fall back to rules, rules failures to the type."""
    run = run_agents(product, backend, params.window, params.max_rounds)
    fallback: AgentRun | None = None
    if not run.guard_ok and backend is not rules:
        fallback = run_agents(product, rules, params.window, params.max_rounds)
    final = fallback or run
    query, ok = final.query, final.guard_ok
    if not ok:
        query, ok = _last_resort(product, params.window)
    n = len(query.split())
    row = {"product_id": product.product_id, "query": query, "rounds": run.rounds, "guard_ok": ok,
           "in_window": params.min_words <= n <= params.max_words, "backend": backend.name,
           "fell_back": query != run.query}
    audit = {**row, "steps": run.steps, **({"fallback_steps": fallback.steps} if fallback else {})}
    return row, audit


def settings_key(params: RefineParams, backend: Backend) -> str:
    """What every product's query depends on besides its own text: settings, backend, and the
    refinement code with its lexicons."""
    here = Path(__file__).parent
    return digest("refine", asdict(params), backend.name, getattr(backend, "identity", ""),
                  code_digest(here / "refine.py", here / "refinement"))


def product_key(base: str, product: Product, common: frozenset[str]) -> str:
    """A product's cache key: its own text, and of the catalog's filler words only those its text
    holds (the refiner consults the filler set word by word), so a filler word the catalog gains or
    loses re-refines the products that use it, not the catalog."""
    words: set[str] = set()
    for name, text in product.sources():
        words.update(tokens(text))
        for toks in fragments(text, description=name == "description"):
            words.update(toks)
    return digest(base, product.product_id, product.product_type, product.title, product.description,
                  product.extras, sorted(common & words))


def refine_products(products: pd.DataFrame, params: RefineParams, backend: Backend,
                    progress: Callable[[int], None] | None = None,
                    cache: RowCache | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """One query row and one audit record per product, in the input order. With a cache, products
    whose text and settings were refined before are not sent to the agents again."""
    if params.min_words > params.max_words:
        raise ValueError(f"refine.min_words ({params.min_words}) > refine.max_words ({params.max_words})")
    items = [Product.from_row(r) for r in products.to_dict("records")]
    rules = backend if isinstance(backend, RulesBackend) else RulesBackend(params.window, params.rules)
    rules.adopt(items)
    cache = cache or RowCache(None)
    base, common = settings_key(params, backend), frozenset(getattr(rules, "common", ()) or ())
    keys = [product_key(base, p, common) for p in items]
    known = cache.get_many(keys)
    results, made = [], {}
    for product, key in zip(items, keys):
        if key in known:
            results.append(json.loads(known[key]))
        else:
            row, record = refine_one(product, params, backend, rules)
            results.append({"row": row, "audit": record})
            made[key] = json.dumps(results[-1], ensure_ascii=False).encode()
            if len(made) >= 1000:
                cache.put_many(made)
                made = {}
        if progress is not None:
            progress(1)
    cache.put_many(made)
    frame = pd.DataFrame([r["row"] for r in results], columns=QUERY_COLUMNS)
    frame = frame.astype({"rounds": "int64", "guard_ok": bool, "in_window": bool, "fell_back": bool})
    return frame, [r["audit"] for r in results]


def summary(queries: pd.DataFrame) -> dict[str, Any]:
    n = len(queries)
    words = queries["query"].str.split().str.len() if n else pd.Series(dtype=float)
    return {"products": n, "pass_rate": float(queries["guard_ok"].mean()) if n else 0.0,
            "in_window": float(queries["in_window"].mean()) if n else 0.0,
            "mean_rounds": float(queries["rounds"].mean()) if n else 0.0,
            "mean_words": float(words.mean()) if n else 0.0,
            "fell_back": int(queries["fell_back"].sum())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--products", required=True, help="products parquet (dedup output)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--cache", help="per-product results kept across runs (SQLite); none: refine everything")
    ap.add_argument("--throughput", help="JSON: items, seconds, items/s, peak RSS of this run")
    args = ap.parse_args(argv)
    params = section(RefineParams, load_params(args.params), "refine")
    products = pd.read_parquet(args.products)
    progress = Progress("refine", len(products))
    with make_backend(params) as backend, RowCache(args.cache) as cache:
        queries, audit = refine_products(products, params, backend, progress.add, cache)
        cache.retain_used()
    report = progress.save(args.throughput, backend=params.backend)
    print(f"refine: {cache.report()}; {report['items_per_s']} products/s, peak RSS {report['peak_rss_mb']:.0f} MB",
          flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    queries.to_parquet(out / "queries.parquet", index=False)
    with open(out / "audit.jsonl", "w", encoding="utf-8") as fh:
        for record in audit:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    s = summary(queries)
    print(f"refine[{params.backend}]: {s['products']} queries, hard-guard pass rate {s['pass_rate']:.3f}, "
          f"in the word window {s['in_window']:.3f}, "
          f"mean rounds {s['mean_rounds']:.2f}, mean words {s['mean_words']:.1f}, fell back {s['fell_back']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
