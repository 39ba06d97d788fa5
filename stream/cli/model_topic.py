"""The model snapshots on `churn.models`, read as data (never unpickled unless trusted).

Each record is loaded through the deployment's `SnapshotCheck` (signature, data document,
features): a snapshot a worker would refuse is kept with the reason, so `model list` shows it.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from churnstream.agents.backfill import UNTIL_HEADER
from churnstream.agents.model_feed import (
    COVERS_HEADER,
    ORIGIN_HEADER,
    ROLLBACK_HEADER,
    VERSION_HEADER,
)
from churnstream.model.config import ModelConfig
from churnstream.model.learner import SegmentModel
from churnstream.model.snapshot_signing import SnapshotCheck, SnapshotRefused
from churnstream.stream.contract import topics as t
from churnstream.stream.contract.timefmt import rfc3339
from churnstream.stream.kafka.client import client_options
from churnstream.stream.settings import Settings


@dataclass(frozen=True, slots=True)
class Snapshot:
    offset: int
    published_at: float  # the record's timestamp, wall clock seconds
    segment: str
    headers: dict[str, bytes]
    data: bytes
    model: SegmentModel | None
    refused: str = ""  # why it could not be read (empty: it could)


def read_snapshots(
    settings: Settings,
    bootstrap: str,
    check: SnapshotCheck,
    *,
    start: int = 0,
    stop: int | None = None,
) -> list[Snapshot]:
    """The records of `churn.models` from offset `start` up to `stop` (default: the end)."""
    if stop is not None and stop <= start:
        return []

    async def go() -> list[Snapshot]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=16 << 20,
            **client_options(settings),
        )
        tp = TopicPartition(settings.topic(t.MODELS), 0)
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp] if stop is None else stop
            consumer.seek(tp, start)
            out = []
            while await consumer.position(tp) < end:
                for r in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if r.offset < end and r.key and r.value:
                        out.append(snapshot_of(r, check))
            return out
        finally:
            await consumer.stop()

    return asyncio.run(go())


def snapshot_of(record: Any, check: SnapshotCheck) -> Snapshot:
    segment = record.key.decode(errors="replace")
    try:
        model, refused = check.load(record.value, segment), ""
    except SnapshotRefused as e:
        model, refused = None, str(e)
    return Snapshot(
        record.offset,
        record.timestamp / 1000,
        segment,
        dict(record.headers or ()),
        record.value,
        model,
        refused,
    )


def describe(s: Snapshot, config: ModelConfig) -> str:
    """One line: offset, time, segment, version, examples, readiness, labels until, covers,
    and who published it when not the trainer."""
    head = f"{s.offset:>6}  {rfc3339(s.published_at)}  {s.segment:<6}"
    covers = s.headers.get(COVERS_HEADER, b"-").decode()
    if s.model is None:
        version = s.headers.get(VERSION_HEADER, b"?").decode()
        return f"{head}  v{version:<8} refused: {s.refused}"
    m = s.model
    until = rfc3339(m.labels_until) if math.isfinite(m.labels_until) else "-"
    line = (
        f"{head}  v{m.version:<8} {m.n_learned:>8,} examples ({m.n_pos:,} churned)  "
        f"{'ready' if config.ready(m) else 'not ready':<9}  labels until {until}  "
        f"covers example {covers}"
    )
    if UNTIL_HEADER in s.headers:
        line += f"  backfill until {rfc3339(float(s.headers[UNTIL_HEADER]))}"
    origin = s.headers.get(ORIGIN_HEADER, b"").decode(errors="replace")
    if ROLLBACK_HEADER in s.headers:
        line += f"  rollback of v{s.headers[ROLLBACK_HEADER].decode(errors='replace')}"
    elif origin == "import":
        line += "  imported"
    return line
