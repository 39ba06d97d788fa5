"""The history file options `replay` and `backfill` share: JSON lines, or a CSV or Parquet
export with a column mapping."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from churnstream.model.csv_input import (
    PARQUET_SUFFIXES,
    CsvMapping,
    HistoryInputError,
    history_records,
)
from churnstream.model.replay_input import ReplayRecord
from churnstream.stream.cli.common import CommandError


def add_history_options(p: Any) -> None:
    p.add_argument(
        "--csv-columns",
        default=None,
        metavar="FIELD=COLUMN,...",
        help="read FILE as a CSV export with a header (a FILE ending in .csv even without "
        "it; one ending in .parquet is a Parquet export, mapped alike, needs "
        "churnstream[parquet]); which column holds each contract field, e.g. "
        "user_id=customer,ts=event_time,kind=event_type (a column named like its field needs "
        "no entry; without a kind column the kind is inferred)",
    )
    p.add_argument(
        "--csv-kinds",
        default="",
        metavar="VALUE=KIND,...",
        help="rename the kind column's values to contract kinds, e.g. "
        "login=logins,view=video_views",
    )


def history(args: argparse.Namespace) -> Iterator[ReplayRecord]:
    """The records of `args.file` as the options say (errors as one-line command errors)."""
    try:
        mapping = (
            CsvMapping.parse(args.csv_columns or "", args.csv_kinds)
            if args.csv_columns is not None or args.csv_kinds
            else None
        )
    except HistoryInputError as e:
        raise CommandError(str(e)) from None
    return _as_command_errors(history_records(args.file, mapping))


def count_records(path: Path) -> int:
    """About how many records the file holds (lines; a Parquet file's rows), for progress."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        from churnstream.model.parquet_input import parquet_rows

        try:
            return parquet_rows(path)
        except HistoryInputError as e:
            raise CommandError(str(e)) from None
    with path.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def _as_command_errors(records: Iterator[ReplayRecord]) -> Iterator[ReplayRecord]:
    # A CSV without the mapped kind column is found when its header is read, at the first
    # row; a Parquet file without pyarrow when it is opened.
    try:
        yield from records
    except HistoryInputError as e:
        raise CommandError(str(e)) from None
