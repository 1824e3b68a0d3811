"""serving.backends.process: the Edge index held and searched by a child process."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from test_index import TYPES, embeddings, params

from serving.backends import build, open_searcher
from serving.backends.process import SearcherProcess


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    df = embeddings(60)
    path = tmp_path_factory.mktemp("idx") / "index"
    build(df, params(), path, log=lambda *_: None)
    return df, path


def test_the_child_answers_what_the_index_answers_in_process(index):
    df, path = index
    vectors = np.stack(df["image_embedding"][:5].to_list())
    types, ks = [None, "bag", "dress", None, "table lamp"], [3, 5, 1, 10, 4]
    local = open_searcher(params(), path)
    try:
        expected = local.search_many(vectors, types, ks)
        fused = local.search(df["fused_embedding"][7], "bag", 4, using="fused")
    finally:
        local.close()
    child = SearcherProcess(params(), path)
    try:
        assert child.types() == sorted(TYPES) and child.dim == vectors.shape[1] and child.all_types
        assert child.search_many(vectors, types, ks) == expected
        assert child.search(df["fused_embedding"][7], "bag", 4, using="fused") == fused
        with pytest.raises(ValueError, match="unknown product_type"):  # the child's error, raised here
            child.search(vectors[0], "sofa", 3)
        assert child.search(vectors[0], None, 3) == expected[0]  # and it goes on
    finally:
        child.close()
    assert not child.child.process.is_alive()


def test_a_second_holder_is_refused_and_a_dead_child_is_replaced(index):
    df, path = index
    child = SearcherProcess(params(), path)
    try:
        with pytest.raises(RuntimeError, match="another process"):  # the shards admit one open handle
            open_searcher(params(), path)
        first, expected = child.child.process.pid, child.search(df["image_embedding"][0], None, 5)
        os.kill(first, signal.SIGKILL)
        child.child.process.join(10)
        assert child.search(df["image_embedding"][0], None, 5) == expected  # asked again of a new child
        assert child.child.process.pid != first and child.child.process.is_alive()
    finally:
        child.close()


def test_an_index_that_cannot_be_opened_fails_in_the_parent(tmp_path):
    with pytest.raises(FileNotFoundError):
        SearcherProcess(params(), tmp_path / "missing")
