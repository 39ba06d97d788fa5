"""Replay records from a Parquet export, mapped like a CSV export (`model/csv_input.py`).

Needs pyarrow, the optional extra `churnstream[parquet]`; without it the file is refused on one
line saying so. Columns keep their Parquet types: numbers and flags as they are, a timestamp
column as epoch seconds (UTC when it has no zone), a number in a text field (an id) as text;
text cells are typed as CSV cells are. Rows are read in batches, in file order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from churnstream.model.csv_input import CsvMapping, HistoryInputError, mapped_records
from churnstream.model.replay_input import ReplayRecord

BATCH_ROWS = 10_000


def _open(path: Path) -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise HistoryInputError(
            f"{path}: reading Parquet needs pyarrow: pip install 'churnstream[parquet]'"
        ) from None
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise HistoryInputError(f"{path}: not a readable Parquet file ({e})") from None


def parquet_rows(path: Path) -> int:
    """How many rows the file holds (from its footer)."""
    with _open(path) as table:
        return int(table.metadata.num_rows)


def read_parquet(path: Path, mapping: CsvMapping) -> Iterator[ReplayRecord]:
    """The rows of `path` as replay records, numbered from 1, in file order."""
    with _open(path) as table:
        header = list(table.schema_arrow.names)
        rows = (row for batch in table.iter_batches(BATCH_ROWS) for row in batch.to_pylist())
        yield from mapped_records(path, header, enumerate(rows, 1), mapping)
