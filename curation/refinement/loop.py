"""The Summarizer -> Evaluator <-> Refiner loop, the same for every backend.

The loop adds the deterministic guards (guards.check_guards) to whatever the Evaluator says, so no
backend can STOP on a query that breaks them. A backend is a context manager: `with` closes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from curation.refinement.guards import Problem, Window, check_guards, passes
from curation.refinement.product import Product


class Backend(Protocol):
    name: str

    def summarize(self, product: Product) -> str: ...

    def evaluate(self, product: Product, query: str) -> list[Problem | str]: ...  # [] means STOP

    def refine(self, product: Product, query: str, problems: list[Problem | str]) -> str: ...

    def close(self) -> None: ...


class Closing:
    """`with backend:` closes what the backend holds (an HTTP client, say) however the block ends."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class AgentRun:
    query: str
    rounds: int
    guard_ok: bool
    steps: list[dict[str, Any]]


def run_agents(product: Product, backend: Backend, window: Window, max_rounds: int) -> AgentRun:
    """Round 1 = Summarizer + Evaluator; each later round = Refiner + Evaluator; at most max_rounds."""
    if max_rounds < 1:
        raise ValueError(f"refine.max_rounds must be >= 1, got {max_rounds}")
    text = backend.summarize(product)
    steps: list[dict[str, Any]] = [{"round": 1, "agent": "summarizer", "text": text}]
    for rnd in range(1, max_rounds + 1):
        guards = check_guards(text, product.product_type, product.index, window)
        problems = list(dict.fromkeys(backend.evaluate(product, text) + guards))
        steps.append({"round": rnd, "agent": "evaluator", "verdict": "STOP" if not problems else "REVISE",
                      "problems": [str(p) for p in problems], "guard_ok": passes(guards)})
        if not problems or rnd == max_rounds:
            return AgentRun(text, rnd, passes(guards), steps)
        previous, text = text, backend.refine(product, text, problems)
        steps.append({"round": rnd + 1, "agent": "refiner", "text": text})
        if text == previous and getattr(backend, "deterministic", False):
            # A deterministic Refiner that changed nothing will change nothing next round either.
            steps.append({"round": rnd + 1, "agent": "evaluator", "verdict": "STALLED",
                          "problems": [str(p) for p in problems], "guard_ok": passes(guards)})
            return AgentRun(text, rnd + 1, passes(guards), steps)
    raise AssertionError("unreachable")
