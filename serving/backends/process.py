"""A searcher whose index is held by a child process, so that searching never holds the caller's GIL.

Qdrant Edge's Python binding keeps the GIL while it searches; in the service that time would be
taken from the HTTP loop and the encoder, and one process
never uses more than one core's worth of Python. `SearcherProcess` opens the index in a spawned
child (serving.child) and forwards each `search_many` over a pipe; the parent only waits on the
pipe, with the GIL released. An Edge shard admits one open handle: the child holds it, the parent
none. Searches from several threads are sent one at a time; a child that dies is replaced, and the
search that found it gone is asked again.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from serving.backends.schema import IndexParams, Searcher
from serving.child import Child


class SearcherProcess(Searcher):
    """`open_searcher(params, path)` in a child process: `search_many` is asked of the child."""

    def __init__(self, params: IndexParams, path: str | Path | None, open_timeout_s: float = 300.0):
        self.child = Child(_open, (params, None if path is None else str(path)), "vlclip-search",
                           "the index search process", open_timeout_s)
        super().__init__(*self.child.start())

    def search_many(self, vectors: np.ndarray, product_types: list[str | None], ks: list[int],
                    using: str = "image", exact: bool = False) -> list[list[dict]]:
        request = (np.asarray(vectors, dtype=np.float32), list(product_types), [int(k) for k in ks], using, exact)
        return self.child.call(request, again=self._same_index)

    def _same_index(self, opened: tuple) -> None:
        if opened[1] != self.model_version:
            raise RuntimeError("the index changed under the service; reload it")

    def close(self) -> None:
        self.child.close()


def _open(params: IndexParams, path: str | None):
    """In the child: open the index -> (answer a search_many request, what it holds, close)."""
    from serving.backends import open_searcher

    searcher = open_searcher(params, path)
    return (lambda request: searcher.search_many(*request),
            (searcher.types(), searcher.model_version, searcher.dim, searcher.hnsw_ef, searcher.all_types),
            searcher.close)
