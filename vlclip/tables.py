"""Tables read and written in row groups, so a stage holds a batch of the catalog, not the catalog."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def count_rows(path: str | Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def read_frames(path: str | Path, rows: int = 1_000, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """The parquet file as frames of up to `rows` rows, in file order (a stage's memory holds one)."""
    # pre_buffer (pyarrow's default) reads ahead without bound: memory grew with the file
    for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=rows, columns=columns):
        yield batch.to_pandas()


def write_frames(frames: Iterable[pd.DataFrame], path: str | Path, on_rows: Callable[[int], None] | None = None,
                 empty: pd.DataFrame | None = None) -> int:
    """Stream frames into one parquet file, a row group each, written to a temporary name and moved into
    place when all are in (a failure leaves no partial file); -> rows written. No rows: `empty` is
    written (its columns), or it is an error."""
    path = Path(path)
    tmp, writer, rows = path.with_name(f".{path.name}.tmp"), None, 0
    try:
        for frame in frames:
            if frame.empty:  # nothing to add, and no column types to learn from
                continue
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))  # a batch of all-empty strings keeps the types
            rows += len(frame)
            if on_rows is not None:
                on_rows(len(frame))
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    if writer is None:
        if empty is None:
            raise ValueError(f"{path}: nothing to write")
        empty.to_parquet(tmp, index=False)
    else:
        writer.close()
    tmp.replace(path)
    return rows
