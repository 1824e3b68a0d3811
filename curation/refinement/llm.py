"""The LLM backend: the three agents as system prompts to any OpenAI-compatible chat endpoint."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from curation.refinement.guards import Problem, Window
from curation.refinement.loop import Closing
from curation.refinement.product import Product


@dataclass(frozen=True)
class OpenAIParams:
    model: str
    temperature: float
    timeout_s: float


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
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.params, self.retries, self.backoff_s = params, retries, backoff_s
        self.headers = {"Content-Type": "application/json"}
        if api_key:  # local servers (vLLM, Ollama, llama.cpp) often need none
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._connect()

    def _connect(self) -> None:
        import httpx  # only the openai backend needs it

        self._http = httpx.Client(timeout=self.params.timeout_s, headers=self.headers)
        self._transport_errors = (httpx.TransportError,)

    def __getstate__(self) -> dict:
        """A client travels to a Ray actor as its settings and connects again there."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_http", "_transport_errors")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._connect()

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


class OpenAIBackend(Closing):
    """The three agents as system prompts to an OpenAI-compatible chat model."""

    name = "openai"
    deterministic = False

    def __init__(self, client: ChatClient, window: Window):
        self.client = client
        self.identity = client.url  # cached queries are per endpoint (and per model, in params)
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

    def refine(self, product: Product, query: str, problems: list[Problem | str]) -> str:
        listed = "\n".join(f"- {p}" for p in problems)
        user = f"{product.prompt_text()}\n\nquery: {query}\n\nproblems:\n{listed}"
        return _one_line(self.client.complete(self.prompts["refiner"], user))

    def close(self) -> None:
        self.client.close()


def _one_line(answer: str) -> str:
    """The first non-empty line, without a 'query:' label or surrounding quotes."""
    line = next((ln.strip() for ln in answer.splitlines() if ln.strip()), "")
    if line.lower().startswith("query:"):
        line = line[len("query:"):].strip()
    return line.strip("\"'`").strip()
