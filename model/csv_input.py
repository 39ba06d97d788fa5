"""Replay records from a CSV export: one event per row, columns mapped to contract fields.

A warehouse export rarely uses the contract's names. `CsvMapping` says which column holds each
contract field (`user_id=customer_id,ts=event_time`; a column named like the field needs no
entry) and which column holds the event kind (`kind=event_type`), whose values are the contract's
kinds (`logins`, `video_views`, ...) or topic names (`behaviour.logins`), or are renamed with
`kinds` (`login=logins`). Without a kind column the kind is inferred from the fields only that
event type has, as for plain JSON lines (`replay_input.infer_kind`).

Cells are typed by the field types of the row's event type (bool: true/false/1/0/yes/no; int;
float; `ts`: epoch seconds or RFC 3339; ids and other text stay text, "007" too); other columns
(e.g. a sync's `status`) are numbers when they read as numbers, else text. An empty cell is an
absent field; a cell that does not convert is passed on as text, so validation rejects the row
with its usual reason. Columns the contract does not read are ignored by validation.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, get_type_hints

import orjson

from churnstream.model.replay_input import ReplayRecord, infer_kind, read_records
from churnstream.stream.contract.events import EVENT_TYPES
from churnstream.stream.contract.topics import INPUT_TOPICS, KIND_BY_TOPIC

KIND_FIELD = "kind"
PARQUET_SUFFIXES = (".parquet", ".pq")
_TRUE, _FALSE = {"true", "1", "yes", "t", "y"}, {"false", "0", "no", "f", "n"}


class HistoryInputError(ValueError):
    """A history file that cannot be read as asked; the message says why, on one line."""


class CsvMappingError(HistoryInputError):
    """A column mapping that cannot be used; the message says which part, on one line."""


@dataclass(frozen=True, slots=True)
class CsvMapping:
    columns: Mapping[str, str] = field(default_factory=dict)  # contract field -> CSV column
    kinds: Mapping[str, str] = field(default_factory=dict)  # CSV kind value -> contract kind

    @classmethod
    def parse(cls, columns: str = "", kinds: str = "") -> CsvMapping:
        """From `field=column,...` and `value=kind,...` (the command line's form)."""
        cols = _pairs(columns, "--csv-columns")
        names = _pairs(kinds, "--csv-kinds")
        for value, kind in names.items():
            if kind not in EVENT_TYPES:
                raise CsvMappingError(
                    f"--csv-kinds: {value}={kind}: not one of {', '.join(EVENT_TYPES)}"
                )
        return cls(cols, names)

    def fields(self, header: Iterable[str]) -> dict[str, str]:
        """CSV column -> the field it fills: mapped columns renamed, the kind column left out,
        every other column under its own name."""
        renamed = {column: name for name, column in self.columns.items()}
        return {c: renamed.get(c, c) for c in header if renamed.get(c) != KIND_FIELD}


def _pairs(text: str, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise CsvMappingError(f"{option}: {part!r} is not name=value")
        out[key.strip()] = value.strip()
    return out


def _types() -> dict[str, dict[str, type]]:
    """Per kind, each field's base type (`int | None` -> int)."""
    out: dict[str, dict[str, type]] = {}
    for kind, cls in EVENT_TYPES.items():
        hints = get_type_hints(cls)
        out[kind] = {
            f.name: next(t for t in (bool, int, float, str) if t in _members(hints[f.name]))
            for f in dataclasses.fields(cls)
        }
    return out


def _members(hint: Any) -> tuple[Any, ...]:
    return getattr(hint, "__args__", (hint,))


def _cell(text: str, kind: type | None, name: str) -> Any:
    if name == "ts" or kind is None:  # ts: epoch seconds or RFC 3339 text, both accepted
        for number in (int, float):
            try:
                return number(text)
            except ValueError:
                pass
        return text
    try:
        if kind is bool:
            low = text.strip().lower()
            if low in _TRUE or low in _FALSE:
                return low in _TRUE
            return text
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        return text  # validation rejects it with the field's name
    return text


def read_csv(path: Path, mapping: CsvMapping) -> Iterator[ReplayRecord]:
    """The rows of `path` (with a header line) as replay records, in file order."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or ())
        yield from mapped_records(path, header, enumerate(reader, 2), mapping)  # 1: header


def mapped_records(
    path: Path,
    header: list[str],
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    mapping: CsvMapping,
) -> Iterator[ReplayRecord]:
    """Numbered rows (column -> cell) as replay records, the columns mapped by `mapping`.
    A cell is text (CSV: typed here) or already a value (Parquet: a text field's number
    becomes text, a timestamp epoch seconds)."""
    types = _types()
    topics = {**{k: k for k in INPUT_TOPICS}, **KIND_BY_TOPIC, **mapping.kinds}
    kind_column = mapping.columns.get(KIND_FIELD)
    if kind_column is not None and kind_column not in header:
        raise CsvMappingError(f"{path}: no column {kind_column!r} (the kind)")
    fields = mapping.fields(header)
    for n, row in rows:
        cells = {fields[c]: v for c, v in row.items() if c in fields and not _absent(v)}
        if kind_column is not None:
            kind = topics.get(str(row.get(kind_column) or "").strip())
            if kind is None:
                yield ReplayRecord(None, "?", orjson.dumps(row, default=str), n)
                continue
        else:
            kind = infer_kind(cells)
        typed = types[kind]
        doc = {name: _value(value, typed.get(name), name) for name, value in cells.items()}
        yield ReplayRecord(kind, INPUT_TOPICS[kind], orjson.dumps(doc, default=str), n)


def _absent(value: Any) -> bool:
    # NaN: how a dataframe writes a missing number into a Parquet float column
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _value(value: Any, kind: type | None, name: str) -> Any:
    if isinstance(value, str):
        return _cell(value, kind, name)
    if isinstance(value, datetime):  # a timestamp column; without a zone it is UTC
        zoned = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return zoned.timestamp()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if kind is str:
            return str(value)  # a numeric id column: ids are text in the contract
        if kind is bool and value in (0, 1):
            return bool(value)
    return value


def history_records(path: Path, mapping: CsvMapping | None = None) -> Iterator[ReplayRecord]:
    """The records of a history file: Parquet when it ends in `.parquet` (the optional
    extra, `model/parquet_input.py`), CSV when it ends in `.csv` or a mapping is given, else
    JSON lines (`replay_input.read_records`)."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        from churnstream.model.parquet_input import read_parquet  # needs pyarrow

        return read_parquet(path, mapping or CsvMapping())
    if mapping is not None or path.suffix.lower() == ".csv":
        return read_csv(path, mapping or CsvMapping())
    return read_records(path)
