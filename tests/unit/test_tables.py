"""Parquet written a row group at a time: all of it or nothing."""
import pandas as pd
import pyarrow.parquet as pq
import pytest

from vlclip.tables import count_rows, read_frames, write_frames


def test_frames_become_row_groups_and_read_back_in_order(tmp_path):
    frames = [pd.DataFrame({"id": [f"p{i}" for i in range(a, a + 3)], "text": ""}) for a in (0, 3, 6)]
    seen = []
    assert write_frames(iter(frames), tmp_path / "t.parquet", seen.append) == 9
    assert seen == [3, 3, 3] and pq.ParquetFile(tmp_path / "t.parquet").num_row_groups == 3
    assert count_rows(tmp_path / "t.parquet") == 9
    back = pd.concat(list(read_frames(tmp_path / "t.parquet", rows=4)), ignore_index=True)
    pd.testing.assert_frame_equal(back, pd.concat(frames, ignore_index=True))


def test_a_failure_midway_leaves_no_file(tmp_path):
    def frames():
        yield pd.DataFrame({"id": ["p0"]})
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="broke"):
        write_frames(frames(), tmp_path / "t.parquet")
    assert list(tmp_path.iterdir()) == []


def test_nothing_to_write_writes_the_empty_table_or_says_so(tmp_path):
    write_frames([], tmp_path / "e.parquet", empty=pd.DataFrame({"id": pd.Series(dtype=str)}))
    assert list(pd.read_parquet(tmp_path / "e.parquet").columns) == ["id"]
    with pytest.raises(ValueError, match="nothing to write"):
        write_frames([], tmp_path / "f.parquet")
