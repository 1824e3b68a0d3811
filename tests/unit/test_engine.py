"""The compute engines: the local one and a local 2-CPU Ray give the same rows in the same order."""
import os
import sys

import pandas as pd
import pytest

from vlclip.engine import POSITION, ComputeParams, _in_order, map_batches, rebatch, resolve_device

RAY = ComputeParams(engine="ray", actors=2, local_cpus=2)


class Doubler:
    """Records the process it was set up in; the batch function doubles x."""

    def __init__(self):
        self.pid = None

    def setup(self):
        self.pid = os.getpid()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"y": batch["x"] * 2, "pid": self.pid})


class Dropper(Doubler):
    def __call__(self, batch):
        return super().__call__(batch).iloc[1:]


@pytest.fixture(scope="module")
def ray_local():
    import ray  # the dev extra installs it; `compute.engine: local` needs none

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors cannot import a test module
    yield ray
    ray.shutdown()


def test_local_engine_sets_up_here_and_keeps_the_order():
    rows = pd.DataFrame({"x": range(23)})
    frames = list(map_batches(Doubler(), rows, 5, ComputeParams()))
    assert [len(f) for f in frames] == [5, 5, 5, 5, 3]
    out = pd.concat(frames)
    assert out["y"].tolist() == [2 * x for x in range(23)] and set(out["pid"]) == {os.getpid()}


def test_frames_read_one_after_another_are_batched_like_one_frame():
    chunks = [pd.DataFrame({"x": range(a, b)}) for a, b in ((0, 3), (3, 4), (4, 15))]
    assert [len(f) for f in rebatch(iter(chunks), 4)] == [4, 4, 4, 3]
    out = pd.concat(list(map_batches(Doubler(), iter(chunks), 4, ComputeParams(), total=15)))
    assert out["y"].tolist() == [2 * x for x in range(15)]


def test_ray_engine_gives_the_local_rows_in_order_from_actors(ray_local):
    rows = pd.DataFrame({"x": range(1000)})
    out = pd.concat(list(map_batches(Doubler(), rows, 37, RAY)), ignore_index=True)
    assert out["y"].tolist() == [2 * x for x in range(1000)]
    assert os.getpid() not in set(out["pid"])  # set up and run in the actors, not the driver
    chunks = (rows.iloc[i:i + 90] for i in range(0, 1000, 90))  # a stream the driver never holds whole
    out = pd.concat(list(map_batches(Doubler(), chunks, 37, RAY, total=1000)), ignore_index=True)
    assert out["y"].tolist() == [2 * x for x in range(1000)]


def test_a_worker_that_loses_rows_is_an_error(ray_local):
    with pytest.raises(Exception, match="returned 36 rows for 37"):
        list(map_batches(Dropper(), pd.DataFrame({"x": range(74)}), 37, RAY))


def test_out_of_order_blocks_wait_for_the_rows_before_them():
    def block(lo, hi):
        return pd.DataFrame({"v": range(lo, hi), POSITION: range(lo, hi)})

    ready, rest = _in_order([block(5, 9)], 0)
    assert ready is None and len(rest) == 1
    ready, rest = _in_order([*rest, block(0, 5)], 0)
    assert ready["v"].tolist() == list(range(9)) and rest == [] and POSITION not in ready
    ready, rest = _in_order([block(9, 12), block(14, 15)], 9)
    assert ready["v"].tolist() == [9, 10, 11] and len(rest) == 1


def test_engine_and_batch_size_are_checked():
    with pytest.raises(ValueError, match="local.*ray"):
        list(map_batches(Doubler(), pd.DataFrame({"x": [1]}), 4, ComputeParams(engine="spark")))
    with pytest.raises(ValueError, match="at least 1"):
        list(map_batches(Doubler(), pd.DataFrame({"x": [1]}), 0, ComputeParams()))
    assert list(map_batches(Doubler(), pd.DataFrame({"x": []}), 4, RAY)) == []  # nothing to do starts nothing


def test_auto_device_follows_where_the_work_runs():
    assert resolve_device("auto", ComputeParams(engine="ray", gpus_per_actor=1)) == "cuda"
    assert resolve_device("auto", ComputeParams(engine="ray")) == "cpu"
    assert resolve_device("cpu", ComputeParams(engine="ray", gpus_per_actor=1)) == "cpu"


def _rss_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_trim_heap_gives_back_the_holes_a_batch_leaves():
    """Blocks freed between live ones stay resident (glibc only trims the heap's top by itself);
    trim_heap hands their pages back, which is what keeps a stage's peak RSS flat over many batches."""
    from vlclip.engine import trim_heap

    blocks = [bytearray(64 << 10) for _ in range(4096)]  # 256 MB in 64 KB blocks: below the mmap threshold
    keep = blocks[63::64]  # one live block in every 64 pins the heap around the holes
    del blocks
    held = _rss_mb()
    trim_heap()
    assert held - _rss_mb() > 150, f"trim gave back {held - _rss_mb():.0f} MB of ~252 MB freed"
    assert len(keep) == 64
