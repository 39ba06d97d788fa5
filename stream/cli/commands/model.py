"""`churnstream model list|export`: the model snapshots on `churn.models`, read as data.

`list` shows every snapshot the topic still holds (it is compacted: older versions of a segment
go once the broker compacts it), `export` saves one to a file: the JSON document as published,
which `model/snapshot_codec.py` describes. Reading never unpickles: a snapshot that is not a
data document is listed as refused, with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from churnstream.agents.backfill import UNTIL_HEADER
from churnstream.agents.model_feed import COVERS_HEADER, VERSION_HEADER
from churnstream.model.learner import SegmentModel
from churnstream.model.snapshot_codec import SnapshotError, decode
from churnstream.stream.cli.common import CommandError, check_output
from churnstream.stream.contract import topics as t
from churnstream.stream.contract.timefmt import rfc3339
from churnstream.stream.kafka.client import client_options
from churnstream.stream.kafka.connect import find_bootstrap
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("model", help="list the model snapshots on churn.models or export one")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every snapshot the topic holds, oldest first")
    export = actions.add_parser("export", help="save a segment's snapshot (JSON) to a file")
    export.add_argument("segment", help="course, saas or docs")
    export.add_argument("file", type=Path, help="where to write the snapshot")
    export.add_argument(
        "--version", type=int, default=None, help="that version (default: the newest readable)"
    )
    p.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class Snapshot:
    offset: int
    published_at: float  # the record's timestamp, wall clock seconds
    segment: str
    headers: dict[str, bytes]
    data: bytes
    model: SegmentModel | None
    refused: str = ""  # why it could not be read (empty: it could)


def read_snapshots(settings: Settings, bootstrap: str) -> list[Snapshot]:
    """Every record of `churn.models` up to its end, decoded as data (never unpickled)."""

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
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            out = []
            while await consumer.position(tp) < end:
                for r in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if r.key and r.value:
                        out.append(_snapshot(r, settings.trust_pickled_snapshots))
            return out
        finally:
            await consumer.stop()

    return asyncio.run(go())


def _snapshot(record: Any, trusted: bool) -> Snapshot:
    try:
        model, refused = decode(record.value, allow_pickle=trusted), ""
    except SnapshotError as e:
        model, refused = None, str(e)
    return Snapshot(
        record.offset,
        record.timestamp / 1000,
        record.key.decode(errors="replace"),
        dict(record.headers or ()),
        record.value,
        model,
        refused,
    )


def describe(s: Snapshot, min_labels: int) -> str:
    """One line: offset, time, segment, version, examples, readiness, labels until, covers."""
    head = f"{s.offset:>6}  {rfc3339(s.published_at)}  {s.segment:<6}"
    covers = s.headers.get(COVERS_HEADER, b"-").decode()
    if s.model is None:
        version = s.headers.get(VERSION_HEADER, b"?").decode()
        return f"{head}  v{version:<8} refused: {s.refused}"
    m = s.model
    until = rfc3339(m.labels_until) if math.isfinite(m.labels_until) else "-"
    line = (
        f"{head}  v{m.version:<8} {m.n_learned:>8,} examples ({m.n_pos:,} churned)  "
        f"{'ready' if m.ready(min_labels) else 'not ready':<9}  labels until {until}  "
        f"covers example {covers}"
    )
    if UNTIL_HEADER in s.headers:
        line += f"  backfill until {rfc3339(float(s.headers[UNTIL_HEADER]))}"
    return line


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "export":
        check_output(args.file, "FILE")
    snapshots = read_snapshots(settings, find_bootstrap(settings))
    if args.action == "list":
        if not snapshots:
            print(f"{settings.topic(t.MODELS)} holds no snapshot")
        for s in snapshots:
            print(describe(s, settings.min_labels))
        return 0
    mine = [
        (s.data, s.model.version)
        for s in snapshots
        if s.segment == args.segment
        and s.model is not None
        and (args.version is None or s.model.version == args.version)
    ]
    if not mine:
        which = f"version {args.version}" if args.version is not None else "readable snapshot"
        raise CommandError(f"no {args.segment} {which} on {settings.topic(t.MODELS)}")
    data, version = mine[-1]
    args.file.write_bytes(data)
    print(f"{args.segment} v{version} ({len(data):,} bytes) -> {args.file}")
    return 0
