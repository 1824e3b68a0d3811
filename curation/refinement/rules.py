"""The offline backend: deterministic Summarizer, Evaluator and Refiner that use only words from the
product's own metadata and never pad: a query says what the metadata shows, and a short one stays
short (the word window is a target the guards report, not a reason to invent)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from curation.refinement.attributes import Attributes, extract_attributes, fragments
from curation.refinement.guards import UNGROUNDED, Problem, Window, check_guards, non_visual_hits
from curation.refinement.lexicon import words
from curation.refinement.loop import Closing
from curation.refinement.product import Product
from curation.refinement.text import tokens


@dataclass(frozen=True)
class RulesParams:
    common_type_share: float = 0.25  # a title word in this share of product types (>= 3) is catalog filler
    max_nouns: int = 4               # unlisted title words kept per query


class RulesBackend(Closing):
    """Deterministic agents over the lexicons; only words from the product's metadata."""

    name = "rules"
    deterministic = True

    def __init__(self, window: Window, params: RulesParams = RulesParams()):
        self.window, self.params = window, params
        self.common: frozenset[str] = frozenset()

    def adopt(self, products: Iterable[Product]) -> None:
        """Learn the catalog's filler: title words spread over many product types ("daily", "deluxe")."""
        self.common = common_words(products, self.params.common_type_share)

    def summarize(self, product: Product) -> str:
        return self._trim(phrases(self._attributes(product), product.product_type))

    def evaluate(self, product: Product, query: str) -> list[Problem]:
        return check_guards(query, product.product_type, product.index, self.window)

    def refine(self, product: Product, query: str, problems: list[Problem | str]) -> str:
        """Drop flagged words, put the type back if it went missing, trim to max_words. Never pads."""
        bad = set(tokens(" ".join(non_visual_hits(query))))
        bad |= {p.detail for p in problems if isinstance(p, Problem) and p.kind == UNGROUNDED}
        segments = [" ".join(w for w in seg.split() if not bad.intersection(tokens(w)))
                    for seg in query.split(", ")]
        segments = [seg for seg in segments if seg]
        if not segments or not set(tokens(product.product_type)) <= set(tokens(segments[0])):
            segments.insert(0, " ".join(tokens(product.product_type)))
        return self._trim(segments)

    def _attributes(self, product: Product) -> Attributes:
        return extract_attributes(product.sources(), ignore=self.common, max_nouns=self.params.max_nouns,
                                  product_type=product.product_type)

    def _trim(self, segments: list[str]) -> str:
        """Drop the last (lowest-priority) phrases past max_words, then cut the first if still too long."""
        segments = list(segments)
        while len(segments) > 1 and _count(segments) > self.window.max_words:
            segments.pop()
        if _count(segments) > self.window.max_words:
            segments = [" ".join(segments[0].split()[-self.window.max_words:])]  # the type ends the core
        return ", ".join(segments)


def phrases(a: Attributes, product_type: str) -> list[str]:
    """Core phrase ("round red striped brass violin lamp with gold trim"), then the other attributes."""
    shape_adj = [s for s in a.shapes if s not in words("shape_nouns")]
    shape_noun = [s for s in a.shapes if s in words("shape_nouns")]
    lead_pattern = a.patterns[:1] if not a.accents else []
    type_words = tokens(product_type)
    nouns = [n for n in a.nouns if n not in type_words]
    lead = [*shape_adj[:1], *lead_pattern, *a.colours[:1], *a.materials[:1], *nouns, *shape_noun[:1],
            " ".join(type_words)]
    core = " ".join(dict.fromkeys(lead)) + (f" with {a.accents[0]}" if a.accents else "")
    rest = [*(f"with {x}" for x in a.accents[1:]), *shape_adj[1:], *shape_noun[1:],
            *a.patterns[len(lead_pattern):], *a.materials[1:], *a.colours[1:]]
    return [core, *rest]


def common_words(products: Iterable[Product], share: float, min_types: int = 3) -> frozenset[str]:
    """Title words found under at least max(min_types, share x #types) product types."""
    types_of: dict[str, set[str]] = defaultdict(set)
    all_types: set[str] = set()
    for p in products:
        all_types.add(p.product_type)
        for toks in fragments(p.title):
            for t in toks:
                types_of[t].add(p.product_type)
    need = max(min_types, share * len(all_types))
    return frozenset(w for w, ts in types_of.items() if len(ts) >= need)


def _count(segments: list[str]) -> int:
    return sum(len(s.split()) for s in segments)
