"""Typed input events of the public contract (pure: no Kafka, no I/O).

One slotted dataclass per input topic. Timestamps are event time in float seconds since the
Unix epoch; the parser (`stream.contract.validation`) turns both contract forms into that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

SEGMENTS: Final = ("course", "saas", "docs")
# Event time is bucketed in UTC days (features, labels, alert cooldowns): seconds in one.
DAY_S: Final = 86_400.0
LIFECYCLE_EVENTS: Final = ("signup", "renewal", "plan_change", "cancel", "reactivate")


@dataclass(slots=True, kw_only=True)
class Event:
    """Fields every contract event carries."""

    kind: ClassVar[str] = "event"
    event_id: str
    user_id: str
    ts: float
    segment: str | None = None


@dataclass(slots=True, kw_only=True)
class VideoView(Event):
    kind: ClassVar[str] = "video_view"
    video_id: str
    watched_s: float
    duration_s: float
    course_id: str | None = None
    seeks: int = 0
    rewinds: int = 0
    pauses: int = 0
    completed: bool = False


@dataclass(slots=True, kw_only=True)
class Login(Event):
    kind: ClassVar[str] = "login"
    success: bool = True
    channel: str | None = None


@dataclass(slots=True, kw_only=True)
class IntegrationSync(Event):
    kind: ClassVar[str] = "integration_sync"
    integration: str
    ok: bool
    records: int | None = None
    latency_ms: float | None = None
    error_code: str | None = None


@dataclass(slots=True, kw_only=True)
class DocumentJob(Event):
    kind: ClassVar[str] = "document_job"
    job_id: str
    ok: bool
    documents: int = 1
    processing_ms: float | None = None
    error: str | None = None


@dataclass(slots=True, kw_only=True)
class ValueEvent(Event):
    kind: ClassVar[str] = "value"
    value: float
    value_kind: str | None = None


@dataclass(slots=True, kw_only=True)
class Lifecycle(Event):
    kind: ClassVar[str] = "lifecycle"
    event: str
    plan_price: float | None = None
    currency: str | None = None


# Logical input names -> event class. Topic names live in churnstream.stream.contract.topics.
EVENT_TYPES: Final[dict[str, type[Event]]] = {
    "video_views": VideoView,
    "logins": Login,
    "integration_syncs": IntegrationSync,
    "document_jobs": DocumentJob,
    "value": ValueEvent,
    "subscriptions": Lifecycle,
}

# The inputs each segment's customers produce (EVENT_TYPES keys): a deployment waits only for
# the inputs of its segments (CHURNSTREAM_SEGMENTS) before its daily rows, not for a topic no
# producer of it will ever write.
SEGMENT_INPUTS: Final[dict[str, tuple[str, ...]]] = {
    "course": ("subscriptions", "logins", "video_views"),
    "saas": ("subscriptions", "logins", "integration_syncs", "value"),
    "docs": ("subscriptions", "logins", "document_jobs", "value"),
}


def expected_kinds(segments: tuple[str, ...] = SEGMENTS) -> tuple[str, ...]:
    """The event kinds (`Event.kind`) the inputs of `segments` carry, in contract order."""
    inputs = {name for s in segments for name in SEGMENT_INPUTS[s]}
    return tuple(cls.kind for name, cls in EVENT_TYPES.items() if name in inputs)
