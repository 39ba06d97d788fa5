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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import orjson

from churnstream.model.replay_input import ReplayRecord, infer_kind, read_records
from churnstream.stream.contract.events import EVENT_TYPES
from churnstream.stream.contract.topics import INPUT_TOPICS, KIND_BY_TOPIC

KIND_FIELD = "kind"
_TRUE, _FALSE = {"true", "1", "yes", "t", "y"}, {"false", "0", "no", "f", "n"}


class CsvMappingError(ValueError):
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
    types = _types()
    topics = {**{k: k for k in INPUT_TOPICS}, **KIND_BY_TOPIC, **mapping.kinds}
    kind_column = mapping.columns.get(KIND_FIELD)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or ())
        if kind_column is not None and kind_column not in header:
            raise CsvMappingError(f"{path}: no column {kind_column!r} (the kind)")
        fields = mapping.fields(header)
        for n, row in enumerate(reader, 2):  # line 1 is the header
            cells = {fields[c]: v for c, v in row.items() if c in fields and v not in (None, "")}
            if kind_column is not None:
                kind = topics.get((row.get(kind_column) or "").strip())
                if kind is None:
                    yield ReplayRecord(None, "?", orjson.dumps(row), n)
                    continue
            else:
                kind = infer_kind(cells)
            typed = types[kind]
            doc = {name: _cell(text, typed.get(name), name) for name, text in cells.items()}
            yield ReplayRecord(kind, INPUT_TOPICS[kind], orjson.dumps(doc), n)


def history_records(path: Path, mapping: CsvMapping | None = None) -> Iterator[ReplayRecord]:
    """The records of a history file: CSV when it ends in `.csv` or a mapping is given, else
    JSON lines (`replay_input.read_records`)."""
    if mapping is not None or path.suffix.lower() == ".csv":
        return read_csv(path, mapping or CsvMapping())
    return read_records(path)
