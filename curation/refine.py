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
import pickle
from collections.abc import Callable, Iterable, Iterator
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
from vlclip.engine import ComputeParams, map_batches
from vlclip.params import load_params, section
from vlclip.progress import Progress
from vlclip.tables import count_rows, read_frames, write_frames

__all__ = ["BACKENDS", "OpenAIParams", "RefineParams", "RefineWorker", "RulesParams", "make_backend", "refine_products",
           "main"]

QUERY_COLUMNS = ["product_id", "query", "rounds", "guard_ok", "in_window", "backend", "fell_back"]


@dataclass(frozen=True)
class RefineParams:
    backend: str
    max_rounds: int
    min_words: int
    max_words: int
    openai: OpenAIParams
    rules: RulesParams = RulesParams()
    batch_size: int = 64          # products per engine batch (a Ray actor refines one batch at a time)

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
    settings = {k: v for k, v in asdict(params).items() if k != "batch_size"}  # batching changes no query
    return digest("refine", settings, backend.name, getattr(backend, "identity", ""),
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


class RefineWorker:
    """Query rows and audit records for a batch of products (column `product`: pickled Product), what
    the engine runs per batch, here or in a Ray actor (an LLM backend's client connects again there)."""

    def __init__(self, params: RefineParams, backend: Backend, rules: RulesBackend):
        self.params, self.backend = params, backend
        self.rules = None if rules is backend else rules

    def setup(self) -> None:
        self.rules = self.rules or self.backend

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        out = []
        for raw in batch["product"]:
            row, record = refine_one(pickle.loads(raw), self.params, self.backend, self.rules)
            out.append(json.dumps({"row": row, "audit": record}, ensure_ascii=False))
        return pd.DataFrame({"result": out})


def _products(frame: pd.DataFrame) -> list[Product]:
    return [Product.from_row(r) for r in frame.to_dict("records")]


def refine_stream(frames: Callable[[], Iterable[pd.DataFrame]], params: RefineParams, backend: Backend,
                  cache: RowCache | None = None, compute: ComputeParams = ComputeParams(),
                  progress: Callable[[int], None] | None = None,
                  chunk: int = 1000) -> Iterator[tuple[pd.DataFrame, list[dict]]]:
    """Query rows and audit records, `chunk` products at a time in the input order. `frames()` gives the
    products as frames and is read three times (the catalog's filler words, the cache keys, the
    products to refine), so the catalog itself is never in memory: only a key per product. Products
    whose text and settings were refined before come from the cache; the rest go to the engine."""
    if params.min_words > params.max_words:
        raise ValueError(f"refine.min_words ({params.min_words}) > refine.max_words ({params.max_words})")
    rules = backend if isinstance(backend, RulesBackend) else RulesBackend(params.window, params.rules)
    rules.adopt(p for frame in frames() for p in _products(frame))
    cache = cache or RowCache(None)
    base, common = settings_key(params, backend), frozenset(getattr(rules, "common", ()) or ())
    keys, present = [], set()
    for frame in frames():
        part = [product_key(base, p, common) for p in _products(frame)]
        keys += part
        present |= cache.present(part)

    def todo() -> Iterator[pd.DataFrame]:
        done = 0
        for frame in frames():
            items, part = _products(frame), keys[done:done + len(frame)]
            done += len(frame)
            yield pd.DataFrame({"product": [pickle.dumps(p) for p, k in zip(items, part) if k not in present]})

    total = sum(k not in present for k in keys)
    made = (r for f in map_batches(RefineWorker(params, backend, rules), todo(), params.batch_size, compute, total)
            for r in f["result"])
    for start in range(0, len(keys), chunk):
        yield _merge(keys[start:start + chunk], present, made, cache)
        if progress is not None:
            progress(len(keys[start:start + chunk]))


def _merge(keys: list[str], present: set[str], made: Iterator[str], cache: RowCache) -> tuple[pd.DataFrame, list[dict]]:
    """One chunk in order: a cached product read now, any other the engine's next result (cached)."""
    known, fresh, results = cache.get_many([k for k in keys if k in present]), {}, []
    for key in keys:
        raw = known[key] if key in present else next(made).encode()
        results.append(json.loads(raw))
        if key not in present:
            fresh[key] = raw
    cache.put_many(fresh)
    frame = pd.DataFrame([r["row"] for r in results], columns=QUERY_COLUMNS)
    frame = frame.astype({"rounds": "int64", "guard_ok": bool, "in_window": bool, "fell_back": bool})
    return frame, [r["audit"] for r in results]


def refine_products(products: pd.DataFrame, params: RefineParams, backend: Backend,
                    progress: Callable[[int], None] | None = None, cache: RowCache | None = None,
                    compute: ComputeParams = ComputeParams()) -> tuple[pd.DataFrame, list[dict]]:
    """`refine_stream` over a frame in memory: every query row and audit record at once."""
    parts = list(refine_stream(lambda: [products], params, backend, cache, compute, progress))
    if not parts:
        return _merge([], set(), iter(()), RowCache(None))
    return pd.concat([f for f, _ in parts], ignore_index=True), [a for _, audit in parts for a in audit]


class Tally:
    """A run's query rows summed chunk by chunk (`add`), and what they come to (`summary`)."""

    def __init__(self):
        self.sums = dict.fromkeys(("products", "pass", "window", "rounds", "words", "fell_back"), 0)

    def add(self, queries: pd.DataFrame) -> None:
        words = queries["query"].str.split().str.len().sum() if len(queries) else 0
        for name, value in (("products", len(queries)), ("pass", queries["guard_ok"].sum()),
                            ("window", queries["in_window"].sum()), ("rounds", queries["rounds"].sum()),
                            ("words", words), ("fell_back", queries["fell_back"].sum())):
            self.sums[name] += int(value)

    def summary(self) -> dict[str, Any]:
        """Pass rate, window share, mean rounds and words, fell-back count."""
        s, n = self.sums, max(self.sums["products"], 1)
        return {"products": s["products"], "pass_rate": s["pass"] / n, "in_window": s["window"] / n,
                "mean_rounds": s["rounds"] / n, "mean_words": s["words"] / n, "fell_back": s["fell_back"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--products", required=True, help="products parquet (dedup output)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--cache", help="per-product results kept across runs (SQLite); none: refine everything")
    ap.add_argument("--throughput", help="JSON: items, seconds, items/s, peak RSS of this run")
    args = ap.parse_args(argv)
    raw = load_params(args.params)
    params, compute = section(RefineParams, raw, "refine"), section(ComputeParams, raw, "compute")
    progress = Progress("refine", count_rows(args.products))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    totals = Tally()
    with make_backend(params) as backend, RowCache(args.cache) as cache, \
            open(out / "audit.jsonl", "w", encoding="utf-8") as audit_file:
        def chunks():
            for queries, audit in refine_stream(lambda: read_frames(args.products), params, backend, cache, compute,
                                                progress.add):
                audit_file.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in audit)
                totals.add(queries)
                yield queries

        write_frames(chunks(), out / "queries.parquet", empty=_merge([], set(), iter(()), cache)[0])
        cache.retain_used()
    report = progress.save(args.throughput, backend=params.backend, engine=compute.engine)
    print(f"refine: {cache.report()}; {report['items_per_s']} products/s, peak RSS {report['peak_rss_mb']:.0f} MB",
          flush=True)
    s = totals.summary()
    print(f"refine[{params.backend}]: {s['products']} queries, hard-guard pass rate {s['pass_rate']:.3f}, "
          f"in the word window {s['in_window']:.3f}, "
          f"mean rounds {s['mean_rounds']:.2f}, mean words {s['mean_words']:.1f}, fell back {s['fell_back']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
