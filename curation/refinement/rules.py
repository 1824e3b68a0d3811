"""The offline backend: deterministic Summarizer, Evaluator and Refiner over the lexicons, using only
words from the product's own metadata."""
from __future__ import annotations

from curation.refinement.attributes import extract_attributes
from curation.refinement.guards import UNGROUNDED, Problem, Window, check_guards, non_visual_hits
from curation.refinement.lexicon import words
from curation.refinement.loop import Closing
from curation.refinement.product import Product
from curation.refinement.text import tokens


class RulesBackend(Closing):
    """Deterministic agents over the lexicons; only words from the product's metadata."""

    name = "rules"
    deterministic = True

    def __init__(self, window: Window):
        self.window = window

    def summarize(self, product: Product) -> str:
        core, info, _ = self._plan(product)
        return self._fill([core], info, target=self.window.max_words)

    def evaluate(self, product: Product, query: str) -> list[Problem]:
        return check_guards(query, product.product_type, product.index, self.window)

    def refine(self, product: Product, query: str, problems: list[Problem | str]) -> str:
        """Drop flagged words, trim the lowest-priority phrases, then pad with grounded ones."""
        bad = set(tokens(" ".join(non_visual_hits(query))))
        bad |= {p.detail for p in problems if isinstance(p, Problem) and p.kind == UNGROUNDED}
        segments = [" ".join(w for w in seg.split() if not bad.intersection(tokens(w)))
                    for seg in query.split(", ")]
        segments = [seg for seg in segments if seg]
        if not segments or not set(tokens(product.product_type)) <= set(tokens(segments[0])):
            segments.insert(0, product.product_type)
        while len(segments) > 1 and _count(segments) > self.window.max_words:
            segments.pop()  # the last phrases carry the lowest-priority attributes
        _, info, padding = self._plan(product)
        return self._fill(segments, [*info, *padding], target=self.window.min_words)

    def _fill(self, segments: list[str], phrases: list[str], target: int) -> str:
        """Append phrases not yet said, in order, until `target` words; never past max_words."""
        segments = list(segments)
        for phrase in phrases:
            if _count(segments) >= target:
                break
            if phrase not in ", ".join(segments) and _count([*segments, phrase]) <= self.window.max_words:
                segments.append(phrase)
        return ", ".join(segments)

    def _plan(self, product: Product) -> tuple[str, list[str], list[str]]:
        """(core phrase, informative phrases, padding phrases) for one product."""
        a = extract_attributes(product.sources())
        shape_adj = [s for s in a.shapes if s not in words("shape_nouns")]
        shape_noun = [s for s in a.shapes if s in words("shape_nouns")]
        lead_pattern = a.patterns[:1] if not a.accents else []
        lead = [*shape_adj[:1], *lead_pattern, *a.colours[:1], *a.materials[:1], *shape_noun[:1],
                product.product_type]
        core = " ".join(dict.fromkeys(lead)) + (f" with {a.accents[0]}" if a.accents else "")
        info = [*(f"with {x}" for x in a.accents[1:]), *(f"{s} silhouette" for s in shape_adj[1:]),
                *(f"{s} shape" for s in shape_noun[1:]), *(f"{p} design" for p in a.patterns[len(lead_pattern):]),
                *(f"{m} finish" for m in a.materials[1:]), *(f"{c} details" for c in a.colours[1:])]
        accent_colour = [_colour_part(x) for x in a.accents[:1] if _colour_part(x)]
        restate = [*(f"{c} colour" for c in a.colours[:1]), *(f"{c} accents" for c in accent_colour),
                   *(f"{s} silhouette" for s in shape_adj[:1]), *(f"{p} design" for p in lead_pattern),
                   *(f"{m} look" for m in a.materials[:1]), *(f"{s} shape" for s in shape_noun[:1])]
        type_words = set(tokens(product.product_type))
        leftovers = [f"{w} style" for w in a.leftovers if w not in type_words]
        return core, info, restate + leftovers


def _count(segments: list[str]) -> int:
    return sum(len(s.split()) for s in segments)


def _colour_part(phrase: str) -> str:
    """"dark green stripes" -> "dark green"."""
    parts = phrase.split()
    shades = words("colours") | words("colour_modifiers")
    n = next((i for i, w in enumerate(parts) if w not in shades), len(parts))
    return " ".join(parts[:n])
