"""The state the service answers from, loaded in the background and swapped whole on reload.

- `start()` loads and warms in a thread: /healthz answers at once (liveness), /readyz says ready
  only when encoder, index and Feast are loaded and one query of each kind has run.
- `use()` (or `borrow()` then `give_back()`) lends the current state to one request; a reload swaps
  in the new state atomically, and the old one is closed only when the last request that borrowed it
  has finished.
- `Borrow` (ASGI middleware) makes every HTTP request borrow the state for as long as it runs.
- `reload()` loads the champion's version; when it is the one serving, nothing changes; when its
  parts disagree (the alias moved but embed/index have not published yet) or loading fails, the
  old state keeps serving and the reason is kept for /readyz.
"""
from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("vlclip.serve")


class NotReady(Exception):
    pass


class Live:
    def __init__(self, load: Callable[[], Any], warm: Callable[[Any], None], probe: Callable[[], str] | None = None,
                 on_swap: Callable[[Any], None] = lambda state: None,
                 on_fail: Callable[[str], None] = lambda reason: None,
                 after_publish: Callable[[], None] = lambda: None):
        """load() -> a state with .model_version and .close(); warm(state) runs one query of each
        kind; probe() -> the champion's version now (cheap), used by polling."""
        self._load, self._warm, self._probe = load, warm, probe
        self._on_swap, self._on_fail, self._after_publish = on_swap, on_fail, after_publish
        self._lock, self._reload_lock = threading.Lock(), threading.Lock()
        self._state: Any = None
        self._borrowed: dict[int, int] = {}
        self._retired: dict[int, Any] = {}
        self.status, self.reason, self.last_reload = "loading", "", {}
        self._stop = threading.Event()

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def model_version(self) -> str | None:
        state = self._state
        return None if state is None else str(state.model_version)

    def start(self, poll_s: float = 0.0) -> threading.Thread:
        thread = threading.Thread(target=self._first_load, args=(poll_s,), name="vlclip-load", daemon=True)
        thread.start()
        return thread

    def _first_load(self, poll_s: float) -> None:
        t0 = time.perf_counter()
        try:
            state = self._load()
            self._warm(state)
        except Exception as exc:  # noqa: BLE001  reported by /readyz, the process stays up
            self.status, self.reason = "failed", f"{type(exc).__name__}: {exc}"
            log.error("service failed to load: %s", self.reason)
            self._on_fail(self.reason)
            return
        self._publish(state)
        try:
            self._after_publish()  # e.g. requests through the app itself; a failure here is not fatal
        except Exception as exc:  # noqa: BLE001
            log.warning("warm-up through the app failed: %s", exc)
        self.status = "ready"
        log.info("service ready: model version %s in %.1fs", state.model_version, time.perf_counter() - t0)
        if poll_s > 0 and self._probe is not None:
            while not self._stop.wait(poll_s):
                self._poll()

    def _publish(self, state) -> None:
        with self._lock:
            old, self._state = self._state, state
            if old is not None:
                self._retire(old)
        # Everything loaded so far (libraries, model, tables) lives as long as the state: keep it out of
        # the cyclic collector's full passes, which otherwise stall every request now and then. A reload
        # unfreezes first, so what an earlier version left behind can still be collected.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._on_swap(state)

    def _retire(self, old) -> None:
        """Close `old` now if no request holds it, else when the last one gives it back (lock held)."""
        if self._borrowed.get(id(old), 0) == 0:
            old.close()
        else:
            self._retired[id(old)] = old

    @contextmanager
    def use(self) -> Iterator[Any]:
        state = self.borrow()
        try:
            yield state
        finally:
            self.give_back(state)

    def borrow(self) -> Any:
        """The state serving now, counted as in use until `give_back`; NotReady before the first load."""
        with self._lock:
            state = self._state
            if state is None:
                raise NotReady(self.status if self.status == "loading" else f"failed: {self.reason}")
            self._borrowed[id(state)] = self._borrowed.get(id(state), 0) + 1
            return state

    def give_back(self, state: Any) -> None:
        """End one `borrow`; a retired state is closed when its last borrower gives it back."""
        with self._lock:
            left = self._borrowed[id(state)] - 1
            self._borrowed[id(state)] = left
            if left == 0:
                del self._borrowed[id(state)]
                retired = self._retired.pop(id(state), None)
                if retired is not None:
                    retired.close()

    def reload(self) -> dict:
        """-> {"outcome": swapped | unchanged | refused, "model_version", "reason"}; one at a time."""
        with self._reload_lock:
            current = self.model_version
            if current is None:
                return self._note({"outcome": "refused", "model_version": None, "reason": "not loaded yet"})
            if self._probe is not None and str(self._probe()) == current:
                return self._note({"outcome": "unchanged", "model_version": current, "reason": ""})
            try:
                state = self._load()
                self._warm(state)
            except Exception as exc:  # noqa: BLE001  the old state keeps serving
                return self._note({"outcome": "refused", "model_version": current,
                                   "reason": f"{type(exc).__name__}: {exc}"})
            if str(state.model_version) == current:
                state.close()
                return self._note({"outcome": "unchanged", "model_version": current, "reason": ""})
            self._publish(state)
            return self._note({"outcome": "swapped", "model_version": str(state.model_version),
                               "previous": current, "reason": ""})

    def _note(self, outcome: dict) -> dict:
        self.last_reload = {**outcome, "at": time.time()}
        level = logging.WARNING if outcome["outcome"] == "refused" else logging.INFO
        log.log(level, "reload: %s", outcome)
        return outcome

    def _poll(self) -> None:
        try:
            if str(self._probe()) != self.model_version:
                self.reload()
        except Exception as exc:  # noqa: BLE001  a registry hiccup must not stop the poller
            log.warning("champion poll failed: %s", exc)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            state, self._state = self._state, None
            if state is not None:
                self._retire(state)


class Borrow:
    """ASGI middleware: every HTTP request borrows the state serving now (`Live.use`) for as long as it
    runs, its response included, so a reload never closes a version a request still answers from;
    routes take it through `get_state` (a plain lookup, no per-request context of the framework)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        live = getattr(scope["app"].state, "live", None) if "app" in scope else None
        if scope["type"] != "http" or live is None:
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        try:
            st = live.borrow()
        except NotReady as exc:
            state["vlclip.not_ready"] = str(exc)
            return await self.app(scope, receive, send)
        state["vlclip.state"], state["model_version"] = st, st.model_version
        try:
            await self.app(scope, receive, send)
        finally:
            live.give_back(st)
