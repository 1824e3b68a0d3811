"""POST /search answered without the framework's per-request machinery, for the requests it would
answer the same way.

Under concurrent load the service's throughput is the HTTP loop's Python per request: the loop holds
the GIL that the encoder and search batchers need to hand their results on. FastAPI's route machinery
(a request object, two exit stacks, dependency solving, body-model validation, exception wrapping)
cost the loop as much as the rest of a search request there. `FastSearch` (ASGI middleware, inside
`Borrow`) reads a well-formed search itself, a JSON object whose query is a string, product_type a
string or null and k an integer in 1..max_k or absent, and answers it with the route's own function
(`answer`: the same checks, the same search, the same response). Anything else (another type for a
field, not JSON, a query or type the checks refuse) goes on to the route with its body unchanged, so
every refusal still comes from one place. Metrics and the access log name the route as for any request.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import HTTPException


class FastSearch:
    def __init__(self, app, answer: Callable[..., Awaitable], route, max_k: int):
        """answer(state, query, product_type, k) -> the route's response, or HTTPException;
        `route`: the /search route (its path labels metrics and the access log)."""
        self.app, self.answer, self.route, self.max_k = app, answer, route, max_k

    async def __call__(self, scope, receive, send):
        state = scope.get("state") or {}
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.route.path
                and state.get("vlclip.state") is not None and _is_json(scope)):
            return await self.app(scope, receive, send)
        body = await _body(receive)
        if body is None:  # the client left
            return

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        fields = self._fields(body)
        if fields is not None:
            scope["route"] = self.route  # also where the search itself fails (a 500 by the error handler)
            try:
                response = await self.answer(state["vlclip.state"], *fields)
            except HTTPException:  # the route answers the refusal
                response = None
            if response is not None:
                return await response(scope, replay, send)
        await self.app(scope, replay, send)

    def _fields(self, body: bytes) -> tuple | None:
        """(query, product_type, k) of a well-formed search body, else None."""
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if type(data) is not dict:
            return None
        query, product_type, k = data.get("query"), data.get("product_type"), data.get("k")
        if (type(query) is str and (product_type is None or type(product_type) is str)
                and (k is None or (type(k) is int and 1 <= k <= self.max_k))):
            return query, product_type, k
        return None


def _is_json(scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            return value.split(b";")[0].strip().lower() == b"application/json"
    return False


async def _body(receive) -> bytes | None:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)
