"""The Summarizer -> Evaluator -> Refiner loop and its two backends.

Every backend has the same three agents; the loop adds the deterministic guards (vocab.check_guards)
to whatever the Evaluator says, so no backend can STOP on a query that breaks them.
`rules` is offline and deterministic; `openai` talks to any OpenAI-compatible chat endpoint.
"""
from __future__ import annotations

import ast
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from curation import vocab
from curation.vocab import Window

CORE_COLUMNS = ("product_id", "product_type", "title", "description", "image_path", "split", "phash")


@dataclass(frozen=True)
class OpenAIParams:
    model: str
    temperature: float
    timeout_s: float


@dataclass(frozen=True)
class Product:
    """One product's metadata as the agents see it (text cleaned, NaN -> "")."""

    product_id: str
    product_type: str
    title: str
    description: str
    extras: tuple[tuple[str, str], ...]
    index: frozenset[str] = field(repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Product:
        pid = vocab.clean_text(row.get("product_id"))
        ptype = vocab.clean_text(row.get("product_type")).lower()
        if not pid or not ptype:
            raise ValueError(f"product {pid or row!r}: product_id and product_type are required")
        extras = tuple((k, vocab.clean_text(v)) for k, v in row.items()
                       if k not in CORE_COLUMNS and not k.endswith("_path") and vocab.clean_text(v))
        title, desc = vocab.clean_text(row.get("title")), vocab.clean_text(row.get("description"), keep_lines=True)
        index = vocab.grounding_index([ptype, title, desc, *(v for _, v in extras)])
        return cls(pid, ptype, title, desc, extras, index)

    def sources(self) -> list[tuple[str, str]]:
        """Fields in trust order: colour/pattern columns, title, other columns, then the noisy description."""
        named = [(k, v) for k, v in self.extras if any(s in k.lower() for s in ("colour", "color", "pattern"))]
        rest = [(k, v) for k, v in self.extras if (k, v) not in named]
        return [*named, ("title", self.title), *rest, ("description", self.description)]

    def prompt_text(self) -> str:
        lines = [f"product_type: {self.product_type}", f"title: {self.title}",
                 *(f"{k}: {v}" for k, v in self.extras), f"description: {self.description}"]
        return "\n".join(lines)


class Backend(Protocol):
    name: str

    def summarize(self, product: Product) -> str: ...

    def evaluate(self, product: Product, query: str) -> list[str]: ...  # [] means STOP

    def refine(self, product: Product, query: str, problems: list[str]) -> str: ...


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
        guards = vocab.check_guards(text, product.product_type, product.index, window)
        problems = list(dict.fromkeys(backend.evaluate(product, text) + guards))
        steps.append({"round": rnd, "agent": "evaluator", "verdict": "STOP" if not problems else "REVISE",
                      "problems": problems, "guard_ok": not guards})
        if not problems or rnd == max_rounds:
            return AgentRun(text, rnd, not guards, steps)
        previous, text = text, backend.refine(product, text, problems)
        steps.append({"round": rnd + 1, "agent": "refiner", "text": text})
        if text == previous and getattr(backend, "deterministic", False):
            # A deterministic Refiner that changed nothing will change nothing next round either.
            steps.append({"round": rnd + 1, "agent": "evaluator", "verdict": "STALLED", "problems": problems,
                          "guard_ok": not guards})
            return AgentRun(text, rnd + 1, not guards, steps)
    raise AssertionError("unreachable")


class RulesBackend:
    """Deterministic agents over the generic visual vocabulary; only words from the product's metadata."""

    name = "rules"
    deterministic = True

    def __init__(self, window: Window):
        self.window = window

    def summarize(self, product: Product) -> str:
        core, info, _ = self._plan(product)
        return self._fill([core], info, target=self.window.max_words)

    def evaluate(self, product: Product, query: str) -> list[str]:
        return vocab.check_guards(query, product.product_type, product.index, self.window)

    def refine(self, product: Product, query: str, problems: list[str]) -> str:
        """Drop flagged words, trim the lowest-priority phrases, then pad with grounded ones."""
        bad = set(vocab.tokens(" ".join(vocab.non_visual_hits(query))))
        bad |= {ast.literal_eval(p.split(": ", 1)[1]) for p in problems if p.startswith(vocab.UNGROUNDED)}
        segments = [" ".join(w for w in seg.split() if not bad.intersection(vocab.tokens(w)))
                    for seg in query.split(", ")]
        segments = [seg for seg in segments if seg]
        if not segments or not set(vocab.tokens(product.product_type)) <= set(vocab.tokens(segments[0])):
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
        a = vocab.extract_attributes(product.sources())
        shape_adj = [s for s in a.shapes if s not in vocab.SHAPE_NOUNS]
        shape_noun = [s for s in a.shapes if s in vocab.SHAPE_NOUNS]
        lead_pattern = a.patterns[:1] if not a.accents else []
        words = [*shape_adj[:1], *lead_pattern, *a.colours[:1], *a.materials[:1], *shape_noun[:1],
                 product.product_type]
        core = " ".join(dict.fromkeys(words)) + (f" with {a.accents[0]}" if a.accents else "")
        info = [*(f"with {x}" for x in a.accents[1:]), *(f"{s} silhouette" for s in shape_adj[1:]),
                *(f"{s} shape" for s in shape_noun[1:]), *(f"{p} design" for p in a.patterns[len(lead_pattern):]),
                *(f"{m} finish" for m in a.materials[1:]), *(f"{c} details" for c in a.colours[1:])]
        accent_colour = [_colour_part(x) for x in a.accents[:1] if _colour_part(x)]
        restate = [*(f"{c} colour" for c in a.colours[:1]), *(f"{c} accents" for c in accent_colour),
                   *(f"{s} silhouette" for s in shape_adj[:1]), *(f"{p} design" for p in lead_pattern),
                   *(f"{m} look" for m in a.materials[:1]), *(f"{s} shape" for s in shape_noun[:1])]
        type_words = set(vocab.tokens(product.product_type))
        leftovers = [f"{w} style" for w in a.leftovers if w not in type_words]
        return core, info, restate + leftovers


def _count(segments: list[str]) -> int:
    return sum(len(s.split()) for s in segments)


def _colour_part(phrase: str) -> str:
    """"dark green stripes" -> "dark green"."""
    words = phrase.split()
    n = next((i for i, w in enumerate(words) if w not in vocab.COLOURS | vocab.COLOUR_MODIFIERS), len(words))
    return " ".join(words[:n])


SUMMARIZER_PROMPT = (
    "You are the Summarizer. From the product metadata, write ONE image search query of {min_words} to "
    "{max_words} words that names only what a photo shows: the product type '{{ptype}}', colours, pattern, "
    "material look and shape. Use only words that occur in the metadata (plus: a, an, the, with, and, in, "
    "of, on, featuring, pattern, trim, accents, colour, style, look, finish, shape, silhouette, design, "
    "details). No brand, size, fit, feel, care, price, shipping, warranty or codes. Reply with the query only.")
EVALUATOR_PROMPT = (
    "You are the Evaluator. Check the query against the product metadata: {min_words} to {max_words} words, "
    "only visually discernible attributes, nothing absent from the metadata, the product type present. "
    "If it is good reply exactly STOP. Otherwise reply with the problems, one per line, each starting '- '.")
REFINER_PROMPT = (
    "You are the Refiner. Rewrite the query so that it fixes every listed problem, keeping {min_words} to "
    "{max_words} words of visual attributes taken from the metadata. Reply with the new query only.")


class ChatClient:
    """POST {base}/chat/completions with retries on 429/5xx and on connection errors."""

    def __init__(self, base_url: str, api_key: str, params: OpenAIParams, retries: int = 4,
                 backoff_s: float = 1.0):
        import httpx  # only the openai backend needs it

        self.url = base_url.rstrip("/") + "/chat/completions"
        self.params, self.retries, self.backoff_s = params, retries, backoff_s
        headers = {"Content-Type": "application/json"}
        if api_key:  # local servers (vLLM, Ollama, llama.cpp) often need none
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(timeout=params.timeout_s, headers=headers)
        self._transport_errors = (httpx.TransportError,)

    def complete(self, system: str, user: str) -> str:
        body = {"model": self.params.model, "temperature": self.params.temperature,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = self._http.post(self.url, content=json.dumps(body))
            except self._transport_errors as exc:
                if last:
                    raise RuntimeError(f"LLM endpoint {self.url} is unreachable after {attempt + 1} tries: "
                                       f"{type(exc).__name__}: {exc}") from exc
                time.sleep(self.backoff_s * 2**attempt)
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                if last:
                    raise RuntimeError(f"LLM endpoint {self.url} kept answering HTTP {resp.status_code}: "
                                       f"{resp.text[:200]}")
                wait = resp.headers.get("retry-after", "")
                time.sleep(min(float(wait), 30.0) if wait.replace(".", "", 1).isdigit()
                           else self.backoff_s * 2**attempt)
                continue
            return self._content(resp)
        raise AssertionError("unreachable")

    def _content(self, resp: Any) -> str:
        if resp.status_code != 200:
            raise RuntimeError(f"LLM endpoint {self.url} answered HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            return resp.json()["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RuntimeError(f"LLM endpoint {self.url} sent no chat completion: {resp.text[:200]}") from exc

    def close(self) -> None:
        self._http.close()


class OpenAIBackend:
    """The three agents as system prompts to an OpenAI-compatible chat model."""

    name = "openai"
    deterministic = False

    def __init__(self, client: ChatClient, window: Window):
        self.client = client
        fmt = {"min_words": window.min_words, "max_words": window.max_words}
        self.prompts = {k: v.format(**fmt) for k, v in
                        (("summarizer", SUMMARIZER_PROMPT), ("evaluator", EVALUATOR_PROMPT),
                         ("refiner", REFINER_PROMPT))}

    def summarize(self, product: Product) -> str:
        system = self.prompts["summarizer"].replace("{ptype}", product.product_type)
        return _one_line(self.client.complete(system, product.prompt_text()))

    def evaluate(self, product: Product, query: str) -> list[str]:
        answer = self.client.complete(self.prompts["evaluator"], f"{product.prompt_text()}\n\nquery: {query}")
        if answer.strip().strip(".").upper() == "STOP" or answer.strip().upper().startswith("STOP"):
            return []
        problems = [line.strip().lstrip("-*• ").strip() for line in answer.splitlines()]
        return [p for p in problems if p] or ["the Evaluator gave no verdict"]

    def refine(self, product: Product, query: str, problems: list[str]) -> str:
        listed = "\n".join(f"- {p}" for p in problems)
        user = f"{product.prompt_text()}\n\nquery: {query}\n\nproblems:\n{listed}"
        return _one_line(self.client.complete(self.prompts["refiner"], user))


def _one_line(answer: str) -> str:
    """The first non-empty line, without a 'query:' label or surrounding quotes."""
    line = next((ln.strip() for ln in answer.splitlines() if ln.strip()), "")
    if line.lower().startswith("query:"):
        line = line[len("query:"):].strip()
    return line.strip("\"'`").strip()


def make_backend(name: str, window: Window, openai: OpenAIParams,
                 env: dict[str, str] | None = None) -> RulesBackend | OpenAIBackend:
    """The backend named in params; the openai one reads its endpoint and key from the environment."""
    if name == "rules":
        return RulesBackend(window)
    if name == "openai":
        env = dict(os.environ) if env is None else env
        base = env.get("VLCLIP_LLM_BASE_URL", "").strip()
        if not base:
            raise ValueError("refine.backend is 'openai' but VLCLIP_LLM_BASE_URL is not set "
                             "(e.g. http://127.0.0.1:8000/v1 for a local vLLM/Ollama server)")
        return OpenAIBackend(ChatClient(base, env.get("VLCLIP_LLM_API_KEY", ""), openai), window)
    raise ValueError(f"refine.backend must be 'rules' or 'openai', got {name!r}")
