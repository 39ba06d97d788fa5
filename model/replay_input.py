"""Records of a replay file: the simulator's JSONL, or plain contract events one per line.

Simulator lines are `{"topic": ..., "key": ..., "value": {...}}` (or `"raw_b64"` for records
that are deliberately invalid). A plain contract event has no topic, so its kind is inferred
from the fields only that event type requires.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final

import orjson

from churnstream.stream.contract.events import Event
from churnstream.stream.contract.topics import KIND_BY_TOPIC
from churnstream.stream.contract.validation import Invalid, parse

# What a caller does to each valid event before the replay sees it (backfill: the cut, the
# pseudonym, the erasure block list): the event to apply, or None to leave the record out.
# A partitioned replay calls it in its reader for every record and in each process for its
# users' records, so it must give the same answer for the same event.
Admit = Callable[[Event], Event | None]


class _LeftOut(Enum):
    LEFT_OUT = "left out"


LEFT_OUT: Final = _LeftOut.LEFT_OUT  # a valid event its `Admit` left out: not read at all


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    kind: str | None  # None: the line names no known input topic (counted as invalid)
    topic: str
    value: bytes | None
    line: int


def read_event(
    kind: str | None, value: bytes | None, max_bytes: int, admit: Admit | None = None
) -> Event | Invalid | _LeftOut | None:
    """A record as the replay reads it: the event (`admit` applied), Invalid, None (no known
    topic) or LEFT_OUT."""
    event = parse(kind, value, max_bytes) if kind else None  # type: ignore[arg-type]
    if admit is None or event is None or isinstance(event, Invalid):
        return event
    admitted = admit(event)
    return LEFT_OUT if admitted is None else admitted


def infer_kind(doc: dict[str, Any]) -> str:
    if "video_id" in doc:
        return "video_views"
    if "integration" in doc:
        return "integration_syncs"
    if "job_id" in doc:
        return "document_jobs"
    if "event" in doc:
        return "subscriptions"
    if "value" in doc:
        return "value"
    return "logins"


def read_records(path: Path) -> Iterator[ReplayRecord]:
    by_kind = {v: k for k, v in KIND_BY_TOPIC.items()}
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield ReplayRecord(None, "?", line, n)
                continue
            if isinstance(doc, dict) and "topic" in doc and ("value" in doc or "raw_b64" in doc):
                topic = str(doc["topic"])
                if "raw_b64" in doc:
                    raw = doc["raw_b64"]
                    value = base64.b64decode(raw) if isinstance(raw, str) else None
                else:
                    value = None if doc["value"] is None else orjson.dumps(doc["value"])
                yield ReplayRecord(KIND_BY_TOPIC.get(topic), topic, value, n)
            elif isinstance(doc, dict):
                kind = infer_kind(doc)
                yield ReplayRecord(kind, by_kind[kind], line, n)
            else:
                yield ReplayRecord(None, "?", line, n)
