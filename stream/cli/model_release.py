"""`churnstream model import|rollback`: publish a snapshot an operator chose, as a new version.

Both publish a model to `churn.models` strictly above the segment's newest version (workers
install only a newer version, and versions never go back), signed when a key is set, with:

- `churnstream-origin: import|rollback`: the trainer continues learning from it instead of
  publishing its own model over it (agents/trainer.py);
- `churnstream-rollback-of: V` on a rollback: whose content it republishes;
- `churnstream-covers-offset`: the highest example offset the segment's snapshots covered, so
  a trainer that takes over later does not learn again what was deliberately left out.

Its `labels_until` (and `learned_until`) is at least the segment's newest one: workers hold a
day's rows until a snapshot covers the labels released before it, and the labels left out will
not come again.

Publishing races with the trainer: if a higher version appears on the topic before ours, the
snapshot is published again above it (a few tries). One that appears after ours is the
trainer's own: the trainer adopts ours and publishes it again above that (agents/trainer.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer

from churnstream.agents.model_feed import (
    COVERS_HEADER,
    ORIGIN_HEADER,
    ROLLBACK_HEADER,
    VERSION_HEADER,
)
from churnstream.model.learner import SegmentModel
from churnstream.model.snapshot_signing import SnapshotCheck, SnapshotRefused
from churnstream.stream.cli.common import CommandError
from churnstream.stream.cli.model_topic import Snapshot, read_snapshots
from churnstream.stream.contract import topics as t
from churnstream.stream.contract.events import SEGMENTS
from churnstream.stream.kafka.client import client_options
from churnstream.stream.settings import Settings

TRIES = 3


@dataclass(frozen=True, slots=True)
class Release:
    """A snapshot ready to publish."""

    segment: str
    version: int
    data: bytes
    headers: list[tuple[str, bytes]]


def _int(value: bytes | None, default: int) -> int:
    try:
        return int(value or b"")
    except ValueError:
        return default


def newest_version(snapshots: Sequence[Snapshot], segment: str) -> int:
    """The highest version any snapshot of `segment` holds or announces (readable or not)."""
    return max(
        (
            s.model.version if s.model is not None else _int(s.headers.get(VERSION_HEADER), 0)
            for s in snapshots
            if s.segment == segment
        ),
        default=0,
    )


def prepare(
    model: SegmentModel,
    snapshots: Sequence[Snapshot],
    origin: str,
    check: SnapshotCheck,
    rollback_of: int | None = None,
) -> Release:
    """`model` as the next version of its segment above `snapshots` (mutates `model`)."""
    mine = [s for s in snapshots if s.segment == model.segment]
    covers = max((_int(s.headers.get(COVERS_HEADER), -1) for s in mine), default=-1)
    models = [s.model for s in mine if s.model is not None]
    model.version = newest_version(snapshots, model.segment) + 1
    model.labels_until = max([model.labels_until, *(m.labels_until for m in models)])
    # Never picked as of a boundary before the newest's (model.scoring keeps them in order).
    model.learned_until = max([model.learned_until, *(m.learned_until for m in models)])
    headers = [
        (COVERS_HEADER, str(covers).encode()),
        (VERSION_HEADER, str(model.version).encode()),
        (ORIGIN_HEADER, origin.encode()),
    ]
    if rollback_of is not None:
        headers.append((ROLLBACK_HEADER, str(rollback_of).encode()))
    return Release(model.segment, model.version, check.sign(model.snapshot()), headers)


def load_file(path: Path, check: SnapshotCheck) -> SegmentModel:
    """The model in a file `model export` wrote, checked as workers check what they load."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CommandError(f"{path}: {e.strerror}") from None
    try:
        model = check.load(data)
    except SnapshotRefused as e:
        hint = "; --trust-file accepts it" if e.reason in ("unsigned", "bad_signature") else ""
        raise CommandError(f"{path}: not a snapshot this deployment loads: {e}{hint}") from None
    if model.segment not in SEGMENTS:
        raise CommandError(f"{path}: unknown segment {model.segment!r}")
    return model


def rollback_target(
    snapshots: Sequence[Snapshot], segment: str, to_version: int | None, topic: str
) -> SegmentModel:
    """The readable model of `segment` to go back to: `to_version`, else the version before
    the newest readable one."""
    if segment not in SEGMENTS:
        raise CommandError(f"unknown segment {segment!r} (one of {', '.join(SEGMENTS)})")
    readable = [s.model for s in snapshots if s.segment == segment and s.model is not None]
    if not readable:
        raise CommandError(f"no readable {segment} snapshot on {topic}")
    newest = max(m.version for m in readable)
    if to_version is None:
        older = [m for m in readable if m.version < newest]
        if not older:
            raise CommandError(f"{topic} holds no {segment} version older than v{newest}")
        return max(older, key=lambda m: m.version)
    chosen = [m for m in readable if m.version == to_version]
    if not chosen:
        held = ", ".join(f"v{m.version}" for m in readable)
        raise CommandError(f"no {segment} version {to_version} on {topic} (it holds {held})")
    if to_version == newest:
        raise CommandError(f"{segment} v{to_version} is the newest version already")
    return chosen[-1]


def publish(
    settings: Settings,
    bootstrap: str,
    check: SnapshotCheck,
    make: Callable[[list[Snapshot]], Release],
) -> tuple[Release, int]:
    """Publish `make(snapshots on the topic)`; again above any version published meanwhile.
    Returns the release and its offset."""
    topic = settings.topic(t.MODELS)
    for _ in range(TRIES):
        snapshots = read_snapshots(settings, bootstrap, check)
        start = snapshots[-1].offset + 1 if snapshots else 0
        release = make(snapshots)
        offset = asyncio.run(_send(settings, bootstrap, release))
        between = read_snapshots(settings, bootstrap, check, start=start, stop=offset)
        if newest_version(between, release.segment) < release.version:
            return release, offset
    raise CommandError(f"newer {release.segment} snapshots kept arriving on {topic}; try again")


async def _send(settings: Settings, bootstrap: str, release: Release) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        max_request_size=16 << 20,
        **client_options(settings),
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            settings.topic(t.MODELS),
            release.data,
            key=release.segment.encode(),
            headers=release.headers,
        )
        return int(sent.offset)
    finally:
        await producer.stop()
