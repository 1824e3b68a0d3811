"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol, for tests.

Its answers are canned but depend on the prompt, so a test can watch the agent loop work over HTTP:
- Summarizer (system prompt names it): the product title plus ", free shipping" (a non-visual term);
- Evaluator: flags any of BANNED in the query line, else answers STOP;
- Refiner: removes the banned words from the query.
mode="stubborn" keeps answering with marketing text (to force the rules fallback);
fail_first=n answers the first n requests with HTTP 429 (to exercise retries).
"""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BANNED = ("free", "shipping", "soft", "comfortable")
STUBBORN = "buy this soft comfortable dress now with free shipping and easy returns today"


def _field(user: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*(.*)$", user, flags=re.M)
    return m.group(1).strip() if m else ""


def answer(system: str, user: str, mode: str) -> str:
    if "Summarizer" in system:
        return STUBBORN if mode == "stubborn" else f"{_field(user, 'title').lower()}, free shipping"
    query = _field(user, "query")
    if "Evaluator" in system:
        found = [w for w in BANNED if re.search(rf"\b{w}\b", query)]
        return "\n".join(f"- remove the non-visual term '{w}'" for w in found) if found else "STOP"
    if "Refiner" in system:
        if mode == "stubborn":
            return STUBBORN
        kept = [w for w in query.replace(",", " ").split() if w not in BANNED]
        return f'"{" ".join(kept)}"'  # quoted, as chat models often do
    return "I do not know this agent."


class _Handler(BaseHTTPRequestHandler):
    server: FakeLLM

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if not self.path.endswith("/chat/completions"):
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        if self.server.fail_first > 0:
            self.server.fail_first -= 1
            return self._send(429, {"error": {"message": "rate limited"}})
        messages = body["messages"]
        content = answer(messages[0]["content"], messages[-1]["content"], self.server.mode)
        self._send(200, {"id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}]})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass


class FakeLLM(ThreadingHTTPServer):
    """`with FakeLLM() as llm:` serves on a free port in a thread; llm.base_url ends with /v1."""

    daemon_threads = True

    def __init__(self, mode: str = "good", fail_first: int = 0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode, self.fail_first = mode, fail_first
        self.requests: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
