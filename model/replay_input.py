"""Records of a replay file: the simulator's JSONL, or plain contract events one per line.

Simulator lines are `{"topic": ..., "key": ..., "value": {...}}` (or `"raw_b64"` for records
that are deliberately invalid). A plain contract event has no topic, so its kind is inferred
from the fields only that event type requires.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from churnstream.stream.contract.topics import KIND_BY_TOPIC


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    kind: str | None  # None: the line names no known input topic (counted as invalid)
    topic: str
    value: bytes | None
    line: int


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
