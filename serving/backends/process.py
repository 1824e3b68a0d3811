"""A searcher whose index is held by a child process, so that searching never holds the caller's GIL.

Qdrant Edge's Python binding keeps the GIL while it searches, and a search over all types asks every
type's shard; in the service that time is taken from the HTTP loop and the encoder, and one process
never uses more than one core's worth of Python. `SearcherProcess` opens the index in a spawned
child (nothing of the parent's threads or model is copied) and forwards each `search_many` over a
pipe; the parent only waits on the pipe, with the GIL released. An Edge shard admits one open
handle: the child holds it, the parent none. Searches from several threads are sent one at a time;
a child that dies is replaced, and the search that found it gone is asked again.
"""
from __future__ import annotations

import logging
import multiprocessing
import threading
from pathlib import Path

import numpy as np

from serving.backends.schema import IndexParams, Searcher

log = logging.getLogger("vlclip.serve")


class SearcherProcess(Searcher):
    """`open_searcher(params, path)` in a child process: `search_many` is asked of the child."""

    def __init__(self, params: IndexParams, path: str | Path | None, open_timeout_s: float = 300.0):
        self._args, self._timeout = (params, None if path is None else str(path)), open_timeout_s
        self._lock = threading.Lock()
        super().__init__(*self._start())

    def _start(self) -> tuple:
        """Spawn the child and wait until it has opened the index; -> what it holds."""
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, *self._args), name="vlclip-search", daemon=True)
        self._proc.start()
        child.close()
        try:
            if not self._conn.poll(self._timeout):
                raise RuntimeError(f"the index search process did not open the index in {self._timeout:.0f}s")
            return self._answer()
        except BaseException:
            self._stop()
            raise

    def search_many(self, vectors: np.ndarray, product_types: list[str | None], ks: list[int],
                    using: str = "image", exact: bool = False) -> list[list[dict]]:
        request = (np.asarray(vectors, dtype=np.float32), list(product_types), [int(k) for k in ks], using, exact)
        with self._lock:
            try:
                return self._ask(request)
            except ChildGone as exc:  # killed (out of memory, by hand): a new child, and the search once more
                log.error("%s; starting another", exc)
                self._stop()
                if self._start()[1] != self.model_version:
                    raise RuntimeError("the index changed under the service; reload it") from exc
                return self._ask(request)

    def _ask(self, request):
        try:
            self._conn.send(request)
        except OSError as exc:
            raise self._gone() from exc
        return self._answer()

    def _answer(self):
        try:
            ok, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._gone() from exc
        if not ok:
            raise value
        return value

    def _gone(self) -> ChildGone:
        self._proc.join(1)
        return ChildGone(f"the index search process has exited (exit code {self._proc.exitcode})")

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        try:
            self._conn.send(None)
        except OSError:
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10)
        self._conn.close()


class ChildGone(RuntimeError):
    pass


def portable(exc: Exception) -> Exception:
    """The child's error as one the parent can unpickle: builtin errors as they are, others by name."""
    return exc if type(exc).__module__ == "builtins" else RuntimeError(f"{type(exc).__name__}: {exc}")


def _serve(conn, params: IndexParams, path: str | None) -> None:
    """The child: open the index, answer searches until told to stop or the parent is gone."""
    from serving.backends import open_searcher

    try:
        searcher = open_searcher(params, path)
    except Exception as exc:  # noqa: BLE001  the parent raises it
        conn.send((False, portable(exc)))
        return
    try:
        conn.send((True, (searcher.types(), searcher.model_version, searcher.dim, searcher.hnsw_ef)))
        while (request := conn.recv()) is not None:
            try:
                conn.send((True, searcher.search_many(*request)))
            except Exception as exc:  # noqa: BLE001  a bad request fails alone
                conn.send((False, portable(exc)))
    except (EOFError, OSError):  # the parent has exited
        pass
    finally:
        searcher.close()
