"""JSON Lines files of simulated records (one Kafka record per line).

Line form: `{"topic", "key", "value"}` for a well-formed record, `"raw_b64"` instead of
`"value"` for raw bytes, plus `"ts"` (event time used for ordering) and `"expect"` (what a
correct consumer does with it); replay tools may ignore the extra two.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from churnstream.model.replay_input import ReplayRecord
from churnstream.stream.contract.topics import KIND_BY_TOPIC
from churnstream.stream.devtools.simulator.records import SimRecord

_BATCH = 4096


def record_line(rec: SimRecord) -> bytes:
    """One JSONL line (with trailing newline) for `rec`."""
    line: dict[str, Any] = {"topic": rec.topic, "key": rec.key}
    if rec.raw is not None:
        line["raw_b64"] = base64.b64encode(rec.raw).decode("ascii")
    else:
        line["value"] = rec.value
    line["ts"] = rec.ts
    line["expect"] = rec.expect
    return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)


def write_jsonl(records: Iterable[SimRecord], path: str | Path) -> int:
    """Write `records` to `path`; returns how many. Same records give the same bytes."""
    n = 0
    batch: list[bytes] = []
    with Path(path).open("wb") as f:
        for rec in records:
            batch.append(record_line(rec))
            if len(batch) >= _BATCH:
                f.write(b"".join(batch))
                n += len(batch)
                batch.clear()
        f.write(b"".join(batch))
        n += len(batch)
    return n


def read_jsonl(path: str | Path) -> Iterator[SimRecord]:
    """Records of a file written by `write_jsonl` (blank lines skipped)."""
    with Path(path).open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            obj = orjson.loads(line)
            raw_b64 = obj.get("raw_b64")
            raw = None if raw_b64 is None else base64.b64decode(raw_b64)
            value = None if raw is not None else obj.get("value")
            yield SimRecord(
                obj["topic"],
                obj.get("key"),
                value,
                raw,
                float(obj.get("ts", 0.0)),
                obj.get("expect", "valid"),
            )


def replay_records(records: Iterable[SimRecord]) -> Iterator[ReplayRecord]:
    """`records` as `model.replay_input.read_records` yields them from a file of their lines
    (numbered from 1), without writing one: benchmarks and tests replay in memory."""
    for n, rec in enumerate(records, 1):
        value = (
            rec.raw
            if rec.raw is not None
            else (None if rec.value is None else orjson.dumps(rec.value))
        )
        yield ReplayRecord(KIND_BY_TOPIC.get(rec.topic), rec.topic, value, n)
