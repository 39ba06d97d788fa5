"""Microbenchmark of churnstream.stream.contract.validation.parse: µs per event for each input kind.

Run: `python bench/bench_parse.py` (single process, single core). Prints a table with the
best-of-N time per call for a typical valid record (epoch and RFC 3339 `ts`) and for one
invalid record per kind, plus event_to_dict for the replay path.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from churnstream.stream.contract.validation import event_to_dict, parse

TS = 1_772_366_400.25
TS_TEXT = "2026-03-01T12:00:00.250Z"
COMMON = {"event_id": "evt-000123456", "user_id": "user-000042", "segment": "course"}

RECORDS: dict[str, dict[str, Any]] = {
    "video_views": {
        "video_id": "vid-17",
        "course_id": "course-3",
        "watched_s": 312.5,
        "duration_s": 600,
        "seeks": 2,
        "rewinds": 1,
        "pauses": 3,
    },
    "logins": {"success": True, "channel": "web"},
    "integration_syncs": {
        "integration": "salesforce",
        "status": "error",
        "records": 1200,
        "latency_ms": 845.2,
        "error_code": "E_AUTH",
    },
    "document_jobs": {"job_id": "job-9", "status": "ok", "documents": 14, "processing_ms": 930},
    "value": {"value": 42.75, "kind": "hours_saved"},
    "subscriptions": {"event": "renewal", "plan_price": 49.0, "currency": "EUR"},
}
BROKEN = {"user_id": None}  # missing_field:user_id, found after event_id is read


def per_call_us(stmt: Any, number: int) -> float:
    best = min(timeit.repeat(stmt, number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    number = 20_000
    rows = []
    for kind, fields in RECORDS.items():
        epoch = orjson.dumps({**COMMON, "ts": TS, **fields})
        text = orjson.dumps({**COMMON, "ts": TS_TEXT, **fields})
        bad = orjson.dumps({**COMMON, "ts": TS, **fields, **BROKEN})
        event = parse(kind, epoch)
        rows.append(
            (
                kind,
                len(epoch),
                per_call_us(lambda k=kind, b=epoch: parse(k, b), number),
                per_call_us(lambda k=kind, b=text: parse(k, b), number),
                per_call_us(lambda k=kind, b=bad: parse(k, b), number),
                per_call_us(lambda e=event: orjson.dumps(event_to_dict(e)), number),
            )
        )
    header = ("kind", "bytes", "epoch ts µs", "RFC3339 ts µs", "invalid µs", "to_json µs")
    print(f"{header[0]:<18} {header[1]:>5} " + " ".join(f"{h:>14}" for h in header[2:]))
    for kind, size, *times in rows:
        print(f"{kind:<18} {size:>5} " + " ".join(f"{t:>14.2f}" for t in times))
    print(f"python {sys.version.split()[0]}, best of 5 x {number} calls")


if __name__ == "__main__":
    main()
