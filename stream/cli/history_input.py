"""The history file options `replay` and `backfill` share: JSON lines or a mapped CSV export."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from churnstream.model.csv_input import CsvMapping, CsvMappingError, history_records
from churnstream.model.replay_input import ReplayRecord
from churnstream.stream.cli.common import CommandError


def add_history_options(p: Any) -> None:
    p.add_argument(
        "--csv-columns",
        default=None,
        metavar="FIELD=COLUMN,...",
        help="read FILE as CSV with a header; which column holds each contract field, e.g. "
        "user_id=customer,ts=event_time,kind=event_type (a column named like its field needs "
        "no entry; without a kind column the kind is inferred). A FILE ending in .csv is read "
        "as CSV even without it",
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
    except CsvMappingError as e:
        raise CommandError(str(e)) from None
    return _as_command_errors(history_records(args.file, mapping))


def _as_command_errors(records: Iterator[ReplayRecord]) -> Iterator[ReplayRecord]:
    # A CSV without the mapped kind column is found when its header is read, at the first row.
    try:
        yield from records
    except CsvMappingError as e:
        raise CommandError(str(e)) from None
