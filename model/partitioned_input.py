"""The input of a replay with users partitioned over processes (model/partitioned.py).

The coordinator's reader (`read_chunks`, a thread) parses every record once and hands each
process a `Chunk`: the event time and kind of every record, so that every process's watermark
sees the same event-time progress, and whole only the records of its users (`owner`).
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from churnstream.model.replay import TOPIC_RANK
from churnstream.model.replay_input import LEFT_OUT, Admit, ReplayRecord, read_event
from churnstream.stream.contract.validation import Invalid

CHUNK = 2000  # records per hand-over to the processes
# A chunk for one process: every record's event time and topic rank (INVALID: not an event),
# the process each record goes to whole (its user's; the invalid ones to process 0), and those
# records (kind, value) in order. Parsed once, by the coordinator's reader.
Chunk = tuple[bytes, bytes, bytes, list[tuple[str | None, bytes | None]]]
INVALID = 255


def owner(user_id: str, count: int) -> int:
    """The process of `user_id` (stable across runs, unlike the salted `hash`)."""
    return zlib.crc32(user_id.encode()) % count


def read_chunks(
    records: Iterable[ReplayRecord],
    queues: list[Any],
    failed: list[Exception],
    progress: Callable[[int], None] | None,
    *,
    every: int,
    max_bytes: int,
    admit: Admit | None,
) -> None:
    """The reader (a thread of the coordinator): parses every record once and hands each
    process the times of all and the records of its users (`Chunk`)."""
    count = len(queues)
    owners: dict[str, int] = {}
    read = 0
    try:
        it = iter(records)
        while True:
            ts, ranks, to = array("d"), bytearray(), bytearray()
            whole: list[list[tuple[str | None, bytes | None]]] = [[] for _ in range(count)]
            for rec in it:
                read += 1
                if progress is not None and read % every == 0:
                    progress(read)
                event = read_event(rec.kind, rec.value, max_bytes, admit)
                if event is LEFT_OUT:
                    continue
                if event is None or isinstance(event, Invalid):
                    ts.append(0.0)
                    ranks.append(INVALID)
                    to.append(0)  # counted by process 0
                    whole[0].append((rec.kind, rec.value))
                else:
                    o = owners.get(event.user_id)
                    if o is None:
                        o = owners[event.user_id] = owner(event.user_id, count)
                    ts.append(event.ts)
                    ranks.append(TOPIC_RANK[rec.kind])  # type: ignore[index]
                    to.append(o)
                    whole[o].append((rec.kind, rec.value))
                if len(ranks) >= CHUNK:
                    break
            if not ranks:
                break
            times, codes, dests = ts.tobytes(), bytes(ranks), bytes(to)
            for q, mine in zip(queues, whole, strict=True):
                q.put((times, codes, dests, mine))
    except Exception as exc:
        failed.append(exc)
    finally:
        for q in queues:
            q.put(None)


def chunks(source: Any) -> Iterator[Chunk]:
    while (chunk := source.get()) is not None:
        yield chunk
